//! The usual stream event, read without a general JSON parser: an object whose choice carries
//! text (or a delta with only text), a finish reason, maybe usage, and otherwise only values
//! Hearth does not read (`id`, `object`, `created`, `model`, `index`, `logprobs: null`,
//! llama-server's `timings`, …). That is nearly every event of every stream, and reading it
//! this way costs a fraction of a typed serde pass, per chunk; a whole answer is the same
//! shape with a `message`. Anything else — escapes beyond the simple ones, fields of the
//! message Hearth would relay, an error, more than one choice, a repeated field, anything
//! malformed — returns `None`, and the text is read by the typed and JSON-value readings as
//! before; a test checks that whenever this reading answers, it answers what they do.

use super::Kind;
use crate::types::{Chunk, Reply, Usage};

/// The chunk of a plain event on its own, or `None` to read it the general way.
#[cfg(test)]
pub(super) fn chunk(data: &str, kind: Kind) -> Option<Chunk> {
    chunk_in_stream(data.as_bytes(), kind, &mut Template::default())
}

/// The longest event kept as a stream's [`Template`]: the usual ones are 100–300 bytes, and
/// an event much longer than that is mostly text, which the template does not save reading.
const TEMPLATE_BYTES: usize = 1024;

/// The last plain event of a stream that carried text and nothing else Hearth reads (no finish
/// reason, no usage), with where its text sat. A stream's events mostly differ from the one
/// before only in their text — the id, model, index and `null`s repeat — so an event that
/// starts with the same bytes up to the text's opening quote and ends with the same bytes from
/// its closing quote reads as that event did, with the new text: the reading is a function of
/// the bytes, and those around the text are the ones it was read from. Checking that costs two
/// comparisons and the text's own scan, against a field-by-field reading of the whole event.
#[derive(Default)]
pub(super) struct Template {
    event: Vec<u8>,
    /// The text's opening and closing quotes in `event`.
    open: usize,
    close: usize,
}

impl Template {
    /// `data`'s chunk if it is the template's event with another text.
    pub(super) fn read(&self, s: &[u8]) -> Option<Chunk> {
        if self.event.is_empty() {
            return None;
        }
        let (head, tail) = (&self.event[..=self.open], &self.event[self.close..]);
        if s.len() < head.len() + tail.len() || !s.starts_with(head) || !s.ends_with(tail) {
            return None;
        }
        let mut r = Reader {
            s,
            at: self.open,
            whole: false,
        };
        // The string must close exactly where the tail begins: a quote inside the new text
        // would end it earlier, and what follows would be read differently.
        let (end, plain) = r.string_end()?;
        if end != s.len() - tail.len() {
            return None;
        }
        Some(Chunk {
            text: r.string_to(end, plain)?,
            ..Chunk::default()
        })
    }

    fn keep(&mut self, data: &[u8], (open, close): Span) {
        if data.len() > TEMPLATE_BYTES {
            return;
        }
        self.event.clear();
        self.event.extend_from_slice(data);
        (self.open, self.close) = (open, close);
    }
}

/// The chunk of one of a stream's events, as [`chunk`] reads it, reading it from `template`
/// when it fits and keeping it there when it is the usual kind.
/// The event's bytes are read as they came: only the strings taken from them are checked to be
/// UTF-8 (most of an event is names and values that are skipped, and checking all of it cost
/// more than reading it).
pub(super) fn chunk_in_stream(data: &[u8], kind: Kind, template: &mut Template) -> Option<Chunk> {
    if let Some(chunk) = template.read(data) {
        return Some(chunk);
    }
    let (choice, usage) = read(data, false)?;
    let (text, span) = match kind {
        Kind::Text => (choice.text, choice.text_span),
        Kind::Chat => (choice.content, choice.content_span),
    };
    if let (Some(span), None, None) = (span, &choice.finish_reason, &usage) {
        template.keep(data, span);
    }
    Some(Chunk {
        text: text.unwrap_or_default(),
        finish_reason: choice.finish_reason,
        usage,
        ..Chunk::default()
    })
}

