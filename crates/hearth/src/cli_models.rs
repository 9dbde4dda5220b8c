//! Flags of `hearth models` kept apart from `cli.rs`, so they grow without touching the other
//! commands' definitions.

use clap::{Args, ValueEnum};

/// What `--reset` returns to its default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Resettable {
    /// The catalog model: recognised from the identifier again, else judged by the family
    Model,
    /// All three timeouts: the feature's defaults
    Timeouts,
    ConnectTimeout,
    FirstTokenTimeout,
    TotalTimeout,
    /// Azure: Hearth's default API version
    ApiVersion,
    /// Bedrock: AWS_REGION
    Region,
}

#[derive(Args)]
pub(crate) struct ResetArgs {
    /// Return a field to its default; repeat for more
    #[arg(long, value_enum, value_name = "FIELD")]
    pub reset: Vec<Resettable>,
}
