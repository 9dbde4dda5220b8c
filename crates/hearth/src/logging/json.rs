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
        // Room for a request span's fields without regrowing.
        let mut out = String::with_capacity(96);
        let mut v = Fields {
            out: &mut out,
            result: Ok(()),
            comma: false,
        };
        fields.record(&mut v);
        v.result?;
        writer.write_str(&out)
    }

    /// Fields recorded after the span was made are appended; one recorded twice then appears
    /// twice (JSON readers keep the last), which Hearth's own spans never do.
    fn add_fields(
        &self,
        current: &'w mut FormattedFields<Self>,
        fields: &Record<'_>,
    ) -> fmt::Result {
        let comma = !current.fields.is_empty();
        let mut v = Fields {
            out: &mut current.fields,
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
    /// The line is built in a `String` of this thread's and handed to the writer once: the
    /// writer is reached through a `dyn fmt::Write`, and the line is some sixty pieces.
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, SpanFields>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        thread_local! {
            static LINE: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
        }
        LINE.with(|cell| match cell.try_borrow_mut() {
            Ok(mut line) => {
                line.clear();
                write_line(&mut line, ctx, event)?;
                w.write_str(&line)
            }
            // Only if formatting a value logged a line itself.
            Err(_) => {
                let mut line = String::new();
                write_line(&mut line, ctx, event)?;
                w.write_str(&line)
            }
        })
    }
}

fn write_line<S>(
    out: &mut String,
    ctx: &FmtContext<'_, S, SpanFields>,
    event: &Event<'_>,
) -> fmt::Result
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let meta = event.metadata();
    out.push_str("{\"timestamp\":\"");
    timestamp(out)?;
    out.push_str("\",\"level\":\"");
    out.push_str(meta.level().as_str());
    out.push('"');
    let mut fields = Fields {
        out,
        result: Ok(()),
        comma: true,
    };
    event.record(&mut fields);
    fields.result?;
    out.push_str(",\"target\":");
    string(out, meta.target());
    if let Some(span) = ctx.lookup_current() {
        out.push_str(",\"span\":{");
        let ext = span.extensions();
        if let Some(stored) = ext.get::<FormattedFields<SpanFields>>()
            && !stored.fields.is_empty()
        {
            out.push_str(&stored.fields);
            out.push(',');
        }
        out.push_str("\"name\":");
        string(out, span.name());
        out.push('}');
    } else {
        // A request's handler: its id stands where its span would (see
        // `hearth_gateway::request_id_in_scope`), in the same shape.
        hearth_gateway::request_id_in_scope(|id| {
            if let Some(id) = id {
                out.push_str(",\"span\":{\"correlation_id\":");
                string(out, id);
                out.push_str(",\"name\":\"request\"}");
            }
        });
    }
    out.push_str("}\n");
    Ok(())
}

/// The RFC 3339 time with microseconds that tracing-subscriber writes. Everything up to the
/// seconds is formatted once per second and thread, which takes the timestamp from a tenth
/// of the line's cost to almost nothing.
fn timestamp(out: &mut String) -> fmt::Result {
    thread_local! {
        static SECOND: std::cell::RefCell<(u64, String)> = const {
            std::cell::RefCell::new((0, String::new()))
        };
    }
    let now = std::time::SystemTime::now();
    let Ok(since) = now.duration_since(std::time::UNIX_EPOCH) else {
        return SystemTime.format_time(&mut Writer::new(out));
    };
    let secs = since.as_secs();
    SECOND.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != secs || cached.1.is_empty() {
            let full = humantime::format_rfc3339_seconds(now).to_string();
            // "YYYY-MM-DDTHH:MM:SSZ"; other shapes (years past 9999) go the slow way.
            let Some(prefix) = full.strip_suffix('Z').filter(|p| p.len() == 19) else {
                cached.1.clear();
                return SystemTime.format_time(&mut Writer::new(out));
            };
            *cached = (secs, format!("{prefix}."));
        }
        out.push_str(&cached.1);
        let mut digits = *b"000000Z";
        let mut rest = since.subsec_micros();
        for d in digits[..6].iter_mut().rev() {
            *d = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        // Only ASCII digits and 'Z' were written.
        out.push_str(std::str::from_utf8(&digits).map_err(|_| fmt::Error)?);
        Ok(())
    })
}

/// Writes each field as `"name":value`, with a comma before each but (unless `comma`) the
/// first.
struct Fields<'a> {
    out: &'a mut String,
    result: fmt::Result,
    comma: bool,
}

impl Fields<'_> {
    fn put(&mut self, field: &Field) {
        if std::mem::replace(&mut self.comma, true) {
            self.out.push(',');
        }
        string(self.out, field.name());
        self.out.push(':');
    }
}

impl Visit for Fields<'_> {
    // Numbers as serde_json writes them (ryu, itoa), which is also faster than `Display`.
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field);
        if value.is_finite() {
            self.out.push_str(ryu::Buffer::new().format_finite(value));
        } else {
            self.out.push_str("null");
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field);
        self.out.push_str(itoa::Buffer::new().format(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field);
        self.out.push_str(itoa::Buffer::new().format(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field);
        self.out.push_str(if value { "true" } else { "false" });
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field);
        string(self.out, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field);
        self.out.push('"');
        if self.result.is_ok() {
            self.result = write!(Escaped(self.out), "{value:?}");
        }
        self.out.push('"');
    }
}