/// The reply of a plain whole answer (the same shape with one choice, whose text is in a
/// `message` instead of a `delta`), or `None` to read it the general way.
pub(super) fn reply(data: &str, kind: Kind) -> Option<Reply> {
    let (choice, usage) = read(data.as_bytes(), true)?;
    if !choice.present {
        // No choice is an error, which the general reading words.
        return None;
    }
    let text = match kind {
        Kind::Text => choice.text,
        Kind::Chat => choice.content,
    };
    Some(Reply {
        text: text.unwrap_or_default(),
        finish_reason: choice.finish_reason,
        usage,
        ..Reply::default()
    })
}

/// The first choice and the usage; `whole` reads the choice's `message`, else its `delta`.
fn read(data: &[u8], whole: bool) -> Option<(Choice, Option<Usage>)> {
    let mut r = Reader {
        s: data,
        at: 0,
        whole,
    };
    let mut choices_seen = false;
    let mut usage_seen = false;
    let mut choice = Choice::default();
    let mut usage = None;
    r.object(|r, key| {
        match key {
            b"choices" => {
                if std::mem::replace(&mut choices_seen, true) {
                    return None;
                }
                choice = r.choices()?;
            }
            b"usage" => {
                if std::mem::replace(&mut usage_seen, true) {
                    return None;
                }
                usage = r.usage()?;
            }
            b"error" => return None,
            _ => r.skip(0)?,
        }
        Some(())
    })?;
    r.ws();
    if r.at != r.s.len() {
        return None;
    }
    Some((choice, usage))
}

#[derive(Default)]
struct Choice {
    /// Whether there was a choice (`choices` may be empty).
    present: bool,
    text: Option<String>,
    content: Option<String>,
    finish_reason: Option<String>,
    /// Where `text` and `content` were, when they were strings: their opening and closing
    /// quotes.
    text_span: Option<Span>,
    content_span: Option<Span>,
}

/// A string's opening and closing quotes.
type Span = (usize, usize);

