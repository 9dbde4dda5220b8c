//! Command-line arguments: clap definitions only, no behaviour.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The version and the git revision the binary was built from (see build.rs).
pub(crate) const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("HEARTH_GIT_REV"),
    ")"
);

#[derive(Parser)]
#[command(
    name = "hearth",
    version = VERSION,
    about = "A self-hosted AI gateway for code assistants"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Start the gateway
    Serve(ServeArgs),
    /// Show the approved-model catalog
    Catalog(CatalogArgs),
    /// Check whether a model fits your GPUs and print how to serve and register it
    Plan(PlanArgs),
    /// Manage self-hosted model deployments
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Choose which deployment serves each feature
    #[command(subcommand)]
    Features(FeaturesCommand),
    /// Read and change instance settings
    #[command(subcommand)]
    Settings(SettingsCommand),
    /// Manage client API keys for the OpenAI-compatible routes
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Check everything between clients and the models; exit 1 when a required check fails
    Verify(crate::cli_verify::VerifyArgs),
    /// Print a shell completion script: bash, zsh or fish (see docs/install.md)
    Completions(crate::ops::CompletionsArgs),
    /// Exit 0 when the server answers /monitoring/healthz (for container health checks)
    Health(crate::ops::HealthArgs),
    /// Migrate, export or import the registry database (no running server needed)
    #[command(subcommand)]
    Db(crate::database::DbCommand),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    Json,
    Text,
}

#[derive(Args)]
pub(crate) struct ServeArgs {
    /// TOML configuration file
    #[arg(long, env = "HEARTH_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on, e.g. 0.0.0.0:5052; localhost means 127.0.0.1 [default: 127.0.0.1:5052]
    #[arg(long, env = "HEARTH_LISTEN", value_parser = crate::listen::parse_listen)]
    pub listen: Option<SocketAddr>,
    /// Where Hearth keeps its database, secret key and admin token
    #[arg(long, env = "HEARTH_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL: postgres://USER:PASSWORD@HOST/DB?sslmode=require for many replicas [default: sqlite://DATA_DIR/hearth.db]
    #[arg(long, env = "HEARTH_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Log level or tracing filter, e.g. info, debug, hearth=debug [default: info]
    #[arg(long, env = "HEARTH_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// Log line format [default: json]
    #[arg(long, env = "HEARTH_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Also append log lines to this file
    #[arg(long, env = "HEARTH_LOG_FILE")]
    pub log_file: Option<PathBuf>,
    /// The GitLab instance whose tokens the GitLab routes accept (AIGW_GITLAB_URL)
    #[arg(long, env = "HEARTH_GITLAB_URL")]
    pub gitlab_url: Option<String>,
    /// Skip GitLab token checks, for local testing only (AIGW_AUTH__BYPASS_EXTERNAL)
    #[arg(long, env = "HEARTH_AUTH_BYPASS")]
    pub auth_bypass: Option<bool>,
    /// Allow the auth bypass on a non-loopback address too
    #[arg(long, env = "HEARTH_AUTH_BYPASS_FORCE", default_value_t = false)]
    pub auth_bypass_force: bool,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub tls: crate::serve_tls::TlsArgs,
    #[command(flatten)]
    pub database: crate::database::DatabaseArgs,
}

