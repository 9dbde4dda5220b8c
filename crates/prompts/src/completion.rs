//! Code completion prompts, one format per family.
//!
//! Families trained for fill-in-the-middle get their exact FIM tokens, sent as a raw prompt to
//! the server's text-completions endpoint so the tokens reach the model as control tokens.
//! Families without FIM (Mistral 7B, Mixtral, Llama 3) continue the prefix; chat-only families
//! (Claude, GPT) are asked in a chat message for exactly the missing middle.

use hearth_catalog::Family;

use crate::trim::{Budget, trim_context};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

/// What goes to the model server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PromptBody {
    /// A raw prompt for a text-completions endpoint.
    Text(String),
    /// Messages for a chat endpoint.
    Chat(Vec<Message>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompletionStyle {
    FillInTheMiddle,
    PrefixContinuation,
    ChatInstruct,
    /// An instruction in the family's raw instruct format, for platforms that take a raw
    /// prompt for instruct models (Mistral and Mixtral on Bedrock).
    InstructText,
}

#[derive(Clone, Debug, PartialEq)]
pub struct CompletionPrompt {
    pub body: PromptBody,
    pub style: CompletionStyle,
    /// The family's stop sequences; the caller adds the client's.
    pub stops: Vec<String>,
    pub max_tokens: u32,
    pub temperature: f64,
    /// The first line of the suffix when it is distinctive enough that a model repeating it
    /// means the insertion is over.
    pub suffix_echo: Option<String>,
}

struct Format {
    style: CompletionStyle,
    stops: &'static [&'static str],
    max_tokens: u32,
    temperature: f64,
}

/// Per-family defaults. Token limits and temperatures follow GitLab's self-hosted completion
/// prompts where they give one; otherwise greedy decoding.
fn format(family: Family) -> Format {
    use CompletionStyle::*;
    let (style, stops, max_tokens, temperature): (_, &'static [&'static str], _, _) = match family {
        Family::Codestral => (
            FillInTheMiddle,
            &[
                "</s>", "[INST]", "[/INST]", "[PREFIX]", "[MIDDLE]", "[SUFFIX]",
            ],
            64,
            0.32,
        ),
        Family::Codegemma => (
            FillInTheMiddle,
            &[
                "<|file_separator|>",
                "<|fim_prefix|>",
                "<|fim_suffix|>",
                "<|fim_middle|>",
                "<eos>",
            ],
            128,
            0.95,
        ),
        Family::Codellama => (
            FillInTheMiddle,
            &["<EOT>", "</s>", "<PRE>", "<SUF>", "<MID>"],
            128,
            0.95,
        ),
        Family::Deepseekcoder => (
            FillInTheMiddle,
            &[
                "<｜end▁of▁sentence｜>",
                "<|EOT|>",
                "<｜fim▁begin｜>",
                "<｜fim▁hole｜>",
                "<｜fim▁end｜>",
            ],
            128,
            0.0,
        ),
        Family::Starcoder2 => (
            FillInTheMiddle,
            &[
                "<|endoftext|>",
                "<file_sep>",
                "<fim_prefix>",
                "<fim_suffix>",
                "<fim_middle>",
            ],
            128,
            0.0,
        ),
        Family::Qwen => (
            FillInTheMiddle,
            &[
                "<|endoftext|>",
                "<|fim_pad|>",
                "<|file_sep|>",
                "<|repo_name|>",
                "<|fim_prefix|>",
                "<|fim_suffix|>",
                "<|fim_middle|>",
            ],
            128,
            0.0,
        ),
        // A blank line ends a suggestion well for models that only continue text.
        Family::Mistral | Family::Mixtral => {
            (PrefixContinuation, &["\n\n", "</s>", "[INST]"], 64, 0.0)
        }
        Family::Llama3 => (
            PrefixContinuation,
            &["\n\n", "<|eot_id|>", "<|end_of_text|>"],
            64,
            0.0,
        ),
        Family::Claude3 => (ChatInstruct, &[], 128, 0.0),
        // A compatible model whose name names no FIM family: nothing is known of its tokens,
        // so ask in chat, as GitLab's base prompt does for `general`.
        Family::General => (ChatInstruct, &[], 128, 0.0),
        Family::Gpt => (ChatInstruct, &[], 64, 0.0),
    };
    Format {
        style,
        stops,
        max_tokens,
        temperature,
    }
}