/// The bytes that end a run of plain characters in a string: the quote, a backslash, and the
/// control characters (which JSON does not allow there).
const STRING_STOP: [bool; 256] = {
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

struct Reader<'a> {
    /// An event's bytes, not yet known to be UTF-8.
    s: &'a [u8],
    at: usize,
    /// A whole answer: the choice's text is in `message`, not `delta`.
    whole: bool,
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        self.ws();
        (self.peek() == Some(b)).then(|| self.at += 1)
    }

    /// `{ "key": value, … }`, calling `field` to read each value.
    fn object(&mut self, mut field: impl FnMut(&mut Self, &'a [u8]) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        self.ws();
        if self.peek() == Some(b'}') {
            self.at += 1;
            return Some(());
        }
        loop {
            self.ws();
            let key = self.key()?;
            self.eat(b':')?;
            self.ws();
            field(self, key)?;
            self.ws();
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// An object key, which has no escapes (a key with one goes the general way: it may
    /// spell a field Hearth reads).
    fn key(&mut self) -> Option<&'a [u8]> {
        if self.peek()? != b'"' {
            return None;
        }
        let start = self.at + 1;
        let (end, plain) = self.string_end()?;
        self.at = end + 1;
        plain.then(|| &self.s[start..end])
    }

    /// From an opening quote: the closing quote's position, and whether nothing in between
    /// was escaped. Fails on a control character (not allowed in JSON strings) and on a
    /// `\u` escape (read the general way).
    fn string_end(&self) -> Option<(usize, bool)> {
        let mut i = self.at + 1;
        let mut plain = true;
        loop {
            i += self
                .s
                .get(i..)?
                .iter()
                .position(|&b| STRING_STOP[usize::from(b)])?;
            match self.s[i] {
                b'"' => return Some((i, plain)),
                b'\\' => {
                    if !matches!(
                        self.s.get(i + 1)?,
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't'
                    ) {
                        return None;
                    }
                    plain = false;
                    i += 2;
                }
                _ => return None,
            }
        }
    }

    /// A string value, unescaped.
    fn string(&mut self) -> Option<String> {
        if self.peek()? != b'"' {
            return None;
        }
        let (end, plain) = self.string_end()?;
        self.string_to(end, plain)
    }

    /// The string from the opening quote at `at` to the closing one at `end` (as
    /// [`string_end`](Self::string_end) found them), unescaped; `None` if it is not UTF-8
    /// (read the general way, which replaces what is not).
    fn string_to(&mut self, end: usize, plain: bool) -> Option<String> {
        let start = self.at + 1;
        self.at = end + 1;
        let text = std::str::from_utf8(&self.s[start..end]).ok()?;
        if plain {
            return Some(text.to_owned());
        }
        // Every cut below is at an ASCII byte (a backslash or what it escapes), so on a
        // character boundary of `text`.
        let s = text.as_bytes();
        let mut out = String::with_capacity(s.len());
        let mut from = 0;
        let mut i = 0;
        while i < s.len() {
            if s[i] != b'\\' {
                i += 1;
                continue;
            }
            out.push_str(&text[from..i]);
            out.push(match s[i + 1] {
                b'b' => '\u{8}',
                b'f' => '\u{c}',
                b'n' => '\n',
                b'r' => '\r',
                b't' => '\t',
                // `"`, `\\` and `/` stand for themselves (checked by `string_end`).
                other => char::from(other),
            });
            i += 2;
            from = i;
        }
        out.push_str(&text[from..]);
        Some(out)
    }

    /// A string or `null`.
    fn opt_string(&mut self) -> Option<Option<String>> {
        if self.literal(b"null") {
            return Some(None);
        }
        self.string().map(Some)
    }

    fn literal(&mut self, word: &[u8]) -> bool {
        // Compared byte by byte: the words are four or five bytes, shorter than a call to
        // `memcmp`.
        let hit = self.s.len() - self.at >= word.len()
            && word.iter().zip(&self.s[self.at..]).all(|(a, b)| a == b);
        if hit {
            self.at += word.len();
        }
        hit
    }

    /// Skips a string, number, `true`, `false` or `null`; fails on anything else.
    fn scalar(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => {
                let (end, _) = self.string_end()?;
                self.at = end + 1;
                Some(())
            }
            b't' => self.literal(b"true").then_some(()),
            b'f' => self.literal(b"false").then_some(()),
            b'n' => self.literal(b"null").then_some(()),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    /// Skips a value Hearth does not read, nested or not (llama-server's `timings`, OpenAI's
    /// `prompt_tokens_details`); fails on anything malformed, on a `\u` escape and past a few
    /// levels of nesting, as those are read the general way.
    fn skip(&mut self, depth: u8) -> Option<()> {
        match self.peek()? {
            b'{' if depth < 8 => self.object(|r, _| r.skip(depth + 1)),
            b'[' if depth < 8 => {
                self.at += 1;
                self.ws();
                if self.peek() == Some(b']') {
                    self.at += 1;
                    return Some(());
                }
                loop {
                    self.ws();
                    self.skip(depth + 1)?;
                    self.ws();
                    match self.peek()? {
                        b',' => self.at += 1,
                        b']' => {
                            self.at += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            b'{' | b'[' => None,
            _ => self.scalar(),
        }
    }

    /// A JSON number, exactly as the grammar has it.
    fn number(&mut self) -> Option<()> {
        let digits = |r: &mut Self| {
            let start = r.at;
            while matches!(r.peek(), Some(b'0'..=b'9')) {
                r.at += 1;
            }
            (r.at > start).then_some(())
        };
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        if self.peek() == Some(b'0') {
            self.at += 1;
        } else {
            digits(self)?;
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            digits(self)?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            digits(self)?;
        }
        Some(())
    }

    /// A count: a plain non-negative integer (anything else goes the general way) or `null`.
    fn count(&mut self) -> Option<Option<u64>> {
        if self.literal(b"null") {
            return Some(None);
        }
        let start = self.at;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.at += 1;
        }
        let digits = &self.s[start..self.at];
        if digits.is_empty()
            || (digits.len() > 1 && digits[0] == b'0')
            || matches!(self.peek(), Some(b'.' | b'e' | b'E'))
        {
            return None;
        }
        std::str::from_utf8(digits).ok()?.parse().ok().map(Some)
    }

    /// `[]` or `[ one choice ]`.
    fn choices(&mut self) -> Option<Choice> {
        self.eat(b'[')?;
        self.ws();
        if self.peek() == Some(b']') {
            self.at += 1;
            return Some(Choice::default());
        }
        let mut choice = Choice {
            present: true,
            ..Choice::default()
        };
        let whole = self.whole;
        let (mut text, mut delta, mut finish, mut logprobs) = (false, false, false, false);
        self.object(|r, key| {
            let seen = match key {
                b"text" => &mut text,
                b"delta" if !whole => &mut delta,
                b"message" if whole => &mut delta,
                b"finish_reason" => &mut finish,
                b"logprobs" => &mut logprobs,
                _ => return r.skip(0),
            };
            if std::mem::replace(seen, true) {
                return None;
            }
            match key {
                b"text" => {
                    let open = r.at;
                    choice.text = r.opt_string()?;
                    if choice.text.is_some() {
                        choice.text_span = Some((open, r.at - 1));
                    }
                }
                b"finish_reason" => choice.finish_reason = r.opt_string()?,
                b"logprobs" => return r.literal(b"null").then_some(()),
                _ => {
                    if !r.literal(b"null") {
                        (choice.content, choice.content_span) = r.delta()?;
                    }
                }
            }
            Some(())
        })?;
        // One choice only (the general reading takes the first of several).
        self.eat(b']')?;
        Some(choice)
    }

    /// A delta (or a whole answer's message) with nothing but text: its content, and where it
    /// was when it was a string. Other fields may be there only as `null` or `[]` (vLLM's
    /// `"tool_calls":[]`), which the general reading drops too; a refusal, a tool call or
    /// anything else goes the general way.
    fn delta(&mut self) -> Option<(Option<String>, Option<Span>)> {
        let (mut content, mut span) = (None, None);
        let (mut role, mut has_content, mut reasoning) = (false, false, false);
        self.object(|r, key| {
            let seen = match key {
                b"role" => &mut role,
                b"content" => &mut has_content,
                b"reasoning_content" => &mut reasoning,
                _ => return r.nothing(),
            };
            if std::mem::replace(seen, true) {
                return None;
            }
            match key {
                b"content" => {
                    let open = r.at;
                    content = r.opt_string()?;
                    if content.is_some() {
                        span = Some((open, r.at - 1));
                    }
                }
                // Role and reasoning text are not relayed.
                _ => {
                    r.opt_string()?;
                }
            }
            Some(())
        })?;
        Some((content, span))
    }

    /// `null` or `[]`.
    fn nothing(&mut self) -> Option<()> {
        if self.literal(b"null") {
            return Some(());
        }
        self.eat(b'[')?;
        self.eat(b']')
    }

    /// `null`, or the counts of a usage object with only plain values.
    fn usage(&mut self) -> Option<Option<Usage>> {
        if self.literal(b"null") {
            return Some(None);
        }
        let (mut prompt, mut completion) = (None, None);
        let (mut prompt_seen, mut completion_seen) = (false, false);
        self.object(|r, key| {
            match key {
                b"prompt_tokens" => {
                    if std::mem::replace(&mut prompt_seen, true) {
                        return None;
                    }
                    prompt = r.count()?;
                }
                b"completion_tokens" => {
                    if std::mem::replace(&mut completion_seen, true) {
                        return None;
                    }
                    completion = r.count()?;
                }
                _ => r.skip(0)?,
            }
            Some(())
        })?;
        // As the general reading: no prompt count, no usage.
        Some(prompt.map(|prompt_tokens| Usage {
            prompt_tokens,
            completion_tokens: completion.unwrap_or(0),
        }))
    }
}
