//! Cutting a completion where it should end, chunk by chunk, so a stream never shows what a
//! whole reply would not: no stop sequence, no repeated suffix, no whitespace-only answer.

use std::sync::Arc;

/// Scans streamed text for stop sequences. Text that could still turn out to be the start of
/// a stop sequence is held back until the next chunk settles it.
#[derive(Clone, Debug)]
pub struct StopScanner {
    /// Shared with the upstream request it cuts: a request's stops are made once.
    stops: Arc<[String]>,
    /// A suffix line that, when the model repeats it, ends the insertion (and the whitespace
    /// before it goes too).
    echo: Option<String>,
    held: String,
    /// The bytes a stop or the echo line begins with, and the longest of them: most
    /// positions of a chunk start neither, which one lookup tells.
    firsts: ByteSet,
    longest: usize,
    /// Whether anything but whitespace has been seen: whitespace-only answers are dropped.
    started: bool,
    done: bool,
}

/// What a pushed chunk lets show: the first bytes of `held`, or the text a stop ended.
enum Settled {
    Show(usize),
    Stopped(String),
}

impl StopScanner {
    /// Empty stops are dropped; repeated ones do no harm (a position matches either way).
    pub fn new(stops: impl Into<Arc<[String]>>, echo: Option<String>) -> StopScanner {
        let mut stops: Arc<[String]> = stops.into();
        if stops.iter().any(String::is_empty) {
            stops = stops.iter().filter(|s| !s.is_empty()).cloned().collect();
        }
        let echo = echo.filter(|e| !e.is_empty());
        let mut firsts = ByteSet::default();
        let mut longest = 0;
        for s in stops.iter().chain(&echo) {
            firsts.insert(s.as_bytes()[0]);
            longest = longest.max(s.len());
        }
        StopScanner {
            stops,
            echo,
            held: String::new(),
            firsts,
            longest,
            started: false,
            done: false,
        }
    }

    /// True once a stop was found: the rest of the upstream reply is to be ignored.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Feeds a chunk; returns the text that may be shown now. A chunk that settles whole
    /// (nothing held before it, nothing held back of it) is handed back as it came, not copied.
    pub fn push(&mut self, chunk: String) -> String {
        match self.settle(chunk) {
            Settled::Stopped(text) => text,
            Settled::Show(n) if n == self.held.len() => std::mem::take(&mut self.held),
            Settled::Show(n) => {
                let out = self.held[..n].to_string();
                self.held.drain(..n);
                out
            }
        }
    }

    /// As [`push`](Self::push), appending the text that may be shown now to `shown`: a relay
    /// that keeps one buffer for it makes no string per chunk.
    pub fn push_to(&mut self, chunk: String, shown: &mut String) {
        match self.settle(chunk) {
            Settled::Stopped(text) => shown.push_str(&text),
            // Nothing to append to: `held` becomes `shown`, and what it still holds back (a
            // byte or two, if anything) goes to `shown`'s old room, rather than copying out
            // what shows and moving the rest to the front.
            Settled::Show(n) if shown.is_empty() => {
                std::mem::swap(shown, &mut self.held);
                self.held.push_str(&shown[n..]);
                shown.truncate(n);
            }
            Settled::Show(n) => {
                shown.push_str(&self.held[..n]);
                self.held.drain(..n);
            }
        }
    }

    /// Takes `chunk` into `held` and says how much of `held` is settled.
    fn settle(&mut self, chunk: String) -> Settled {
        if self.done {
            return Settled::Show(0);
        }
        if self.held.is_empty() {
            self.held = chunk;
        } else {
            self.held.push_str(&chunk);
        }
        let pending = match self.first_cut(&self.held, true) {
            Cut::Stop(at, is_echo) => return Settled::Stopped(self.stop_at(at, is_echo)),
            Cut::Partial(at) => at,
            Cut::None => self.held.len(),
        };
        let mut safe = pending;
        if self.echo.is_some() {
            // Whitespace before a possible echo line is dropped with it.
            safe = trimmed_end(&self.held[..safe]);
        }
        if !self.started {
            // Only settled text counts: a held "<" may still be the start of a stop.
            if self.held[..safe].trim().is_empty() {
                return Settled::Show(0);
            }
            self.started = true;
        }
        Settled::Show(safe)
    }

