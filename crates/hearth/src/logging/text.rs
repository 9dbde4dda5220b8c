//! Text lines: tracing-subscriber's own format, plus the request a line belongs to.
//!
//! A request's id is not a tracing span (see `hearth_gateway::request_id_in_scope`), so the
//! default format would not show it. When no span is current and a request's id is in scope,
//! the line is rendered as usual and `request{correlation_id=…}:` put where that format puts
//! a span, just before the target.

use std::fmt;

use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{Format, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The default format, and the same with colours (for rendering into a plain buffer).
pub(super) struct TextLines {
    plain: Format,
    coloured: Format,
}

impl Default for TextLines {
    fn default() -> Self {
        Self {
            plain: Format::default(),
            coloured: Format::default().with_ansi(true),
        }
    }
}

impl<S, N> FormatEvent<S, N> for TextLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let ansi = w.has_ansi_escapes();
        let format = if ansi { &self.coloured } else { &self.plain };
        if ctx.event_scope().is_some() {
            return format.format_event(ctx, w, event);
        }
        hearth_gateway::request_id_in_scope(|id| {
            let Some(id) = id else {
                return format.format_event(ctx, w.by_ref(), event);
            };
            let mut line = String::new();
            format.format_event(ctx, Writer::new(&mut line), event)?;
            let target = event.metadata().target();
            // How the format writes the target (dimmed when coloured), and the span before it.
            let (marker, request) = if ansi {
                (
                    format!("\x1b[2m{target}\x1b[0m"),
                    format!(
                        "\x1b[1mrequest\x1b[0m\x1b[1m{{\x1b[0mcorrelation_id={id}\x1b[1m}}\x1b[0m\x1b[2m:\x1b[0m "
                    ),
                )
            } else {
                (
                    format!("{target}: "),
                    format!("request{{correlation_id={id}}}: "),
                )
            };
            if let Some(at) = line.find(&marker) {
                line.insert_str(at, &request);
            }
            w.write_str(&line)
        })
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::fmt;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;
    use crate::logging::capture::Captured;

    fn text(ansi: bool, f: impl FnOnce()) -> String {
        let subscriber = |out: Captured| {
            tracing_subscriber::registry().with(
                fmt::layer()
                    .event_format(TextLines::default())
                    .with_ansi(ansi)
                    .with_writer(out),
            )
        };
        Captured::run(subscriber, f)
    }

    #[test]
    fn lines_outside_a_request_are_the_default_format() {
        let out = text(false, || {
            tracing::info!(target: "hearth::x", n = 1, "plain");
            let span = tracing::info_span!("job", k = 2);
            let _in = span.enter();
            tracing::warn!(target: "hearth::y", "inside");
        });
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        assert!(lines[0].ends_with(" INFO hearth::x: plain n=1"), "{out}");
        assert!(
            lines[1].ends_with(" WARN job{k=2}: hearth::y: inside"),
            "{out}"
        );
    }

    #[test]
    fn a_requests_lines_name_it_where_a_span_would_be() {
        for ansi in [false, true] {
            let out = text(ansi, || {
                hearth_gateway::request_id_in_scope(|id| assert_eq!(id, None));
                hearth_gateway::run_in_request_scope("abc-1", || {
                    tracing::info!(target: "hearth::access", status_code = 200, "GET /x 200");
                });
            });
            if ansi {
                assert!(out.contains("\x1b[1mrequest\x1b[0m"), "{out:?}");
                assert!(out.contains("correlation_id=abc-1"), "{out:?}");
                assert!(out.find("request") < out.find("hearth::access"), "{out:?}");
            } else {
                assert!(
                    out.trim_end().ends_with(
                        " INFO request{correlation_id=abc-1}: hearth::access: GET /x 200 status_code=200"
                    ),
                    "{out}"
                );
            }
        }
    }
}
