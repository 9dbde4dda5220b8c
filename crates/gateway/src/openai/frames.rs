//! The SSE frames of a stream's usual chunks (text, and chat role/content/finish), written
//! from a head made once per stream. Everything before the chunk's text — id, object,
//! created, model — is the same for every chunk of a stream; serializing it again for each
//! chunk cost as much as reading the model server's event. The bytes are exactly what
//! serializing [`TextCompletion`](super::wire::TextCompletion) or
//! [`ChatChunk`](super::wire::ChatChunk) gives (see the tests).

use bytes::{BufMut, BytesMut};
use serde::Serialize;

use super::stream::Shape;

/// What answers are written into: a whole answer's `Vec`, or a stream's buffer, from which
/// each piece is split off without a new allocation.
pub(super) trait Out: BufMut {
    fn written(&self) -> usize;
    fn cut(&mut self, at: usize);
}

impl Out for Vec<u8> {
    fn written(&self) -> usize {
        self.len()
    }
    fn cut(&mut self, at: usize) {
        self.truncate(at);
    }
}

impl Out for BytesMut {
    fn written(&self) -> usize {
        self.len()
    }
    fn cut(&mut self, at: usize) {
        self.truncate(at);
    }
}

pub(crate) struct Frames {
    /// `data: {"id":…,"object":…,"created":…,"model":…,"choices":[{"index":0,`
    head: Vec<u8>,
    include_usage: bool,
}

impl Frames {
    pub(crate) fn new(
        shape: Shape,
        id: &str,
        created: u64,
        model: &str,
        include_usage: bool,
    ) -> Self {
        let object = match shape {
            Shape::Text => "text_completion",
            Shape::Chat => "chat.completion.chunk",
        };
        let mut head = Vec::with_capacity(128 + id.len() + model.len());
        head.extend_from_slice(b"data: ");
        put_head(&mut head, id, object, created, model);
        Frames {
            head,
            include_usage,
        }
    }

