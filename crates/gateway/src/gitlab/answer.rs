//! The JSON the code-suggestion routes answer with, as typed structs. Built as
//! `serde_json::Value` maps, an answer cost a map node per key and two walks of the tree (to
//! write it and to drop it); these write straight out (with the key cache's change, 20k fewer
//! instructions and 57 fewer allocations a GitLab code completion).

use hearth_providers::Usage;
use serde::Serialize;

/// The `model` object of an answer.
#[derive(Serialize)]
pub(super) struct Model<'a> {
    pub engine: &'a str,
    pub name: &'a str,
    pub lang: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_consumption_metadata: Option<TokenUse>,
}

/// Token counts as GitLab reads them: the upstream's usage, no context tokens.
#[derive(Serialize)]
pub(super) struct TokenUse {
    input_tokens: u64,
    output_tokens: u64,
    max_output_tokens_used: bool,
    context_tokens_sent: u64,
    context_tokens_used: u64,
}

impl TokenUse {
    pub(super) fn of(usage: Option<Usage>) -> TokenUse {
        TokenUse {
            input_tokens: usage.map_or(0, |u| u.prompt_tokens),
            output_tokens: usage.map_or(0, |u| u.completion_tokens),
            max_output_tokens_used: false,
            context_tokens_sent: 0,
            context_tokens_used: 0,
        }
    }
}

#[derive(Serialize)]
pub(super) struct Choice {
    text: String,
    index: u32,
    finish_reason: &'static str,
}

/// GitLab drops empty suggestions rather than sending an empty choice.
pub(super) fn choices(text: String) -> Vec<Choice> {
    if text.is_empty() {
        Vec::new()
    } else {
        vec![Choice {
            text,
            index: 0,
            finish_reason: "length",
        }]
    }
}

/// A whole answer on `/v2/code/completions` and `/v2/code/generations`.
#[derive(Serialize)]
pub(super) struct V2<'a> {
    pub id: &'static str,
    pub model: Model<'a>,
    /// Always empty: Hearth runs no experiments.
    pub experiments: [(); 0],
    pub object: &'static str,
    pub created: u64,
    pub choices: Vec<Choice>,
    pub metadata: Flags,
}

#[derive(Serialize)]
pub(super) struct Flags {
    pub enabled_feature_flags: Vec<String>,
}

/// The `metadata` of `/v3/code/completions` and `/v4/code/suggestions`.
#[derive(Serialize)]
pub(super) struct V3Metadata<'a> {
    pub model: &'a Model<'a>,
    pub timestamp: u64,
    pub enabled_feature_flags: Vec<String>,
    /// Written as `null`: there is no cloud region to name.
    pub region: Option<&'static str>,
}

/// A whole answer on v3 and v4.
#[derive(Serialize)]
pub(super) struct V3<'a> {
    pub choices: Vec<Choice>,
    pub metadata: &'a V3Metadata<'a>,
    pub model: &'a Model<'a>,
}

/// The `stream_start` event's data on v4.
#[derive(Serialize)]
pub(super) struct StreamStart<'a> {
    pub metadata: &'a V3Metadata<'a>,
}

/// A `content_chunk` event's data on v4: `{"choices":[{"delta":{"content":…},"index":0}]}`.
#[derive(Serialize)]
pub(super) struct ContentChunk<'a> {
    choices: [DeltaChoice<'a>; 1],
}

#[derive(Serialize)]
struct DeltaChoice<'a> {
    delta: Delta<'a>,
    index: u32,
}

#[derive(Serialize)]
struct Delta<'a> {
    content: &'a str,
}

impl<'a> ContentChunk<'a> {
    pub(super) fn of(content: &'a str) -> ContentChunk<'a> {
        ContentChunk {
            choices: [DeltaChoice {
                delta: Delta { content },
                index: 0,
            }],
        }
    }
}

/// JSON text of an answer part; these types have only strings, numbers and sequences, which
/// serde_json always writes.
pub(super) fn to_string(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_default()
}