/// The file being completed and its repository, for models trained with repository tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RepoFile<'a> {
    /// GitLab's `project_path` (`group/project`).
    pub repo: &'a str,
    /// The file's path in the repository.
    pub path: &'a str,
}

/// The text of a FIM prompt for `family`, or `None` for families without FIM.
fn fim_text(
    family: Family,
    prefix: &str,
    suffix: &str,
    file: Option<RepoFile<'_>>,
) -> Option<String> {
    // Pieces joined into one allocation of the right size (`format!` guesses and regrows).
    Some(match family {
        // Qwen2.5-Coder's repository-level form (its README and report, figure 4): the repo
        // name line, then the file's path line, then the FIM of that file.
        Family::Qwen if file.is_some() => {
            let RepoFile { repo, path } = file?;
            [
                "<|repo_name|>",
                repo,
                "\n<|file_sep|>",
                path,
                "\n<|fim_prefix|>",
                prefix,
                "<|fim_suffix|>",
                suffix,
                "<|fim_middle|>",
            ]
            .concat()
        }
        // StarCoder2's repository-context form (StarCoder2 paper, arXiv 2402.19173, 5.1): the
        // repository name straight after `<repo_name>` (no newline), then the file in FIM form
        // behind `<file_sep>`, its path first and a newline, inside `<fim_prefix>`.
        Family::Starcoder2 if file.is_some() => {
            let RepoFile { repo, path } = file?;
            [
                "<repo_name>",
                repo,
                "<file_sep><fim_prefix>",
                path,
                "\n",
                prefix,
                "<fim_suffix>",
                suffix,
                "<fim_middle>",
            ]
            .concat()
        }
        // Suffix first, as Mistral's FIM tokenizer orders it.
        Family::Codestral => ["<s>[SUFFIX]", suffix, "[PREFIX]", prefix].concat(),
        Family::Codegemma | Family::Qwen => [
            "<|fim_prefix|>",
            prefix,
            "<|fim_suffix|>",
            suffix,
            "<|fim_middle|>",
        ]
        .concat(),
        Family::Codellama => ["<PRE> ", prefix, " <SUF>", suffix, " <MID>"].concat(),
        // Full-width bars (U+FF5C) and the SentencePiece space (U+2581), as the vocabulary has them.
        Family::Deepseekcoder => [
            "<｜fim▁begin｜>",
            prefix,
            "<｜fim▁hole｜>",
            suffix,
            "<｜fim▁end｜>",
        ]
        .concat(),
        Family::Starcoder2 => [
            "<fim_prefix>",
            prefix,
            "<fim_suffix>",
            suffix,
            "<fim_middle>",
        ]
        .concat(),
        _ => return None,
    })
}

const CHAT_SYSTEM: &str = "You complete code. The user sends a file with the marker <CURSOR> where code is missing. \
Reply with only the code that belongs at <CURSOR>: no explanation, no code fences, nothing that is already before or after the marker.";

/// Shortest suffix line worth treating as "the model started repeating the suffix".
const MIN_ECHO_LEN: usize = 8;

const INSTRUCT_ASK: &str = "Fill in the code at <CURSOR> in the file below. Answer with only the missing code, no explanation and no code fences.";

