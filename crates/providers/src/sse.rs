//! An incremental server-sent-events decoder: bytes go in as the network delivers them (split
//! anywhere, even inside a UTF-8 character), whole events come out.

/// One decoded event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SseEvent {
    /// The event's `data:` lines, joined with `\n`, and its `event:` name if any.
    Data { event: Option<String>, data: String },
    /// `data: [DONE]`, the OpenAI end-of-stream marker.
    Done,
}

#[derive(Debug, Default)]
pub struct SseDecoder {
    /// Bytes of a line not yet terminated.
    line: Vec<u8>,
    data: Vec<u8>,
    has_data: bool,
    event: Option<String>,
    /// The previous byte was `\r`, so a following `\n` belongs to the same terminator.
    after_cr: bool,
}

impl SseDecoder {
    pub fn new() -> SseDecoder {
        SseDecoder::default()
    }

    /// Feeds bytes; returns the events they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        for &b in bytes {
            match b {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    let line = std::mem::take(&mut self.line);
                    if let Some(e) = self.line_done(&line) {
                        events.push(e);
                    }
                }
                _ => {
                    self.after_cr = false;
                    self.line.push(b);
                }
            }
        }
        events
    }

    /// Ends the input; an event the server did not terminate with a blank line still counts.
    pub fn finish(&mut self) -> Option<SseEvent> {
        let line = std::mem::take(&mut self.line);
        if !line.is_empty()
            && let Some(e) = self.line_done(&line)
        {
            return Some(e);
        }
        self.line_done(b"")
    }

    fn line_done(&mut self, line: &[u8]) -> Option<SseEvent> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line[0] == b':' {
            return None; // comment / keep-alive
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
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = self.event.take();
        if !self.has_data {
            return None;
        }
        self.has_data = false;
        let data = String::from_utf8_lossy(&std::mem::take(&mut self.data)).into_owned();
        if data.trim() == "[DONE]" {
            return Some(SseEvent::Done);
        }
        Some(SseEvent::Data { event, data })
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

    proptest! {
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