fn string(out: &mut String, s: &str) {
    out.push('"');
    escape_into(out, s);
    out.push('"');
}

/// Escapes what it is given as the inside of a JSON string.
struct Escaped<'a>(&'a mut String);

impl Write for Escaped<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        escape_into(self.0, s);
        Ok(())
    }
}

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

/// The first byte at or after `from` that needs escaping. Eight bytes are tested at a time
/// (a byte-at-a-time scan was most of the access line's cost). In each test below, the lowest
/// flagged byte is an exact match; bytes above a match may be flagged falsely (borrows), and
/// only the lowest flag is used.
fn next_escape(bytes: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = u64::from_le_bytes([1; 8]);
    const HIGHS: u64 = ONES << 7;
    let rest = bytes.get(from..)?;
    let mut chunks = rest.chunks_exact(8);
    let mut at = from;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
        let hits = zero_byte(w ^ (ONES * u64::from(b'"')))
            | zero_byte(w ^ (ONES * u64::from(b'\\')))
            | (w.wrapping_sub(ONES * 0x20) & !w & HIGHS);
        if hits != 0 {
            return Some(at + (hits.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| NEEDS_ESCAPE[b as usize])
        .map(|offset| at + offset)
}

/// Escapes what it is given as the inside of a JSON string.
fn escape_into(out: &mut String, s: &str) {
    let bytes = s.as_bytes();
    let mut plain = 0;
    while let Some(i) = next_escape(bytes, plain) {
        out.push_str(&s[plain..i]);
        match bytes[i] {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            b => {
                // Control characters only: one hex digit pair after "\u00".
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\u00");
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0xf)]));
            }
        }
        plain = i + 1;
    }
    out.push_str(&s[plain..]);
}

#[cfg(test)]
mod tests {
    use proptest::strategy::Strategy;
    use serde_json::Value;
    use tracing_subscriber::fmt;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;
    use crate::logging::capture::Captured;

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

    fn lines(f: impl FnOnce(Captured) -> Box<dyn tracing::Subscriber + Send + Sync>) -> Vec<Value> {
        let out = Captured::run(f, emit);
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
                        .with_writer(buf),
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
                        .with_writer(buf),
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

    /// A request's handler has no span, but its lines carry the request as if it had one;
    /// a real span, when there is one, is still the one written.
    #[test]
    fn a_requests_lines_carry_its_id_as_the_span() {
        let subscriber = |out: Captured| {
            tracing_subscriber::registry().with(
                fmt::layer()
                    .fmt_fields(SpanFields)
                    .event_format(JsonLines)
                    .with_writer(out),
            )
        };
        let out = Captured::run(subscriber, || {
            tracing::info!("outside");
            hearth_gateway::run_in_request_scope("req-7", || {
                tracing::info!("inside");
                let span = tracing::info_span!("job", k = 1);
                let _in = span.enter();
                tracing::info!("in a span");
            });
            tracing::info!("after");
        });
        let lines: Vec<Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 4, "{out}");
        assert!(lines[0].get("span").is_none(), "{out}");
        assert_eq!(lines[1]["span"]["correlation_id"], "req-7");
        assert_eq!(lines[1]["span"]["name"], "request");
        assert_eq!(lines[2]["span"]["name"], "job");
        assert_eq!(lines[2]["span"]["k"], 1);
        assert!(lines[3].get("span").is_none(), "{out}");
    }

    fn escaped(s: &str) -> String {
        let mut out = String::new();
        escape_into(&mut out, s);
        out
    }

    proptest::proptest! {
        /// Whatever the text, quoted it reads back as itself, and only what JSON requires is
        /// escaped (so the eight-byte scan misses nothing and flags nothing else).
        #[test]
        fn escaped_text_reads_back(
            chars in proptest::collection::vec(
                proptest::prop_oneof![
                    (0u32..0x22).prop_map(|c| char::from_u32(c).unwrap_or('?')),
                    proptest::sample::select(vec!['a', '"', '\\', '#', '[', ']', '\u{7f}', 'é', '✓']),
                ],
                0..40,
            ),
        ) {
            let s: String = chars.into_iter().collect();
            let out = escaped(&s);
            let back: String = serde_json::from_str(&format!("\"{out}\"")).unwrap();
            proptest::prop_assert_eq!(&back, &s);
            let expected = s.bytes().filter(|b| NEEDS_ESCAPE[usize::from(*b)]).count();
            proptest::prop_assert_eq!(out.matches('\\').count(), expected + s.matches('\\').count());
        }
    }

    #[test]
    fn every_special_byte_is_found_at_every_position() {
        for special in (0u8..0x20).chain([b'"', b'\\']) {
            for len in 1..20 {
                for at in 0..len {
                    let mut bytes = vec![b'x'; len];
                    bytes[at] = special;
                    assert_eq!(
                        next_escape(&bytes, 0),
                        Some(at),
                        "{special} at {at} of {len}"
                    );
                    assert_eq!(next_escape(&bytes, at + 1), None);
                }
            }
        }
        // Bytes just around the special ones are left alone.
        let near: Vec<u8> = [0x20u8, b'!', b'#', b'[', b']', 0x7f, 0x80, 0xff].repeat(3);
        assert_eq!(next_escape(&near, 0), None);
    }
}
