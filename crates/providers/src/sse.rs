//! An incremental server-sent-events decoder: bytes go in as the network delivers them (split
//! anywhere, even inside a UTF-8 character), whole events come out. What it holds of an
//! unfinished line or event is capped, so a server that never sends a newline cannot grow it
//! without end.

/// One decoded event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SseEvent {
    /// The event's `data:` lines, joined with `\n`, and its `event:` name if any.
    Data { event: Option<String>, data: String },
    /// `data: [DONE]`, the OpenAI end-of-stream marker.
    Done,
    /// An event grew past the decoder's limit (in bytes); the decoder ignores all further
    /// input.
    TooLarge(usize),
}

/// One decoded event as [`SseDecoder::push_each`] hands it on: borrowed from the decoder,
/// which keeps its buffer for the next event instead of giving up a new string for each, or
/// from the bytes pushed. `data` is as the server sent it, not checked to be UTF-8: a reader
/// that takes only some strings from it checks just those.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SseRef<'a> {
    Data {
        event: Option<&'a str>,
        data: &'a [u8],
    },
    Done,
    TooLarge(usize),
}

impl SseRef<'_> {
    pub fn into_owned(self) -> SseEvent {
        match self {
            SseRef::Data { event, data } => SseEvent::Data {
                event: event.map(str::to_owned),
                data: text(data).into_owned(),
            },
            SseRef::Done => SseEvent::Done,
            SseRef::TooLarge(max) => SseEvent::TooLarge(max),
        }
    }
}

/// The event buffer a decoder keeps between events; a larger one (an unusually long event)
/// is given back rather than held for the rest of the stream.
const KEPT_DATA_BYTES: usize = 4096;

#[derive(Debug)]
pub struct SseDecoder {
    /// The most bytes of one event (its unterminated line, data and name) held at once.
    max: usize,
    failed: bool,
    /// Bytes of a line not yet terminated.
    line: Vec<u8>,
    data: Vec<u8>,
    has_data: bool,
    event: Option<String>,
    /// The previous byte was `\r`, so a following `\n` belongs to the same terminator.
    after_cr: bool,
}

impl Default for SseDecoder {
    fn default() -> Self {
        SseDecoder::with_limit(crate::UpstreamLimits::default().max_event_bytes)
    }
}

impl SseDecoder {
    pub fn new() -> SseDecoder {
        SseDecoder::default()
    }

    /// A decoder that holds at most `max` bytes of one event.
    pub fn with_limit(max: usize) -> SseDecoder {
        SseDecoder {
            max,
            failed: false,
            line: Vec::new(),
            data: Vec::new(),
            has_data: false,
            event: None,
            after_cr: false,
        }
    }

    /// Bytes held for the event being read.
    pub fn buffered(&self) -> usize {
        self.line.len() + self.data.len() + self.event.as_ref().map_or(0, String::len)
    }