    /// Ends the stream; returns what was held back (cut at a stop that was waiting on a
    /// longer one), unless it only ever was whitespace.
    pub fn finish(&mut self) -> String {
        if self.done {
            return String::new();
        }
        if let Some((at, is_echo)) = self.earliest_stop(&self.held) {
            return self.stop_at(at, is_echo);
        }
        self.done = true;
        let rest = std::mem::take(&mut self.held);
        if !self.started && rest.trim().is_empty() {
            String::new()
        } else {
            rest
        }
    }

    /// Ends the answer where a stop (or the echo line) begins in `held`.
    fn stop_at(&mut self, at: usize, is_echo: bool) -> String {
        self.done = true;
        let mut out: String = self.held[..at].to_string();
        if is_echo {
            out.truncate(trimmed_end(&out));
        }
        self.held.clear();
        if self.started || !out.trim().is_empty() {
            out
        } else {
            String::new()
        }
    }

    /// A whole reply cut as pushing it in pieces and finishing would cut it, and whether a
    /// stop (or the echo line) cut it, without copying the text: the scanner's own buffer is
    /// for text that arrives in pieces.
    pub fn cut(&self, mut text: String) -> (String, bool) {
        let found = self.earliest_stop(&text);
        if let Some((at, is_echo)) = found {
            text.truncate(at);
            if is_echo {
                text.truncate(trimmed_end(&text));
            }
        }
        if text.trim().is_empty() {
            text.clear();
        }
        (text, found.is_some())
    }

    /// Runs a whole reply through the scanner piece-wise: the reference [`Self::cut`] and the
    /// streamed pieces are tested against.
    #[cfg(test)]
    fn apply(mut self, text: &str) -> String {
        let mut out = self.push(text.to_owned());
        out.push_str(&self.finish());
        out
    }

    /// Where the first stop (or the echo line) begins in `text`; a stop wins a tie with the
    /// echo.
    fn earliest_stop(&self, text: &str) -> Option<(usize, bool)> {
        match self.first_cut(text, false) {
            Cut::Stop(at, is_echo) => Some((at, is_echo)),
            _ => None,
        }
    }

    /// The first position of `text` where a stop (or the echo line) begins whole, or, with
    /// `partials`, where the rest of `text` is the start of one still arriving. One pass: a
    /// stop found after the start of one still arriving waits, as the longer one may yet
    /// complete and cut earlier (stops "</s>" and "/" with "</" held), as in the whole reply;
    /// so the scan ends at whichever comes first. Every stop is checked at each byte: the stops
    /// are a few bytes and the text a chunk or one reply, where setting up a substring search
    /// per stop (as `str::find` does) costs more than the search.
    fn first_cut(&self, text: &str, partials: bool) -> Cut {
        let bytes = text.as_bytes();
        let echo = self.echo.as_deref().map(str::as_bytes);
        // Stops and echo are never empty (see `new`); the first byte is compared before the
        // rest, as most positions fail there.
        let starts = |rest: &[u8], s: &[u8]| rest[0] == s[0] && rest.starts_with(s);
        for at in 0..bytes.len() {
            if !self.firsts.contains(bytes[at]) {
                continue;
            }
            let rest = &bytes[at..];
            if self.stops.iter().any(|s| starts(rest, s.as_bytes())) {
                return Cut::Stop(at, false);
            }
            if echo.is_some_and(|e| starts(rest, e)) {
                return Cut::Stop(at, true);
            }
            if partials
                && rest.len() < self.longest
                && text.is_char_boundary(at)
                && self
                    .stops
                    .iter()
                    .map(String::as_bytes)
                    .chain(echo)
                    .any(|s| s.len() > rest.len() && s.starts_with(rest))
            {
                return Cut::Partial(at);
            }
        }
        Cut::None
    }
}

