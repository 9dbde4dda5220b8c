//! `hearth verify`'s arguments, apart from `cli.rs` so its flags grow without touching the
//! other commands' definitions.

use std::path::PathBuf;

use clap::Args;

use crate::cli::ClientArgs;

#[derive(Args)]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// The TOML file `hearth serve` is started with, to check it too
    #[arg(long, env = "HEARTH_CONFIG")]
    pub config: Option<PathBuf>,
    /// Also print what GitLab's `gitlab:duo:verify_self_hosted_setup` task sees: health and the model list
    #[arg(long)]
    pub from_gitlab_view: bool,
}