/// Limits and timeouts of `hearth serve` (docs/operations.md explains each).
#[derive(Args, Clone, Debug, Default)]
pub(crate) struct LimitArgs {
    /// Time a client has to send a request's headers; also the longest idle keep-alive [default: 30s]
    #[arg(long, env = "HEARTH_HEADER_TIMEOUT", value_parser = duration)]
    pub header_timeout: Option<Duration>,
    /// Longest pause while a client sends a request body [default: 30s]
    #[arg(long, env = "HEARTH_BODY_TIMEOUT", value_parser = duration)]
    pub body_timeout: Option<Duration>,
    /// On SIGTERM, how long requests in flight may take before they are cut [default: 30s]
    #[arg(long, env = "HEARTH_DRAIN_TIMEOUT", value_parser = duration)]
    pub drain_timeout: Option<Duration>,
    /// Open client connections served; more get 503 (health checks still answer) [default: 4096]
    #[arg(long, env = "HEARTH_MAX_CONNECTIONS", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: Option<u32>,
    /// Model-server calls in flight across all deployments [default: 1024]
    #[arg(long, env = "HEARTH_MAX_IN_FLIGHT", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_in_flight: Option<u32>,
    /// Model-server calls in flight to one deployment [default: 256]
    #[arg(long, env = "HEARTH_MAX_IN_FLIGHT_PER_DEPLOYMENT", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_in_flight_per_deployment: Option<u32>,
    /// Requests that may wait for a place when a cap is full [default: 128]
    #[arg(long, env = "HEARTH_MAX_QUEUED")]
    pub max_queued: Option<u32>,
    /// Longest wait for a place before the request gets 503 [default: 2s]
    #[arg(long, env = "HEARTH_QUEUE_TIMEOUT", value_parser = duration)]
    pub queue_timeout: Option<Duration>,
    /// Largest SSE event or Bedrock frame read from a model server, in bytes [default: 4 MiB]
    #[arg(long, env = "HEARTH_MAX_UPSTREAM_EVENT_BYTES", value_parser = clap::value_parser!(u64).range(1024..))]
    pub max_upstream_event_bytes: Option<u64>,
    /// Largest whole answer read from a model server, in bytes [default: 32 MiB]
    #[arg(long, env = "HEARTH_MAX_UPSTREAM_BODY_BYTES", value_parser = clap::value_parser!(u64).range(1024..))]
    pub max_upstream_body_bytes: Option<u64>,
    /// Between active health checks of each model-server replica; 0s turns them off [default: 5s]
    #[arg(long, env = "HEARTH_HEALTH_CHECK_INTERVAL", value_parser = duration)]
    pub health_check_interval: Option<Duration>,
    /// Consecutive failed calls that take a replica out of rotation [default: 3]
    #[arg(long, env = "HEARTH_EJECT_AFTER_FAILURES", value_parser = clap::value_parser!(u32).range(1..))]
    pub eject_after_failures: Option<u32>,
    /// How long a first ejection lasts; each further one doubles it, up to 5 minutes [default: 5s]
    #[arg(long, env = "HEARTH_EJECTION_TIME", value_parser = duration)]
    pub ejection_time: Option<Duration>,
    /// Retries to another replica may add at most this share of a deployment's requests [default: 0.2]
    #[arg(long, env = "HEARTH_RETRY_BUDGET", value_parser = ratio)]
    pub retry_budget: Option<f64>,
    /// Keep a completion running when a newer one comes from the same client and file
    #[arg(long, env = "HEARTH_NO_SUPERSEDE", default_value_t = false)]
    pub no_supersede: bool,
    /// Send identical completion requests in flight upstream each on their own
    #[arg(long, env = "HEARTH_NO_COALESCE", default_value_t = false)]
    pub no_coalesce: bool,
    /// Answer an exact repeat of a completion from the same client with the answer it got this long ago at most; 0s: never [default: 0s]
    #[arg(long, env = "HEARTH_COMPLETION_CACHE_TTL", value_parser = duration)]
    pub completion_cache_ttl: Option<Duration>,
}

fn ratio(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!(
            "{text:?} is not a share between 0 and 1; 0.2 lets retries add 20 % to the traffic"
        )),
    }
}

fn duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("{e}; write a duration such as 30s, 500ms or 2m"))
}