/// `text.trim_end().len()`, with ASCII white space (most of what ends a chunk) stripped byte
/// by byte: `trim_end`'s set-up cost more than the rest of a usual chunk's scan.
fn trimmed_end(text: &str) -> usize {
    let bytes = text.as_bytes();
    let mut end = bytes.len();
    // The ASCII characters Unicode counts as white space (U+0009 to U+000D, U+0020).
    while end > 0 && matches!(bytes[end - 1], b'\t'..=b'\r' | b' ') {
        end -= 1;
    }
    if end > 0 && !bytes[end - 1].is_ascii() {
        // A character outside ASCII may be white space too (U+00A0, U+3000, …).
        end = text[..end].trim_end().len();
    }
    end
}

/// Where a chunk's text is cut: at a stop (whether it is the echo line), before text that
/// may still become one, or nowhere.
enum Cut {
    Stop(usize, bool),
    Partial(usize),
    None,
}

/// A set of bytes, one bit each.
#[derive(Clone, Copy, Debug, Default)]
struct ByteSet([u64; 4]);

impl ByteSet {
    fn insert(&mut self, b: u8) {
        self.0[usize::from(b >> 6)] |= 1 << (b & 63);
    }

    fn contains(&self, b: u8) -> bool {
        self.0[usize::from(b >> 6)] & (1 << (b & 63)) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn scan(stops: &[&str], echo: Option<&str>) -> StopScanner {
        StopScanner::new(
            stops.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            echo.map(str::to_string),
        )
    }

    #[test]
    fn cuts_at_the_earliest_stop_even_across_chunks() {
        let mut s = scan(&["<|file_separator|>", "\n\n"], None);
        let mut out = s.push("return a + b<|file_".into());
        assert_eq!(out, "return a + b");
        out.push_str(&s.push("separator|>junk".into()));
        assert!(s.is_done());
        assert_eq!(out, "return a + b");
        assert_eq!(s.push("more".into()), "");
    }

    #[test]
    fn held_partial_matches_are_released_when_they_are_not_stops() {
        let mut s = scan(&["<EOT>"], None);
        assert_eq!(s.push("a <E".into()), "a ");
        assert_eq!(s.push("lse".into()), "<Else");
        assert_eq!(s.finish(), "");
    }

    #[test]
    fn a_repeated_suffix_line_ends_the_insertion_with_its_whitespace() {
        let full = scan(&[], Some("return total")).apply("total = a + b\n    return total\n");
        assert_eq!(full, "total = a + b");
    }

    /// Any white space before the echo line goes with it, the kinds outside ASCII's
    /// `is_ascii_whitespace` too, however the text is split.
    #[test]
    fn every_kind_of_white_space_before_the_echo_goes_with_it() {
        for space in ["\u{b}", "\u{3000}", "\u{a0}", "\t \n"] {
            let whole = format!("x{space}return total");
            let want = scan(&[], Some("return total")).cut(whole.clone()).0;
            assert_eq!(want, "x", "{space:?}");
            let mut s = scan(&[], Some("return total"));
            let mut shown = s.push(format!("x{space}"));
            shown.push_str(&s.push("return total".into()));
            shown.push_str(&s.finish());
            assert_eq!(shown, want, "{space:?}");
        }
    }

    #[test]
    fn trimmed_end_is_trim_end() {
        let ends = [
            "",
            " ",
            "\t\n\u{b}\u{c}\r ",
            "\u{1c}",
            "\u{85}",
            "\u{a0} ",
            " \u{3000}",
            "é",
            "x",
        ];
        for a in ends {
            for b in ends {
                let text = format!("a{a}{b}");
                assert_eq!(trimmed_end(&text), text.trim_end().len(), "{text:?}");
            }
        }
    }

    #[test]
    fn whitespace_only_answers_become_empty() {
        assert_eq!(scan(&["\n\n"], None).apply("   \n \t"), "");
        assert_eq!(scan(&["\n\n"], None).apply(" \n\nfoo"), "");
        assert_eq!(
            scan(&[], None).apply("  x"),
            "  x",
            "leading whitespace before code stays"
        );
    }

    fn split_at_chars(text: &str, cuts: &[usize]) -> Vec<String> {
        let chars: Vec<char> = text.chars().collect();
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (chars.len() + 1)).collect();
        points.sort_unstable();
        let mut out = Vec::new();
        let mut last = 0;
        for p in points.into_iter().chain([chars.len()]) {
            out.push(chars[last..p].iter().collect());
            last = p;
        }
        out
    }

