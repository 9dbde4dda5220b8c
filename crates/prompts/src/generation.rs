//! Code generation: the instruction prompt sent as chat messages, and the clean-up of what
//! comes back (code fences, lines that echo the prefix).

use hearth_catalog::Family;

use crate::completion::{Message, Role};
use crate::trim::{Budget, trim_context};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GenerationDefaults {
    pub max_tokens: u32,
    pub temperature: f64,
}

/// Output limits per family, after GitLab's self-hosted generation prompts.
pub fn generation_defaults(family: Family) -> GenerationDefaults {
    let (max_tokens, temperature) = match family {
        Family::Mistral | Family::Mixtral => (256, 0.95),
        Family::Codestral => (256, 0.3),
        Family::Llama3 => (256, 0.0),
        _ => (512, 0.0),
    };
    GenerationDefaults {
        max_tokens,
        temperature,
    }
}

const SYSTEM: &str = "You are a code generator. Follow the instruction and write code that fits the existing file. \
Respond with code only, without explanations.";
const DEFAULT_INSTRUCTION: &str = "Generate the best possible code based on instructions.";

/// The messages asking `family` to generate code at the cursor.
pub fn generation_messages(
    family: Family,
    prefix: &str,
    suffix: &str,
    language: Option<&str>,
    instruction: Option<&str>,
) -> Vec<Message> {
    let defaults = generation_defaults(family);
    let (prefix, suffix) = trim_context(
        prefix,
        suffix,
        Budget::for_family(family, defaults.max_tokens),
    );
    let lang = language.unwrap_or("");
    let instruction = instruction
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .unwrap_or(DEFAULT_INSTRUCTION);
    let mut user = format!("## Existing code:\n\n```{lang}\n{prefix}\n```\n\n");
    if !suffix.trim().is_empty() {
        user.push_str(&format!(
            "## Code after the cursor:\n\n```{lang}\n{suffix}\n```\n\n"
        ));
    }
    user.push_str(&format!(
        "## Instruction to generate the new code:\n\n{instruction}\n\nRespond with only the new code, without any human text."
    ));
    vec![
        Message {
            role: Role::System,
            content: SYSTEM.to_string(),
        },
        Message {
            role: Role::User,
            content: user,
        },
    ]
}

/// How many of the prefix's last lines an answer may not begin by repeating.
const ECHO_WINDOW: usize = 10;

/// Cleans a generation: drops code fences and leading lines that repeat the end of the
/// prefix; an answer of only whitespace becomes empty.
pub fn clean_generation(text: &str, prefix: &str) -> String {
    let mut lines: Vec<&str> = text.lines().collect();
    let first = lines.iter().position(|l| !l.trim().is_empty());
    if let Some(i) = first.filter(|&i| lines[i].trim_start().starts_with("```")) {
        lines.drain(..=i);
    }
    // The code ends at the first closing fence; what follows is commentary.
    if let Some(end) = lines.iter().position(|l| l.trim_start().starts_with("```")) {
        lines.truncate(end);
    }
    let recent: Vec<&str> = prefix
        .lines()
        .rev()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(ECHO_WINDOW)
        .collect();
    let skip = lines
        .iter()
        .take_while(|l| l.trim().is_empty() || recent.contains(&l.trim()))
        .count();
    let out = lines[skip..].join("\n");
    if out.trim().is_empty() {
        String::new()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fences_and_echoed_prefix_lines_go() {
        let prefix = "import os\n\ndef main():\n";
        let answer =
            "```python\ndef main():\n    print(os.getcwd())\n```\nThat prints the directory.";
        assert_eq!(clean_generation(answer, prefix), "    print(os.getcwd())");
        assert_eq!(clean_generation("\n  \n", prefix), "");
        assert_eq!(clean_generation("x = 1", ""), "x = 1");
    }

    #[test]
    fn the_prompt_carries_code_and_instruction() {
        let m = generation_messages(
            Family::Codestral,
            "fn a() {}\n",
            "",
            Some("rust"),
            Some("add a test"),
        );
        assert_eq!(m[0].role, Role::System);
        assert!(m[1].content.contains("```rust\nfn a() {}\n\n```"));
        assert!(m[1].content.contains("add a test"));
        assert!(!m[1].content.contains("Code after the cursor"));
        let m = generation_messages(Family::Mistral, "x", "y", None, None);
        assert!(m[1].content.contains(DEFAULT_INSTRUCTION));
        assert!(m[1].content.contains("## Code after the cursor:"));
        assert_eq!(generation_defaults(Family::Codestral).max_tokens, 256);
    }

    proptest! {
        #[test]
        fn cleaning_never_panics_and_never_leaves_fences(text in "(\\PC|\n|```){0,80}", prefix in "(\\PC|\n){0,40}") {
            let out = clean_generation(&text, &prefix);
            prop_assert!(out.is_empty() || !out.trim().is_empty());
            prop_assert!(!out.lines().next().is_some_and(|l| l.trim_start().starts_with("```")));
        }
    }
}
