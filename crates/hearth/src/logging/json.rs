//! JSON lines written straight into the log line's buffer.
//!
//! The shape is tracing-subscriber's JSON format as Hearth configured it before (flattened event
//! fields, `target`, the current span as `span`), so log pipelines see the same lines. That
//! formatter builds each line through serde's serializer, a UTF-8 check on every piece written
//! and a fresh `String` for every `%value` field, and re-parses the span's stored fields for
//! every line: under load the access line alone cost more CPU than routing and prompting a
//! request. Here every value is escaped as it is written, with no allocation.

use std::fmt::{self, Write};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

pub(super) struct JsonLines;

impl<S> FormatEvent<S, JsonFields> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        w.write_str("{\"timestamp\":\"")?;
        SystemTime.format_time(&mut w)?;
        write!(w, "\",\"level\":\"{}\"", meta.level().as_str())?;
        let mut fields = Fields {
            w: &mut w,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        w.write_str(",\"target\":")?;
        string(&mut w, meta.target())?;
        if let Some(span) = ctx.lookup_current() {
            w.write_str(",\"span\":{")?;
            let ext = span.extensions();
            // The span's fields as JsonFields stored them: one JSON object.
            if let Some(stored) = ext.get::<FormattedFields<JsonFields>>()
                && let Some(inner) = stored
                    .fields
                    .trim()
                    .strip_prefix('{')
                    .and_then(|s| s.strip_suffix('}'))
                && !inner.trim().is_empty()
            {
                w.write_str(inner)?;
                w.write_char(',')?;
            }
            w.write_str("\"name\":")?;
            string(&mut w, span.name())?;
            w.write_char('}')?;
        }
        w.write_str("}\n")
    }
}

/// Writes each event field as `,"name":value`.
struct Fields<'a, 'w> {
    w: &'a mut Writer<'w>,
    result: fmt::Result,
}

impl Fields<'_, '_> {
    fn put(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = (|| {
                self.w.write_char(',')?;
                string(self.w, field.name())?;
                self.w.write_char(':')?;
                value(self.w)
            })();
        }
    }
}

impl Visit for Fields<'_, '_> {
    // Numbers as serde_json writes them (ryu, itoa), which is also faster than `Display`.
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, |w| {
            if value.is_finite() {
                w.write_str(ryu::Buffer::new().format_finite(value))
            } else {
                w.write_str("null")
            }
        });
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, |w| w.write_str(itoa::Buffer::new().format(value)));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, |w| w.write_str(itoa::Buffer::new().format(value)));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, |w| write!(w, "{value}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, |w| string(w, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, |w| {
            w.write_char('"')?;
            write!(Escaped(w), "{value:?}")?;
            w.write_char('"')
        });
    }
}

fn string(w: &mut Writer<'_>, s: &str) -> fmt::Result {
    w.write_char('"')?;
    Escaped(w).write_str(s)?;
    w.write_char('"')
}

/// Escapes what it is given as the inside of a JSON string.
struct Escaped<'a, 'w>(&'a mut Writer<'w>);

impl Write for Escaped<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut plain = 0;
        for (i, b) in s.bytes().enumerate() {
            let escape = match b {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0..=0x1f => "",
                _ => continue,
            };
            self.0.write_str(&s[plain..i])?;
            if escape.is_empty() {
                write!(self.0, "\\u{b:04x}")?;
            } else {
                self.0.write_str(escape)?;
            }
            plain = i + 1;
        }
        self.0.write_str(&s[plain..])
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::Value;
    use tracing_subscriber::fmt;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn emit() {
        let id = "c3add897";
        tracing::info!(target: "hearth::access", correlation_id = id, status_code = 200u16,
            duration_s = 0.003797072, completed = true, "GET /x 200");
        tracing::info!(
            tiny = 1.5e-7,
            huge = 3.0e21,
            whole = 2.0,
            negative = -12i64,
            max = u64::MAX,
            "numbers"
        );
        let span = tracing::info_span!("request", correlation_id = %id, n = 3);
        let _in = span.enter();
        tracing::warn!(
            path = "quote \" backslash \\ newline \n tab \t bell \u{7} é ✓",
            debug = ?vec!["a\"b"], not_a_number = f64::NAN, negative = -5i64,
            "message with {} and \"quotes\"", "args"
        );
        let inner = tracing::debug_span!("empty");
        let _in2 = inner.enter();
        tracing::error!("inside a span without fields");
    }

    fn lines(f: impl FnOnce(Buf) -> Box<dyn tracing::Subscriber + Send + Sync>) -> Vec<Value> {
        let buf = Buf::default();
        tracing::subscriber::with_default(f(buf.clone()), emit);
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        out.lines()
            .map(|l| {
                let mut v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
                let ts = v.as_object_mut().unwrap().remove("timestamp").unwrap();
                assert!(ts.as_str().unwrap().ends_with('Z'), "{ts}");
                v
            })
            .collect()
    }

    /// Same events, same JSON (apart from the timestamp) as tracing-subscriber's own format
    /// configured as Hearth configured it before.
    #[test]
    fn lines_match_tracing_subscribers_json_format() {
        let ours = lines(|buf| {
            Box::new(
                tracing_subscriber::registry().with(
                    fmt::layer()
                        .fmt_fields(JsonFields::new())
                        .event_format(JsonLines)
                        .with_writer(move || buf.clone()),
                ),
            )
        });
        let theirs = lines(|buf| {
            Box::new(
                tracing_subscriber::registry().with(
                    fmt::layer()
                        .json()
                        .flatten_event(true)
                        .with_current_span(true)
                        .with_span_list(false)
                        .with_writer(move || buf.clone()),
                ),
            )
        });
        assert_eq!(ours.len(), 4);
        assert_eq!(ours, theirs);
        assert_eq!(
            ours[2]["path"],
            "quote \" backslash \\ newline \n tab \t bell \u{7} é ✓"
        );
        assert_eq!(ours[2]["span"]["correlation_id"], "c3add897");
        assert_eq!(ours[3]["span"]["name"], "empty");
    }
}