/// How CLI commands reach a running Hearth.
#[derive(Args, Clone)]
pub(crate) struct ClientArgs {
    /// Hearth's base URL [default: http://127.0.0.1:5052, or HEARTH_LISTEN's address]
    #[arg(long, env = "HEARTH_URL")]
    pub url: Option<String>,
    /// Data directory holding admin.token, when HEARTH_ADMIN_TOKEN is not set
    #[arg(long, env = "HEARTH_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Print JSON instead of tables
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub(crate) struct CatalogArgs {
    /// Only models usable for this feature: code_completion, code_generation, chat, or a feature name
    #[arg(long)]
    pub feature: Option<String>,
    /// Only models with this release status: ga or beta
    #[arg(long)]
    pub status: Option<String>,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub(crate) struct PlanArgs {
    /// Catalog model: id, name, Hugging Face repository or Bedrock id
    pub model: String,
    /// GPU model, e.g. A100-80GB, H100-80GB, L40S
    #[arg(long, conflicts_with = "vram_gb")]
    pub gpu: Option<String>,
    /// How many GPUs [default: as many as the model needs]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub count: Option<u32>,
    /// Memory of each GPU in GB, for a GPU not in the list
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub vram_gb: Option<u32>,
    /// The name vLLM serves the model under [default: the repository name]
    #[arg(long)]
    pub served_name: Option<String>,
    /// Host the model server runs on, for the endpoint to register [default: localhost]
    #[arg(long)]
    pub host: Option<String>,
    /// Directory the weights are cloned into [default: /models]
    #[arg(long)]
    pub model_dir: Option<String>,
    /// Size the weights at this precision: bf16, fp8 or awq-int4 [default: the checkpoint's]
    #[arg(long, value_parser = hearth_catalog::Precision::parse)]
    pub precision: Option<hearth_catalog::Precision>,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub(crate) struct ApiKeyArgs {
    /// API key for the model server (visible in the process list: prefer --api-key-file)
    #[arg(long, conflicts_with = "api_key_file")]
    pub api_key: Option<String>,
    /// Read the API key from this file, or from standard input with -
    #[arg(long)]
    pub api_key_file: Option<PathBuf>,
}

/// Per-deployment timeouts; unset keeps the feature's default.
#[derive(Args)]
pub(crate) struct TimeoutArgs {
    /// Azure only: API version, e.g. 2024-10-21 (the default) or v1 for the v1 API
    #[arg(long)]
    pub api_version: Option<String>,
    /// Bedrock only: AWS region, e.g. us-east-1 [default: AWS_REGION or AWS_REGION_NAME]
    #[arg(long)]
    pub region: Option<String>,
    /// Connect timeout in milliseconds
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=3_600_000))]
    pub connect_timeout_ms: Option<u32>,
    /// Time to the first streamed token, in milliseconds
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=3_600_000))]
    pub first_token_timeout_ms: Option<u32>,
    /// Time for the whole answer, in milliseconds
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=3_600_000))]
    pub total_timeout_ms: Option<u32>,
}