    /// A stop found inside the start of a longer one still arriving waits for it: the whole
    /// reply is cut at the longer one, and so is the stream.
    #[test]
    fn a_shorter_stop_waits_for_a_longer_one_begun_before_it() {
        let mut s = scan(&["</s>", "/"], None);
        assert_eq!(s.push("a </".into()), "a ");
        assert!(!s.is_done());
        assert_eq!(s.push("s>b".into()), "");
        assert!(s.is_done());
        let mut s = scan(&["</s>", "/"], None);
        assert_eq!(s.push("a </".into()), "a ");
        // "</x": the longer stop can no longer come, so the "/" cuts, as in the whole reply.
        assert_eq!(s.push("x".into()), "<");
        assert!(s.is_done());
        assert_eq!(scan(&["</s>", "/"], None).apply("a </x"), "a <");
        let mut s = scan(&["<|endoftext|>", "end"], None);
        assert_eq!(s.push("x <|end".into()), "x ");
        assert_eq!(s.finish(), "<|");
        assert_eq!(
            scan(&["<|endoftext|>", "end"], None).apply("x <|end"),
            "x <|"
        );
    }

    proptest! {
        #[test]
        fn streaming_equals_whole_and_never_shows_a_stop(
            text in "(\\PC|\n|<EOT>|</s>|ret|\u{FF5C}|\u{b}|\u{3000}| ){0,40}",
            cuts in proptest::collection::vec(0usize..64, 0..8),
            stops in proptest::collection::vec("(\\PC|\n){1,4}|<EOT>|</s>|\n\n", 0..4),
            echo in proptest::option::of("[a-z ]{1,10}"),
        ) {
            let make = || StopScanner::new(stops.clone(), echo.clone());
            let whole = make().apply(&text);
            let mut streamed = String::new();
            let mut s = make();
            // The same pieces through `push_to`, into one buffer, and (as the relay uses it)
            // into a buffer cleared for each piece.
            let mut appended = String::new();
            let mut t = make();
            let (mut each, mut shown) = (String::new(), String::new());
            let mut u = make();
            for piece in split_at_chars(&text, &cuts) {
                streamed.push_str(&s.push(piece.clone()));
                t.push_to(piece.clone(), &mut appended);
                prop_assert_eq!(&appended, &streamed);
                shown.clear();
                u.push_to(piece.clone(), &mut shown);
                each.push_str(&shown);
                prop_assert_eq!(&each, &streamed);
            }
            streamed.push_str(&s.finish());
            prop_assert_eq!(&streamed, &whole);
            // A whole reply cut at once: the same text, and "cut" when a stop or the echo line
            // is in it.
            let (cut, was_cut) = make().cut(text.clone());
            prop_assert_eq!(&cut, &whole);
            let found = stops.iter().chain(&echo).any(|s| !s.is_empty() && text.contains(s.as_str()));
            prop_assert_eq!(was_cut, found);
            for stop in stops.iter().filter(|s| !s.is_empty()) {
                prop_assert!(!whole.contains(stop.as_str()), "{:?} in {:?}", stop, whole);
            }
            if let Some(e) = echo.as_deref() {
                prop_assert!(!whole.contains(e));
            }
            prop_assert!(whole.is_empty() || !whole.trim().is_empty());
        }
    }
}
