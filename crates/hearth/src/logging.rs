//! Log output: JSON lines (GitLab's gateway default) or text, to stdout and optionally
//! appended to a file as well.

use std::fs::OpenOptions;
use std::path::Path;

use anyhow::{Context, anyhow};
use tracing_subscriber::filter::Directive;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, fmt};

use crate::cli::LogFormat;

mod json;
mod text;

type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

fn layer<W>(format: LogFormat, writer: W, ansi: bool) -> BoxedLayer
where
    W: for<'w> fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    match format {
        LogFormat::Json => fmt::layer()
            .fmt_fields(json::SpanFields)
            .event_format(json::JsonLines)
            .with_writer(writer)
            .boxed(),
        LogFormat::Text => fmt::layer()
            .event_format(text::TextLines::default())
            .with_ansi(ansi)
            .with_writer(writer)
            .boxed(),
    }
}

/// Keeps the background log writers running; dropping it flushes what is queued.
pub(crate) struct LogGuard(#[allow(dead_code)] Vec<tracing_appender::non_blocking::WorkerGuard>);

/// What the writer thread buffers before it writes, at most.
const LOG_BUFFER: usize = 64 * 1024;
/// How long the writer thread pauses after each write, so that the lines of busy moments
/// gather in the queue and go out together. At 2 ms its wake-ups (one per ~20 requests at 10k
/// req/s) preempted the request threads often enough that the access log cost ~20 µs of CPU a
/// request; at 20 ms ~5 µs (docs/benchmarks.md, thirteenth pass).
const LOG_LINGER: std::time::Duration = std::time::Duration::from_millis(20);

/// Lines are handed to a writer thread, so a request never waits on a write to stdout or the
/// file; the queue is lossless (a full queue makes the logger wait rather than drop lines).
/// The thread takes every line queued, writes them, then pauses (see [`Batched`]).
fn background<W: std::io::Write + Send + 'static>(
    w: W,
) -> (
    tracing_appender::non_blocking::NonBlocking,
    tracing_appender::non_blocking::WorkerGuard,
) {
    tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(Batched(std::io::BufWriter::with_capacity(LOG_BUFFER, w)))
}

/// The writer thread's output. That thread writes each line it takes from the queue and flushes
/// once the queue is empty; here the lines are buffered until that flush, so the ones taken
/// together cost one write instead of one system call each (stdout alone writes at every
/// newline), and after it the thread pauses for [`LOG_LINGER`]. During the pause the requests'
/// lines queue without waking it (a wake-up per line costs more than formatting the line),
/// and a line waits at most that long before it is written. When the queue is empty the
/// thread sleeps as before, and the first line wakes it at once.
struct Batched<W: std::io::Write>(std::io::BufWriter<W>);

impl<W: std::io::Write> std::io::Write for Batched<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.0.write_all(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()?;
        std::thread::sleep(LOG_LINGER);
        Ok(())
    }
}

/// Level names, any case: tracing's, plus the Python names GitLab's gateway takes
/// (`AIGW_LOGGING__LEVEL=WARNING`), mapped to the nearest tracing level.
const LEVELS: [(&str, &str); 8] = [
    ("trace", "trace"),
    ("debug", "debug"),
    ("info", "info"),
    ("warn", "warn"),
    ("warning", "warn"),
    ("error", "error"),
    ("critical", "error"),
    ("off", "off"),
];

/// The tracing filter for a configured level: one level name, or comma-separated directives
/// (`hearth=debug,info`) whose levels are level names. Anything else is refused, because
/// tracing reads a bare unknown word (`infoo`, `warning`) as a target name, which silently
/// turns off every line Hearth writes.
pub(crate) fn filter_for(level: &str) -> anyhow::Result<String> {
    let refuse = || {
        anyhow!(
            "log level {level:?} is not accepted: use trace, debug, info, warn (or warning), error (or critical) or off, in any case, or tracing directives such as hearth=debug,info"
        )
    };
    let name = |word: &str| {
        LEVELS
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(word.trim()))
            .map(|(_, l)| *l)
            .ok_or_else(refuse)
    };
    let mut directives = Vec::new();
    for part in level.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let directive = match part.rsplit_once('=') {
            None => name(part)?.to_string(),
            Some((target, l)) if !target.trim().is_empty() => {
                format!("{}={}", target.trim(), name(l)?)
            }
            Some(_) => return Err(refuse()),
        };
        directive.parse::<Directive>().map_err(|_| refuse())?;
        directives.push(directive);
    }
    if directives.is_empty() {
        return Err(refuse());
    }
    Ok(directives.join(","))
}

pub(crate) fn init(
    level: &str,
    format: LogFormat,
    file: Option<&Path>,
) -> anyhow::Result<LogGuard> {
    let filter = EnvFilter::try_new(filter_for(level)?)
        .with_context(|| format!("log level {level:?} is not a tracing filter"))?;
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

/// What a format writes, caught in memory, for the formats' tests.
#[cfg(test)]
mod capture {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    #[derive(Clone, Default)]
    pub(super) struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Captured {
        /// Runs `f` under a subscriber made (by `subscriber`) around this writer, and returns
        /// what was written.
        pub(super) fn run<S>(subscriber: impl FnOnce(Self) -> S, f: impl FnOnce()) -> String
        where
            S: tracing::Subscriber + Send + Sync + 'static,
        {
            let out = Self::default();
            tracing::subscriber::with_default(subscriber(out.clone()), f);
            let bytes = out.0.lock().unwrap().clone();
            String::from_utf8(bytes).unwrap()
        }
    }

    impl std::io::Write for Captured {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;

        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gitlab_and_tracing_names_are_taken_in_any_case() {
        for (given, filter) in [
            ("WARNING", "warn"),
            ("warning", "warn"),
            ("Info", "info"),
            ("CRITICAL", "error"),
            ("DEBUG", "debug"),
            (" error ", "error"),
            ("hearth=debug,info", "hearth=debug,info"),
            ("hearth_gateway=WARNING, INFO", "hearth_gateway=warn,info"),
        ] {
            assert_eq!(filter_for(given).unwrap(), filter, "{given}");
        }
    }

    #[test]
    fn anything_else_is_refused_naming_the_accepted_values() {
        for bad in [
            "infoo",
            "",
            " , ",
            "hearth",
            "hearth=loud",
            "=info",
            "info,verbose",
        ] {
            let err = filter_for(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
            assert!(
                err.contains("warn (or warning), error (or critical)"),
                "{err}"
            );
        }
    }
}