    /// Feeds bytes; returns the events they complete, the last being
    /// [`SseEvent::TooLarge`] when an event passed the limit.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        self.push_each(bytes, |e| events.push(e.into_owned()));
        events
    }

    /// As [`push`](Self::push), handing each complete event to `each` as it is decoded,
    /// borrowed (no list and no string per event: this runs for every piece of every stream).
    pub fn push_each(&mut self, mut bytes: &[u8], mut each: impl FnMut(SseRef<'_>)) {
        while !bytes.is_empty() && !self.failed {
            if std::mem::take(&mut self.after_cr) && bytes[0] == b'\n' {
                bytes = &bytes[1..];
                continue;
            }
            let end = memchr::memchr2(b'\n', b'\r', bytes);
            let part = &bytes[..end.unwrap_or(bytes.len())];
            if self.buffered() + part.len() >= self.max {
                self.fail();
                each(SseRef::TooLarge(self.max));
                break;
            }
            let Some(i) = end else {
                self.line.extend_from_slice(part);
                break;
            };
            if self.line.is_empty()
                && !self.has_data
                && self.event.is_none()
                && let Some(value) = part.strip_prefix(b"data:")
            {
                // The usual event, one `data:` line and the blank line after it, both in this
                // read: handed on from where it lies, not gathered in `data` first.
                let mut rest = &bytes[i + 1..];
                if bytes[i] == b'\r' && rest.first() == Some(&b'\n') {
                    rest = &rest[1..];
                }
                if let Some(&blank @ (b'\n' | b'\r')) = rest.first() {
                    hand_on(value.strip_prefix(b" ").unwrap_or(value), None, &mut each);
                    self.after_cr = blank == b'\r';
                    bytes = &rest[1..];
                    continue;
                }
            }
            self.after_cr = bytes[i] == b'\r';
            bytes = &bytes[i + 1..];
            // A line that arrived whole is read where it lies; only a line split across
            // reads is gathered in `line` first.
            if self.line.is_empty() {
                self.line_done(part, &mut each);
            } else {
                self.line.extend_from_slice(part);
                let line = std::mem::take(&mut self.line);
                self.line_done(&line, &mut each);
                // Keeps the allocation for the next split line.
                self.line = line;
                self.line.clear();
            }
        }
    }

    fn fail(&mut self) {
        self.failed = true;
        self.line = Vec::new();
        self.data = Vec::new();
        self.event = None;
        self.has_data = false;
    }

    /// Ends the input; an event the server did not terminate with a blank line still counts.
    pub fn finish(&mut self) -> Option<SseEvent> {
        let mut last = None;
        self.finish_each(|e| last = Some(e.into_owned()));
        last
    }

    /// As [`finish`](Self::finish), handing the last event on borrowed.
    pub fn finish_each(&mut self, mut each: impl FnMut(SseRef<'_>)) {
        if self.failed {
            return;
        }
        // A line on its own never ends an event; the blank line after it does.
        let line = std::mem::take(&mut self.line);
        if !line.is_empty() {
            self.line_done(&line, &mut each);
        }
        self.line_done(b"", &mut each);
    }

    fn line_done(&mut self, line: &[u8], each: &mut impl FnMut(SseRef<'_>)) {
        if line.is_empty() {
            return self.dispatch(each);
        }
        if line[0] == b':' {
            return; // comment / keep-alive
        }
        let (field, value) = match line.iter().position(|&c| c == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"event" => self.event = Some(String::from_utf8_lossy(value).into_owned()),
            _ => {} // id, retry, unknown fields
        }
    }

    fn dispatch(&mut self, each: &mut impl FnMut(SseRef<'_>)) {
        let event = self.event.take();
        if !self.has_data {
            return;
        }
        self.has_data = false;
        hand_on(&self.data, event.as_deref(), each);
        if self.data.capacity() > KEPT_DATA_BYTES {
            self.data = Vec::new();
        } else {
            self.data.clear();
        }
    }
}

/// An event's data as text, what is not UTF-8 replaced (U+FFFD). `from_utf8` first: the
/// lossy reading checks byte by byte, many times slower, and is only needed for a server that
/// sends invalid UTF-8.
pub(crate) fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(data) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(data),
    }
}

/// Hands on an event's data: `[DONE]` (with any ASCII white space around it) as the end
/// marker, anything else as it is.
fn hand_on(data: &[u8], event: Option<&str>, each: &mut impl FnMut(SseRef<'_>)) {
    if data.trim_ascii() == b"[DONE]" {
        each(SseRef::Done);
    } else {
        each(SseRef::Data { event, data });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_in_pieces(bytes: &[u8], cuts: &[usize]) -> Vec<SseEvent> {
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        points.sort_unstable();
        let mut d = SseDecoder::new();
        let mut out = Vec::new();
        let mut last = 0;
        for p in points.into_iter().chain([bytes.len()]) {
            out.extend(d.push(&bytes[last..p]));
            last = p;
        }
        out.extend(d.finish());
        out
    }

    fn data(s: &str) -> SseEvent {
        SseEvent::Data {
            event: None,
            data: s.into(),
        }
    }

    #[test]
    fn decodes_openai_streams_with_any_line_ending() {
        let body =
            b"data: {\"a\":1}\n\n: keep-alive\n\ndata: {\"b\":\"\xC3\xA9\"}\r\n\r\ndata:[DONE]\n\n";
        assert_eq!(
            decode_in_pieces(body, &[]),
            vec![data("{\"a\":1}"), data("{\"b\":\"é\"}"), SseEvent::Done]
        );
    }

    #[test]
    fn multi_line_data_and_event_names() {
        let body = b"event: error\ndata: line1\ndata: line2\n\n";
        assert_eq!(
            decode_in_pieces(body, &[]),
            vec![SseEvent::Data {
                event: Some("error".into()),
                data: "line1\nline2".into()
            }]
        );
    }

    #[test]
    fn an_unterminated_last_event_still_counts() {
        assert_eq!(decode_in_pieces(b"data: x", &[]), vec![data("x")]);
    }

    #[test]
    fn a_line_past_the_limit_ends_decoding() {
        let mut d = SseDecoder::with_limit(16);
        assert_eq!(d.push(b"data: a\n\n"), vec![data("a")]);
        assert_eq!(d.push(b"data: 0123456789"), vec![SseEvent::TooLarge(16)]);
        assert_eq!(d.buffered(), 0);
        assert_eq!(d.push(b"\n\ndata: b\n\n"), vec![]);
        assert_eq!(d.finish(), None);
        // Many short data lines make one event too.
        let mut d = SseDecoder::with_limit(16);
        assert_eq!(
            d.push(b"data: 1234\ndata: 5678\ndata: 9abc\n"),
            vec![SseEvent::TooLarge(16)]
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_or_pass_the_limit(bytes in proptest::collection::vec(any::<u8>(), 0..600), cuts in proptest::collection::vec(0usize..600, 0..12), max in 1usize..64) {
            let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
            points.sort_unstable();
            let mut d = SseDecoder::with_limit(max);
            let mut last = 0;
            let mut too_large = false;
            for p in points.into_iter().chain([bytes.len()]) {
                for e in d.push(&bytes[last..p]) {
                    prop_assert!(!too_large, "nothing after TooLarge");
                    if let SseEvent::Data { data, event } = &e {
                        // Lossy UTF-8 may triple an invalid byte's size, never more.
                        prop_assert!(data.len() + event.as_ref().map_or(0, String::len) <= 3 * max);
                    }
                    too_large |= e == SseEvent::TooLarge(max);
                }
                prop_assert!(d.buffered() < max.max(1));
                last = p;
            }
            let _ = d.finish();
        }

        /// Every kind of line with every line ending, whole and split anywhere: a one-line
        /// event read whole is handed on from where it lies, split it is gathered first; both
        /// must give the same events.
        #[test]
        fn any_lines_with_any_endings_decode_the_same_split_anywhere(
            lines in proptest::collection::vec((0usize..7, "[a-z\"{} ]{0,6}", 0usize..3), 0..12),
            cuts in proptest::collection::vec(0usize..200, 0..10),
        ) {
            let mut body = String::new();
            for (kind, text, ending) in &lines {
                let line = match kind {
                    0 => format!("data: {text}"),
                    1 => format!("data:{text}"),
                    2 => format!("event: {text}"),
                    3 => format!(": {text}"),
                    4 => format!("id: {text}"),
                    5 => " data: [DONE] ".trim().to_string(),
                    _ => String::new(),
                };
                body.push_str(&line);
                body.push_str(["\n", "\r", "\r\n"][*ending]);
            }
            let whole = decode_in_pieces(body.as_bytes(), &[]);
            let split = decode_in_pieces(body.as_bytes(), &cuts);
            prop_assert_eq!(&whole, &split);
            let bytewise = decode_in_pieces(body.as_bytes(), &(0..body.len()).collect::<Vec<_>>());
            prop_assert_eq!(&whole, &bytewise);
        }

        #[test]
        fn any_split_decodes_the_same(texts in proptest::collection::vec("\\PC{0,12}", 1..6), cuts in proptest::collection::vec(0usize..400, 0..10), crlf in any::<bool>()) {
            let nl = if crlf { "\r\n" } else { "\n" };
            let mut body = String::new();
            for t in &texts {
                body.push_str(&format!("data: {t}{nl}{nl}"));
            }
            body.push_str(&format!("data: [DONE]{nl}{nl}"));
            let whole = decode_in_pieces(body.as_bytes(), &[]);
            let split = decode_in_pieces(body.as_bytes(), &cuts);
            prop_assert_eq!(&whole, &split);
            let expected: Vec<SseEvent> = texts.iter().map(|t| {
                if t.trim() == "[DONE]" { SseEvent::Done } else { data(t) }
            }).chain([SseEvent::Done]).collect();
            prop_assert_eq!(whole, expected);
        }
    }
}
