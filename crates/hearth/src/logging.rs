//! Log output: JSON lines (GitLab's gateway default) or text, to stdout and optionally
//! appended to a file as well.

use std::fs::OpenOptions;
use std::path::Path;

use anyhow::Context;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, fmt};

use crate::cli::LogFormat;

type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

fn layer<W>(format: LogFormat, writer: W, ansi: bool) -> BoxedLayer
where
    W: for<'w> fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    match format {
        LogFormat::Json => fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(writer)
            .boxed(),
        LogFormat::Text => fmt::layer().with_ansi(ansi).with_writer(writer).boxed(),
    }
}

/// Keeps the background log writers running; dropping it flushes what is queued.
pub(crate) struct LogGuard(#[allow(dead_code)] Vec<tracing_appender::non_blocking::WorkerGuard>);

/// Lines are handed to a writer thread, so a request never waits on a write to stdout or the
/// file; the queue is lossless (a full queue makes the logger wait rather than drop lines).
fn background<W: std::io::Write + Send + 'static>(
    w: W,
) -> (
    tracing_appender::non_blocking::NonBlocking,
    tracing_appender::non_blocking::WorkerGuard,
) {
    tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(w)
}

pub(crate) fn init(
    level: &str,
    format: LogFormat,
    file: Option<&Path>,
) -> anyhow::Result<LogGuard> {
    let filter = EnvFilter::try_new(level)
        .with_context(|| format!("log level {level:?} is not a level (error, warn, info, debug, trace) or a tracing filter"))?;
    let stdout_is_tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let (stdout, stdout_guard) = background(std::io::stdout());
    let mut guards = vec![stdout_guard];
    let mut layers: Vec<BoxedLayer> = vec![layer(format, stdout, stdout_is_tty)];
    if let Some(path) = file {
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open log file {}", path.display()))?;
        let (writer, guard) = background(f);
        guards.push(guard);
        layers.push(layer(format, writer, false));
    }
    tracing_subscriber::registry()
        .with(layers)
        .with(filter)
        .try_init()
        .context("logging was already set up")?;
    Ok(LogGuard(guards))
}
