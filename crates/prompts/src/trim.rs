//! Fitting prefix and suffix into a model's context: keep the text nearest the cursor, cut only
//! at character boundaries, and prefer whole lines.

use hearth_catalog::Family;

/// Bytes of code per token, kept low so an estimate never overflows the context. Source code
/// runs about 3–4 bytes per token with these tokenizers.
const BYTES_PER_TOKEN: usize = 3;
/// Tokens held back for the template's own tokens and the tokenizer's rounding.
const TEMPLATE_RESERVE: usize = 64;
/// The share of the budget the suffix may always claim (GitLab reserves 7 %); it gets more
/// when the prefix does not need its part.
const SUFFIX_SHARE_PERCENT: usize = 7;

/// How much room a prompt has, in tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    pub context_tokens: usize,
    pub max_output_tokens: usize,
}

impl Budget {
    pub fn for_family(family: Family, max_output_tokens: u32) -> Budget {
        Budget {
            context_tokens: family.max_context_tokens() as usize,
            max_output_tokens: max_output_tokens as usize,
        }
    }

    pub(crate) fn input_bytes(self) -> usize {
        self.context_tokens
            .saturating_sub(self.max_output_tokens)
            .saturating_sub(TEMPLATE_RESERVE)
            * BYTES_PER_TOKEN
    }
}

/// The last `max_bytes` of `text` at most, starting on a character boundary and, when the
/// cut falls inside a line, at the next line.
pub fn keep_end(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut start = text.len() - max_bytes;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let kept = &text[start..];
    match kept.find('\n') {
        // Drop the partial first line, unless that would drop everything.
        Some(i) if i + 1 < kept.len() => &kept[i + 1..],
        _ => kept,
    }
}

/// The first `max_bytes` of `text` at most, ending on a character boundary and, when the cut
/// falls inside a line, at the end of the previous line.
pub fn keep_start(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let kept = &text[..end];
    match kept.rfind('\n') {
        Some(i) if i > 0 => &kept[..=i],
        _ => kept,
    }
}

/// Trims prefix and suffix to `budget`: the suffix keeps its start (what follows the cursor),
/// the prefix its end (what precedes it).
pub fn trim_context<'a>(prefix: &'a str, suffix: &'a str, budget: Budget) -> (&'a str, &'a str) {
    let total = budget.input_bytes();
    if prefix.len() + suffix.len() <= total {
        return (prefix, suffix);
    }
    let reserved = total * SUFFIX_SHARE_PERCENT / 100;
    let suffix_room = suffix
        .len()
        .min(reserved.max(total.saturating_sub(prefix.len())));
    let suffix = keep_start(suffix, suffix_room);
    let prefix = keep_end(prefix, total.saturating_sub(suffix.len()));
    (prefix, suffix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keeps_whole_lines_nearest_the_cursor() {
        let prefix = "line one\nline two\nline three\n";
        assert_eq!(keep_end(prefix, 15), "line three\n");
        let suffix = "}\nfn next() {}\nmore";
        assert_eq!(keep_start(suffix, 10), "}\n");
        assert_eq!(keep_end("no newline here", 4), "here");
    }

    #[test]
    fn never_splits_a_character() {
        let s = "ααααα"; // two bytes each
        assert_eq!(keep_end(s, 3), "α");
        assert_eq!(keep_start(s, 3), "α");
        assert_eq!(keep_start("€x", 2), "");
    }

    #[test]
    fn small_inputs_pass_untouched_and_large_ones_fit() {
        let budget = Budget {
            context_tokens: 200,
            max_output_tokens: 36,
        };
        assert_eq!(trim_context("abc", "def", budget), ("abc", "def"));
        let prefix = "p".repeat(10) + "\n" + &"x\n".repeat(400);
        let suffix = "y\n".repeat(400);
        let (p, s) = trim_context(&prefix, &suffix, budget);
        assert!(p.len() + s.len() <= 300, "{} + {}", p.len(), s.len());
        assert!(prefix.ends_with(p) && suffix.starts_with(s));
        assert!(!s.is_empty(), "the suffix keeps its reserved share");
    }

    proptest! {
        #[test]
        fn trimming_never_panics_splits_or_overflows(prefix in "\\PC{0,300}", suffix in "\\PC{0,300}", ctx in 64usize..400, out in 0usize..64) {
            let budget = Budget { context_tokens: ctx, max_output_tokens: out };
            let (p, s) = trim_context(&prefix, &suffix, budget);
            prop_assert!(prefix.ends_with(p));
            prop_assert!(suffix.starts_with(s));
            if prefix.len() + suffix.len() > budget.input_bytes() {
                prop_assert!(p.len() + s.len() <= budget.input_bytes());
            }
        }
    }
}
