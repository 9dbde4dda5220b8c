//! JSON lines written straight into the log line's buffer, span fields stored as JSON text.
//!
//! The shape is tracing-subscriber's JSON format as Hearth configured it before (flattened event
//! fields, `target`, the current span as `span`), so log pipelines see the same lines. That
//! formatter builds each line through serde's serializer, a UTF-8 check on every piece written
//! and a fresh `String` for every `%value` field, and re-parses the span's stored fields for
//! every line: under load the access line alone cost more CPU than routing and prompting a
//! request. Here every value is escaped as it is written, with no allocation.

use std::fmt::{self, Write};

use tracing::field::{Field, Visit};
use tracing::span::Record;
use tracing::{Event, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

pub(super) struct JsonLines;

/// How span fields are stored for [`JsonLines`]: the inside of a JSON object (`"a":1,"b":"x"`),
/// written once when the span is made. tracing-subscriber's `JsonFields` builds a map of
/// `serde_json::Value`s for the same thing, which cost more than the rest of the request span.
pub(super) struct SpanFields;

impl<'w> FormatFields<'w> for SpanFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut v = Fields {
            w: &mut writer,
            result: Ok(()),
            comma: false,
        };
        fields.record(&mut v);
        v.result
    }

    /// Fields recorded after the span was made are appended; one recorded twice then appears
    /// twice (JSON readers keep the last), which Hearth's own spans never do.
    fn add_fields(
        &self,
        current: &'w mut FormattedFields<Self>,
        fields: &Record<'_>,
    ) -> fmt::Result {
        let comma = !current.fields.is_empty();
        let mut writer = current.as_writer();
        let mut v = Fields {
            w: &mut writer,
            result: Ok(()),
            comma,
        };
        fields.record(&mut v);
        v.result
    }
}

impl<S> FormatEvent<S, SpanFields> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, SpanFields>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        w.write_str("{\"timestamp\":\"")?;
        timestamp(&mut w)?;
        w.write_str("\",\"level\":\"")?;
        w.write_str(meta.level().as_str())?;
        w.write_char('"')?;
        let mut fields = Fields {
            w: &mut w,
            result: Ok(()),
            comma: true,
        };
        event.record(&mut fields);
        fields.result?;
        w.write_str(",\"target\":")?;
        string(&mut w, meta.target())?;
        if let Some(span) = ctx.lookup_current() {
            w.write_str(",\"span\":{")?;
            let ext = span.extensions();
            if let Some(stored) = ext.get::<FormattedFields<SpanFields>>()
                && !stored.fields.is_empty()
            {
                w.write_str(&stored.fields)?;
                w.write_char(',')?;
            }
            w.write_str("\"name\":")?;
            string(&mut w, span.name())?;
            w.write_char('}')?;
        }
        w.write_str("}\n")
    }
}

/// The RFC 3339 time with microseconds that tracing-subscriber writes. Everything up to the
/// seconds is formatted once per second and thread, which takes the timestamp from a tenth
/// of the line's cost to almost nothing.
fn timestamp(w: &mut Writer<'_>) -> fmt::Result {
    thread_local! {
        static SECOND: std::cell::RefCell<(u64, String)> = const {
            std::cell::RefCell::new((0, String::new()))
        };
    }
    let now = std::time::SystemTime::now();
    let Ok(since) = now.duration_since(std::time::UNIX_EPOCH) else {
        return SystemTime.format_time(w);
    };
    let secs = since.as_secs();
    SECOND.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != secs || cached.1.is_empty() {
            let full = humantime::format_rfc3339_seconds(now).to_string();
            // "YYYY-MM-DDTHH:MM:SSZ"; other shapes (years past 9999) go the slow way.
            let Some(prefix) = full.strip_suffix('Z').filter(|p| p.len() == 19) else {
                cached.1.clear();
                return SystemTime.format_time(w);
            };
            *cached = (secs, format!("{prefix}."));
        }
        w.write_str(&cached.1)?;
        let micros = since.subsec_micros();
        let mut digits = *b"000000Z";
        let mut rest = micros;
        for d in digits[..6].iter_mut().rev() {
            *d = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        // Only ASCII digits and 'Z' were written.
        w.write_str(std::str::from_utf8(&digits).map_err(|_| fmt::Error)?)
    })
}

/// Writes each field as `"name":value`, with a comma before each but (unless `comma`) the
/// first.
struct Fields<'a, 'w> {
    w: &'a mut Writer<'w>,
    result: fmt::Result,
    comma: bool,
}

impl Fields<'_, '_> {
    fn put(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_ok() {
            let comma = std::mem::replace(&mut self.comma, true);
            self.result = (|| {
                if comma {
                    self.w.write_char(',')?;
                }
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
        self.put(field, |w| w.write_str(if value { "true" } else { "false" }));
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

/// Which bytes need escaping: quote, backslash and the control characters.
const NEEDS_ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

impl Write for Escaped<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let bytes = s.as_bytes();
        let mut plain = 0;
        while let Some(offset) = bytes[plain..]
            .iter()
            .position(|&b| NEEDS_ESCAPE[b as usize])
        {
            let i = plain + offset;
            self.0.write_str(&s[plain..i])?;
            match bytes[i] {
                b'"' => self.0.write_str("\\\"")?,
                b'\\' => self.0.write_str("\\\\")?,
                b'\n' => self.0.write_str("\\n")?,
                b'\r' => self.0.write_str("\\r")?,
                b'\t' => self.0.write_str("\\t")?,
                b => write!(self.0, "\\u{b:04x}")?,
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
        drop(_in2);
        let later =
            tracing::info_span!("later", quoted = %"a \"b\"", filled = tracing::field::Empty);
        later.record("filled", 7u64);
        let _in3 = later.enter();
        tracing::info!("inside a span with a field recorded later");
    }

    fn lines(f: impl FnOnce(Buf) -> Box<dyn tracing::Subscriber + Send + Sync>) -> Vec<Value> {
        let buf = Buf::default();
        tracing::subscriber::with_default(f(buf.clone()), emit);
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        out.lines()
            .map(|l| {
                let mut v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
                let ts = v.as_object_mut().unwrap().remove("timestamp").unwrap();
                let ts = ts.as_str().unwrap();
                // 2026-12-01T03:52:30.123456Z, and now.
                assert_eq!(ts.len(), 27, "{ts}");
                assert_eq!(&ts[19..20], ".", "{ts}");
                let at = humantime::parse_rfc3339(ts).unwrap_or_else(|e| panic!("{e}: {ts}"));
                let age = std::time::SystemTime::now().duration_since(at).unwrap();
                assert!(age < std::time::Duration::from_secs(60), "{ts}");
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
                        .fmt_fields(SpanFields)
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
        assert_eq!(ours.len(), 5);
        assert_eq!(ours, theirs);
        assert_eq!(
            ours[2]["path"],
            "quote \" backslash \\ newline \n tab \t bell \u{7} é ✓"
        );
        assert_eq!(ours[2]["span"]["correlation_id"], "c3add897");
        assert_eq!(ours[3]["span"]["name"], "empty");
        assert_eq!(ours[4]["span"]["quoted"], "a \"b\"");
        assert_eq!(ours[4]["span"]["filled"], 7);
    }
}