    /// Appends a `text_completion` chunk to `buf`.
    pub(crate) fn text(&self, buf: &mut BytesMut, text: &str, finish: Option<&str>) {
        self.start(buf, text.len());
        buf.extend_from_slice(br#""text":"#);
        put_str(buf, text);
        self.end(buf, finish);
    }

    /// Appends a `chat.completion.chunk` whose delta has at most a role and content.
    pub(crate) fn chat(
        &self,
        buf: &mut BytesMut,
        role: Option<&str>,
        content: Option<&str>,
        finish: Option<&str>,
    ) {
        self.start(buf, content.map_or(0, str::len));
        buf.extend_from_slice(br#""delta":{"#);
        if let Some(role) = role {
            buf.extend_from_slice(br#""role":"#);
            put_str(buf, role);
        }
        if let Some(content) = content {
            if role.is_some() {
                buf.put_u8(b',');
            }
            buf.extend_from_slice(br#""content":"#);
            put_str(buf, content);
        }
        buf.put_u8(b'}');
        self.end(buf, finish);
    }

    fn start(&self, buf: &mut BytesMut, text_len: usize) {
        buf.reserve(self.head.len() + text_len + 96);
        buf.extend_from_slice(&self.head);
    }

    fn end(&self, buf: &mut BytesMut, finish: Option<&str>) {
        buf.extend_from_slice(br#","logprobs":null,"finish_reason":"#);
        put_opt_str(buf, finish);
        buf.extend_from_slice(b"}]");
        if self.include_usage {
            buf.extend_from_slice(br#","usage":null"#);
        }
        buf.extend_from_slice(b"}\n\n");
    }
}

/// Appends `{"id":…,"object":…,"created":…,"model":…,"choices":[{"index":0,`: the start of
/// every answer and chunk of one choice. The names are written as they are; serializing a
/// struct escaped each of them again.
/// `object` is one of OpenAI's object names (`&'static`, plain ASCII), written without
/// escaping.
pub(super) fn put_head(
    buf: &mut impl Out,
    id: &str,
    object: &'static str,
    created: u64,
    model: &str,
) {
    debug_assert!(!object.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20));
    buf.put_slice(br#"{"id":"#);
    put_str(buf, id);
    buf.put_slice(br#","object":""#);
    buf.put_slice(object.as_bytes());
    buf.put_u8(b'"');
    buf.put_slice(br#","created":"#);
    put_u64(buf, created);
    buf.put_slice(br#","model":"#);
    put_str(buf, model);
    buf.put_slice(br#","choices":[{"index":0,"#);
}

/// Appends `n` in decimal, as JSON writes it, without a serializer's setup per number.
pub(super) fn put_u64(buf: &mut impl Out, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.put_slice(&digits[at..]);
}

/// How JSON writes each byte in a string: `-` as it is, `u` as `\u00xx`, else a backslash and
/// this letter (or quote, or backslash).
const ESCAPE: [u8; 256] = {
    let mut table = [b'-'; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = b'u';
        b += 1;
    }
    table[0x08] = b'b';
    table[0x0c] = b'f';
    table[b'\n' as usize] = b'n';
    table[b'\r' as usize] = b'r';
    table[b'\t' as usize] = b't';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// Appends `s` as a JSON string, byte for byte as serde_json writes it (short escapes for
/// `\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`; `\u00xx` for other control bytes; the rest as
/// it is). Every chunk's text goes through here: through serde_json's serializer and its
/// `io::Write` adapter, a few bytes of text cost ~200 instructions, a fifth of what the
/// chunk's whole relay adds to a bare proxy's.
pub(super) fn put_str(buf: &mut impl Out, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    buf.put_u8(b'"');
    let mut plain = 0;
    for (at, &b) in bytes.iter().enumerate() {
        let short = ESCAPE[usize::from(b)];
        if short == b'-' {
            continue;
        }
        buf.put_slice(&bytes[plain..at]);
        plain = at + 1;
        if short == b'u' {
            buf.put_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]);
        } else {
            buf.put_slice(&[b'\\', short]);
        }
    }
    buf.put_slice(&bytes[plain..]);
    buf.put_u8(b'"');
}

/// Appends `s` as a JSON string, or `null`.
pub(super) fn put_opt_str(buf: &mut impl Out, s: Option<&str>) {
    match s {
        Some(s) => put_str(buf, s),
        None => buf.put_slice(b"null"),
    }
}

/// Appends `value` as JSON. Strings and these plain structs cannot fail to serialize into a
/// growing buffer; were one to, `null` keeps the frame well-formed.
pub(super) fn put_json<B: Out, T: Serialize + ?Sized>(buf: &mut B, value: &T) {
    let mark = buf.written();
    if serde_json::to_writer((&mut *buf).writer(), value).is_err() {
        buf.cut(mark);
        buf.put_slice(b"null");
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::openai::wire::{ChatChunk, ChatChunkChoice, Delta, TextChoice, TextCompletion};

    fn serde_sse<T: Serialize>(value: &T) -> Vec<u8> {
        let mut buf = b"data: ".to_vec();
        serde_json::to_writer(&mut buf, value).unwrap();
        buf.extend_from_slice(b"\n\n");
        buf
    }

    /// Texts that need every kind of escaping, shared with `whole.rs`'s tests.
    pub(in crate::openai) const TEXTS: [&str; 6] = [
        "",
        "return a + b",
        "quote \" backslash \\ newline \n tab \t",
        "bell \u{7} nul \u{0} del \u{7f}",
        "é ✓ 𝄞 \u{2028}",
        "</s>",
    ];

    /// A `text_completion` of one choice, as whole answers and chunks have it.
    pub(in crate::openai) fn text_completion<'a>(
        id: &'a str,
        created: u64,
        model: &'a str,
        text: &'a str,
        finish: Option<&'a str>,
        usage: Option<Option<crate::openai::wire::UsageOut>>,
    ) -> TextCompletion<'a> {
        TextCompletion {
            id,
            object: "text_completion",
            created,
            model,
            choices: vec![TextChoice {
                index: 0,
                text,
                logprobs: None,
                finish_reason: finish,
            }],
            usage,
        }
    }

    proptest::proptest! {
        #[test]
        fn strings_are_written_as_serde_json_writes_them(s in "(\\PC|[\\x00-\\x1f\\x7f\"\\\\])*") {
            let mut buf = Vec::new();
            put_str(&mut buf, &s);
            proptest::prop_assert_eq!(buf, serde_json::to_vec(&s).unwrap());
        }
    }

    #[test]
    fn every_byte_is_written_as_serde_json_writes_it() {
        for c in (0u8..=0x7f).map(char::from).chain(['é', '\u{2028}', '𝄞']) {
            let s = format!("a{c}b");
            let mut buf = Vec::new();
            put_str(&mut buf, &s);
            assert_eq!(buf, serde_json::to_vec(&s).unwrap(), "{c:?}");
        }
    }

    #[test]
    fn numbers_are_written_as_json_writes_them() {
        for n in [0, 7, 9, 10, 99, 100, 1_764_561_600, u64::MAX - 1, u64::MAX] {
            let mut buf = Vec::new();
            put_u64(&mut buf, n);
            assert_eq!(buf, serde_json::to_vec(&n).unwrap());
        }
    }

    #[test]
    fn frames_are_what_serializing_the_chunk_gives() {
        let ids = ["cmpl-0123456789abcdef", "chatcmpl-\"odd\"\\id"];
        let models = ["codestral", "my \"model\" é"];
        for (id, model) in ids.iter().zip(models) {
            for include_usage in [false, true] {
                let created = 1_764_561_600;
                let usage = include_usage.then_some(None);
                let text_frames = Frames::new(Shape::Text, id, created, model, include_usage);
                let chat_frames = Frames::new(Shape::Chat, id, created, model, include_usage);
                for text in TEXTS {
                    for finish in [None, Some("stop"), Some("length"), Some("odd \"reason\"")] {
                        let want =
                            serde_sse(&text_completion(id, created, model, text, finish, usage));
                        let mut got = BytesMut::new();
                        text_frames.text(&mut got, text, finish);
                        assert_eq!(&got[..], &want[..]);
                        for role in [None, Some("assistant")] {
                            for content in [None, Some(text)] {
                                let want = serde_sse(&ChatChunk {
                                    id,
                                    object: "chat.completion.chunk",
                                    created,
                                    model,
                                    choices: vec![ChatChunkChoice {
                                        index: 0,
                                        delta: Delta {
                                            role,
                                            content,
                                            more: None,
                                        },
                                        logprobs: None,
                                        finish_reason: finish,
                                    }],
                                    usage,
                                });
                                let mut got = BytesMut::new();
                                chat_frames.chat(&mut got, role, content, finish);
                                assert_eq!(
                                    String::from_utf8_lossy(&got),
                                    String::from_utf8_lossy(&want)
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}