#[derive(Subcommand)]
pub(crate) enum ModelsCommand {
    /// Register a self-hosted model deployment
    Add {
        #[command(flatten)]
        client: ClientArgs,
        /// Unique deployment name
        #[arg(long)]
        name: String,
        /// Model family: mistral, mixtral, codestral, codegemma, codellama, deepseekcoder, claude_3, gpt, …
        #[arg(long)]
        family: String,
        /// Model server URL; for vLLM http(s)://HOST:8000/v1. Repeat it for replicas of the
        /// same served model: Hearth spreads requests over them and retries on another
        #[arg(long)]
        endpoint: Vec<String>,
        /// How requests are spread over the replicas: prefix_affinity (default), least_loaded or round_robin
        #[arg(long)]
        routing: Option<String>,
        /// custom_openai/<served name>, bedrock/<model id> or azure/<deployment>
        #[arg(long)]
        identifier: String,
        /// Catalog model id, name or repository, for exact ratings (recognised from the identifier when it can be)
        #[arg(long)]
        model: Option<String>,
        #[command(flatten)]
        key: ApiKeyArgs,
        #[command(flatten)]
        timeouts: TimeoutArgs,
    },
    /// List deployments
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show one deployment
    Show {
        #[command(flatten)]
        client: ClientArgs,
        /// Deployment name or id
        deployment: String,
    },
    /// Change a deployment
    Update {
        #[command(flatten)]
        client: ClientArgs,
        /// Deployment name or id
        deployment: String,
        /// New unique deployment name
        #[arg(long)]
        name: Option<String>,
        /// Model family: mistral, mixtral, codestral, codegemma, codellama, deepseekcoder, claude_3, gpt, …
        #[arg(long)]
        family: Option<String>,
        /// Model server URL; for vLLM http(s)://HOST:8000/v1 (replaces the first replica)
        #[arg(long)]
        endpoint: Option<String>,
        /// Add a replica serving the same model (repeatable)
        #[arg(long, value_name = "URL")]
        add_endpoint: Vec<String>,
        /// Remove a replica (repeatable)
        #[arg(long, value_name = "URL")]
        remove_endpoint: Vec<String>,
        /// How requests are spread over the replicas: prefix_affinity, least_loaded or round_robin
        #[arg(long)]
        routing: Option<String>,
        /// custom_openai/<served name>, bedrock/<model id> or azure/<deployment>
        #[arg(long)]
        identifier: Option<String>,
        /// Catalog model id, name or repository, for exact ratings (`hearth catalog` lists them)
        #[arg(long)]
        model: Option<String>,
        #[command(flatten)]
        reset: crate::cli_models::ResetArgs,
        #[command(flatten)]
        key: ApiKeyArgs,
        #[command(flatten)]
        timeouts: TimeoutArgs,
        /// Remove the stored API key
        #[arg(long, conflicts_with_all = ["api_key", "api_key_file"])]
        clear_api_key: bool,
    },
    /// Send the deployment one tiny real request and report the result
    Check {
        #[command(flatten)]
        client: ClientArgs,
        /// Deployment name or id
        deployment: String,
    },
    /// Delete a deployment (refused while a feature uses it)
    #[command(visible_alias = "delete")]
    Remove {
        #[command(flatten)]
        client: ClientArgs,
        /// Deployment name or id
        deployment: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum FeaturesCommand {
    /// List every feature and the deployment serving it
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Serve a feature with a deployment
    Set {
        #[command(flatten)]
        client: ClientArgs,
        /// Feature, e.g. code_completions, code_generations, duo_chat, explain_code
        feature: String,
        /// Deployment name or id
        deployment: String,
        /// A deployment to use when this one has no healthy replica or no room, in order
        /// (repeatable; the prompt is rebuilt for its family)
        #[arg(long, value_name = "DEPLOYMENT")]
        fallback: Vec<String>,
        /// Remove the feature's fallbacks
        #[arg(long, conflicts_with = "fallback")]
        no_fallbacks: bool,
    },
    /// Turn a feature off
    Disable {
        #[command(flatten)]
        client: ClientArgs,
        /// Feature, e.g. code_completions, duo_chat (`hearth features list` shows them)
        feature: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum SettingsCommand {
    /// Show settings
    Get {
        #[command(flatten)]
        client: ClientArgs,
        /// One setting only
        name: Option<String>,
    },
    /// Change a setting: beta_models_enabled or verbose_ai_logs, to true or false
    Set {
        #[command(flatten)]
        client: ClientArgs,
        /// beta_models_enabled or verbose_ai_logs
        name: String,
        /// true or false
        value: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum KeysCommand {
    /// Create a key; it is printed once and never again
    Create {
        #[command(flatten)]
        client: ClientArgs,
        /// What the key is for, e.g. "vscode-team-a"
        name: String,
    },
    /// List keys (their prefixes, never the keys)
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Revoke a key
    Revoke {
        #[command(flatten)]
        client: ClientArgs,
        /// Key id or name
        key: String,
    },
}