/// The Mistral `[INST]` form of a completion request, for instruct models reached through a
/// raw text-completion API (Mistral 7B and Mixtral on Bedrock): they have no FIM tokens, and
/// continuing the prefix would leave them without the code after the cursor.
pub fn instruct_completion_prompt(
    family: Family,
    prefix: &str,
    suffix: &str,
    max_tokens: Option<u32>,
) -> CompletionPrompt {
    let f = format(family);
    let max_tokens = max_tokens.unwrap_or(f.max_tokens);
    let (prefix, suffix) = trim_context(prefix, suffix, Budget::for_family(family, max_tokens));
    CompletionPrompt {
        body: PromptBody::Text(format!(
            "<s>[INST] {INSTRUCT_ASK}\n\n{prefix}<CURSOR>{suffix} [/INST]"
        )),
        style: CompletionStyle::InstructText,
        stops: vec!["</s>".into(), "[INST]".into()],
        max_tokens,
        temperature: 0.0,
        suffix_echo: None,
    }
}

/// Whether `prompt` already is a FIM prompt in `family`'s own control tokens: clients such as
/// llama.vscode, Continue with a template, or `raw` Ollama requests build it themselves.
pub fn carries_fim_tokens(family: Family, prompt: &str) -> bool {
    let has = |t: &str| prompt.contains(t);
    match family {
        Family::Codestral => has("[SUFFIX]") && has("[PREFIX]"),
        Family::Codegemma | Family::Qwen => has("<|fim_prefix|>") && has("<|fim_suffix|>"),
        Family::Codellama => has("<PRE>") && has("<SUF>"),
        Family::Deepseekcoder => has("<｜fim▁begin｜>") && has("<｜fim▁hole｜>"),
        Family::Starcoder2 => has("<fim_prefix>") && has("<fim_suffix>"),
        _ => false,
    }
}

/// Builds the completion prompt for `family`, trimming prefix and suffix to its context.
/// A prefix that already carries the family's FIM tokens (and no separate suffix) is sent as
/// it is: wrapping it again would nest one template in another, and trimming could cut a
/// control token.
pub fn completion_prompt(
    family: Family,
    prefix: &str,
    suffix: &str,
    language: Option<&str>,
    max_tokens: Option<u32>,
) -> CompletionPrompt {
    completion_prompt_in(family, prefix, suffix, language, max_tokens, None)
}

/// [`completion_prompt`] for a file whose repository and path are known: families trained
/// with repository tokens (Qwen2.5-Coder) get them; the others ignore `file`.
pub fn completion_prompt_in(
    family: Family,
    prefix: &str,
    suffix: &str,
    language: Option<&str>,
    max_tokens: Option<u32>,
    file: Option<RepoFile<'_>>,
) -> CompletionPrompt {
    let f = format(family);
    let max_tokens = max_tokens.unwrap_or(f.max_tokens);
    if suffix.is_empty() && carries_fim_tokens(family, prefix) {
        return CompletionPrompt {
            body: PromptBody::Text(prefix.to_string()),
            style: f.style,
            stops: f.stops.iter().map(|s| s.to_string()).collect(),
            max_tokens,
            temperature: f.temperature,
            suffix_echo: None,
        };
    }
    let (prefix, suffix) = trim_context(prefix, suffix, Budget::for_family(family, max_tokens));
    let body = match f.style {
        CompletionStyle::FillInTheMiddle => PromptBody::Text(
            fim_text(family, prefix, suffix, file).unwrap_or_else(|| prefix.to_string()),
        ),
        // `format` never picks InstructText; the platform asks for it explicitly.
        CompletionStyle::PrefixContinuation | CompletionStyle::InstructText => {
            PromptBody::Text(prefix.to_string())
        }
        CompletionStyle::ChatInstruct => {
            let lang = language
                .map(|l| format!("Language: {l}\n"))
                .unwrap_or_default();
            PromptBody::Chat(vec![
                Message {
                    role: Role::System,
                    content: CHAT_SYSTEM.to_string(),
                },
                Message {
                    role: Role::User,
                    content: format!("{lang}{prefix}<CURSOR>{suffix}"),
                },
            ])
        }
    };
    let suffix_echo = suffix
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .filter(|l| l.len() >= MIN_ECHO_LEN)
        .map(str::to_string);
    CompletionPrompt {
        body,
        style: f.style,
        stops: f.stops.iter().map(|s| s.to_string()).collect(),
        max_tokens,
        temperature: f.temperature,
        suffix_echo,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(family: Family, p: &str, s: &str) -> String {
        match completion_prompt(family, p, s, None, None).body {
            PromptBody::Text(t) => t,
            other => panic!("{other:?}"),
        }
    }

    /// A prompt the client already templated goes out byte for byte, for every FIM family;
    /// plain code that merely mentions one token is still wrapped.
    #[test]
    fn templated_prompts_are_sent_as_they_are() {
        let (p, s) = ("def add(a, b):\n    ", "\n    return c\n");
        for family in [
            Family::Codestral,
            Family::Codegemma,
            Family::Codellama,
            Family::Deepseekcoder,
            Family::Starcoder2,
            Family::Qwen,
        ] {
            let once = text(family, p, s);
            assert!(carries_fim_tokens(family, &once), "{family:?}");
            assert_eq!(text(family, &once, ""), once, "{family:?}");
        }
        assert_ne!(
            text(Family::Codestral, "x = '[SUFFIX]'", ""),
            "x = '[SUFFIX]'"
        );
        assert!(!carries_fim_tokens(
            Family::Mistral,
            "<s>[SUFFIX]a[PREFIX]b"
        ));
    }

    /// Each family's exact bytes, as providers.md §5 and GitLab's templates give them.
    #[test]
    fn fim_formats_are_exact() {
        let (p, s) = ("def add(a, b):\n    ", "\n    return c\n");
        assert_eq!(
            text(Family::Codestral, p, s),
            "<s>[SUFFIX]\n    return c\n[PREFIX]def add(a, b):\n    "
        );
        assert_eq!(
            text(Family::Codegemma, p, s),
            "<|fim_prefix|>def add(a, b):\n    <|fim_suffix|>\n    return c\n<|fim_middle|>"
        );
        assert_eq!(
            text(Family::Codellama, p, s),
            "<PRE> def add(a, b):\n     <SUF>\n    return c\n <MID>"
        );
        let ds = text(Family::Deepseekcoder, p, s);
        assert_eq!(
            ds,
            "<\u{FF5C}fim\u{2581}begin\u{FF5C}>def add(a, b):\n    <\u{FF5C}fim\u{2581}hole\u{FF5C}>\n    return c\n<\u{FF5C}fim\u{2581}end\u{FF5C}>"
        );
        assert_eq!(
            text(Family::Starcoder2, p, s),
            "<fim_prefix>def add(a, b):\n    <fim_suffix>\n    return c\n<fim_middle>"
        );
        assert_eq!(
            text(Family::Qwen, p, s),
            "<|fim_prefix|>def add(a, b):\n    <|fim_suffix|>\n    return c\n<|fim_middle|>"
        );
    }

    /// Snapshot of the exact bytes for the compatible-model code families, against each
    /// model's published tokenizer config (docs/catalog.md names them): Qwen2.5-Coder's
    /// added tokens (`<|fim_prefix|>` is id 151659, `<|fim_middle|>` 151660), StarCoder2's
    /// `<fim_prefix>` / `<fim_suffix>` / `<fim_middle>`, and for DeepSeek-Coder-V2 the pieces
    /// of V2's own model card (code-insertion example for DeepSeek-Coder-V2-Lite-Base):
    /// full-width bars U+FF5C and U+2581, the same spelling as v1's tokenizer.
    #[test]
    fn compatible_code_families_are_byte_exact() {
        let (p, s) = ("fn add(a: i32, b: i32) -> i32 {\n    ", "\n}\n");
        let general = |served: &str| {
            let fam = Family::General.prompt_family(served);
            match completion_prompt(fam, p, s, None, None).body {
                PromptBody::Text(t) => t.into_bytes(),
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(
            general("Qwen2.5-Coder-7B"),
            b"<|fim_prefix|>fn add(a: i32, b: i32) -> i32 {\n    <|fim_suffix|>\n}\n<|fim_middle|>"
        );
        assert_eq!(
            general("starcoder2-15b"),
            b"<fim_prefix>fn add(a: i32, b: i32) -> i32 {\n    <fim_suffix>\n}\n<fim_middle>"
        );
        let mut ds = Vec::new();
        ds.extend_from_slice("<\u{FF5C}fim\u{2581}begin\u{FF5C}>".as_bytes());
        ds.extend_from_slice(p.as_bytes());
        ds.extend_from_slice("<\u{FF5C}fim\u{2581}hole\u{FF5C}>".as_bytes());
        ds.extend_from_slice(s.as_bytes());
        ds.extend_from_slice("<\u{FF5C}fim\u{2581}end\u{FF5C}>".as_bytes());
        // The served names V2 goes by: the Hugging Face repository (with or without its
        // owner), vLLM's `--served-model-name` habits and Ollama's tag.
        for served in [
            "DeepSeek-Coder-V2-Lite-Base",
            "deepseek-ai/DeepSeek-Coder-V2-Lite-Base",
            "deepseek-ai/DeepSeek-Coder-V2-Base",
            "deepseek-coder-v2-lite-base",
            "deepseek-coder-v2:16b",
        ] {
            assert_eq!(general(served), ds, "{served}");
        }
        // Byte by byte: `<` U+FF5C `fim` U+2581 `begin` U+FF5C `>`, U+FF5C being EF BD 9C and
        // U+2581 E2 96 81 in UTF-8, so no ASCII `|` or `_` look-alike slipped in.
        let begin = b"<\xEF\xBD\x9Cfim\xE2\x96\x81begin\xEF\xBD\x9C>";
        let hole = b"<\xEF\xBD\x9Cfim\xE2\x96\x81hole\xEF\xBD\x9C>";
        let end = b"<\xEF\xBD\x9Cfim\xE2\x96\x81end\xEF\xBD\x9C>";
        let expected = [&begin[..], p.as_bytes(), hole, s.as_bytes(), end].concat();
        assert_eq!(ds, expected);
        assert!(!ds.contains(&b'|'));
        // V2 ends a sequence with `<｜end▁of▁sentence｜>` (its model card): a stop, byte-exact.
        let stops = format(Family::General.prompt_family("deepseek-coder-v2:16b")).stops;
        assert!(stops.contains(&"<\u{FF5C}end\u{2581}of\u{2581}sentence\u{FF5C}>"));
    }

    #[test]
    fn qwen_gets_repository_tokens_when_the_file_is_known() {
        let file = RepoFile {
            repo: "acme/calc",
            path: "src/lib.rs",
        };
        let prompt = completion_prompt_in(Family::Qwen, "let x = ", ";\n", None, None, Some(file));
        assert_eq!(
            prompt.body,
            PromptBody::Text(
                "<|repo_name|>acme/calc\n<|file_sep|>src/lib.rs\n<|fim_prefix|>let x = <|fim_suffix|>;\n<|fim_middle|>"
                    .into()
            )
        );
        assert!(prompt.stops.contains(&"<|file_sep|>".to_string()));
        // Families without repository tokens ignore the file.
        let ds = completion_prompt_in(Family::Deepseekcoder, "a", "b", None, None, Some(file));
        assert_eq!(
            ds.body,
            PromptBody::Text("<\u{FF5C}fim\u{2581}begin\u{FF5C}>a<\u{FF5C}fim\u{2581}hole\u{FF5C}>b<\u{FF5C}fim\u{2581}end\u{FF5C}>".into())
        );
    }

    /// StarCoder2's repository-context FIM, byte for byte: no newline after the repository
    /// name, the path and a newline inside `<fim_prefix>`; without a file, the plain form.
    #[test]
    fn starcoder2_gets_repository_tokens_when_the_file_is_known() {
        let file = RepoFile {
            repo: "acme/calc",
            path: "src/lib.rs",
        };
        let prompt = completion_prompt_in(
            Family::Starcoder2,
            "let x = ",
            ";\n",
            None,
            None,
            Some(file),
        );
        let PromptBody::Text(body) = &prompt.body else {
            panic!("{:?}", prompt.body)
        };
        assert_eq!(
            body.as_bytes(),
            b"<repo_name>acme/calc<file_sep><fim_prefix>src/lib.rs\nlet x = <fim_suffix>;\n<fim_middle>"
        );
        // The model writes `<file_sep>` when the file ends: it is a stop.
        assert!(prompt.stops.contains(&"<file_sep>".to_string()));
        let plain = completion_prompt_in(Family::Starcoder2, "a", "b", None, None, None);
        assert_eq!(
            plain.body,
            PromptBody::Text("<fim_prefix>a<fim_suffix>b<fim_middle>".into())
        );
    }

    #[test]
    fn general_without_a_code_family_is_asked_in_chat() {
        let fam = Family::General.prompt_family("Devstral-Small-2507");
        let p = completion_prompt(fam, "x = ", "", Some("python"), None);
        assert_eq!(p.style, CompletionStyle::ChatInstruct);
    }

    #[test]
    fn families_without_fim_continue_the_prefix() {
        for f in [Family::Mistral, Family::Mixtral, Family::Llama3] {
            let prompt = completion_prompt(f, "fn main() {\n", "}\n", None, None);
            assert_eq!(prompt.body, PromptBody::Text("fn main() {\n".into()));
            assert_eq!(prompt.style, CompletionStyle::PrefixContinuation);
            assert!(prompt.stops.contains(&"\n\n".to_string()));
        }
    }

    #[test]
    fn chat_families_get_a_cursor_message() {
        let prompt = completion_prompt(Family::Gpt, "a = ", "\nprint(a)", Some("python"), None);
        match prompt.body {
            PromptBody::Chat(m) => {
                assert_eq!(m[0].role, Role::System);
                assert_eq!(m[1].content, "Language: python\na = <CURSOR>\nprint(a)");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn instruct_text_asks_for_the_middle_in_inst_tags() {
        let p = instruct_completion_prompt(Family::Mixtral, "a = ", "\nprint(a)", None);
        assert_eq!(p.style, CompletionStyle::InstructText);
        match p.body {
            PromptBody::Text(t) => {
                assert!(t.starts_with("<s>[INST] "), "{t}");
                assert!(t.ends_with("a = <CURSOR>\nprint(a) [/INST]"), "{t}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults_and_overrides() {
        let p = completion_prompt(Family::Codestral, "x", "", None, None);
        assert_eq!((p.max_tokens, p.temperature), (64, 0.32));
        assert!(p.stops.contains(&"[SUFFIX]".to_string()));
        let p = completion_prompt(Family::Codestral, "x", "", None, Some(16));
        assert_eq!(p.max_tokens, 16);
        let p = completion_prompt(Family::Codegemma, "x", "\n    return total\n", None, None);
        assert_eq!(p.suffix_echo.as_deref(), Some("return total"));
        let p = completion_prompt(Family::Codegemma, "x", ")\n", None, None);
        assert_eq!(p.suffix_echo, None, "too short to be distinctive");
    }

    #[test]
    fn long_files_are_trimmed_to_the_family_context() {
        let prefix = "x = 1\n".repeat(20_000); // 120 KB, beyond CodeGemma's 8k tokens
        let t = text(Family::Codegemma, &prefix, "");
        assert!(t.len() < 8_000 * 3 + 64, "{}", t.len());
        assert!(t.ends_with("x = 1\n<|fim_suffix|><|fim_middle|>"));
    }
}
