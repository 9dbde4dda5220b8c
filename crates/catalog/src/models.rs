//! The model table: every model the seed pages list, with its ratings, platforms and size.

use serde::Serialize;

use crate::family::{Family, ReleaseStatus};
use crate::rating::{Rating, Ratings};

/// A serving platform the catalog lists for a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    Vllm,
    Bedrock,
    AzureOpenai,
}

impl Platform {
    pub fn label(self) -> &'static str {
        match self {
            Self::Vllm => "vLLM",
            Self::Bedrock => "AWS Bedrock",
            Self::AzureOpenai => "Azure OpenAI",
        }
    }
}

/// Which seed page a row comes from: the newer "supported models" page (000) wins where both
/// list a model; models only the older "set up your infrastructure" page (002) lists keep its
/// yes/no marks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    SupportedModelsPage,
    InfrastructurePage,
    /// GitLab 18.x "Models and hardware requirements" page (four rating columns), or the
    /// GitLab issue docs/catalog.md names for the row.
    CurrentPage,
}

/// Weight precision of the checkpoint the catalog sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    Bf16,
    /// FP8 (E4M3) weights, one byte per parameter: a published FP8 checkpoint, or vLLM's
    /// `--quantization fp8` of a bf16 one.
    Fp8,
    /// AWQ 4-bit weights with one 16-bit scale and one 4-bit zero point per group of 128
    /// (the `quantization_config` of the AWQ-INT4 checkpoints: bits 4, group_size 128,
    /// zero_point true), so 4 + 20/128 bits per parameter.
    AwqInt4,
    /// OpenAI's gpt-oss checkpoints ship their MoE weights in MXFP4 (4.25 bits per parameter
    /// with the block scales); the rest of the model is bf16 but small beside them.
    Mxfp4,
}

impl Precision {
    pub fn bytes_per_param(self) -> f64 {
        match self {
            Self::Bf16 => 2.0,
            Self::Fp8 => 1.0,
            Self::AwqInt4 => (4.0 + 20.0 / 128.0) / 8.0,
            Self::Mxfp4 => 4.25 / 8.0,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Bf16 => "bf16",
            Self::Fp8 => "FP8",
            Self::AwqInt4 => "AWQ-INT4",
            Self::Mxfp4 => "MXFP4",
        }
    }

    /// The `--precision` spellings `hearth plan` takes.
    pub fn parse(s: &str) -> Result<Precision, String> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "bf16" | "fp16" => Ok(Self::Bf16),
            "fp8" => Ok(Self::Fp8),
            "awq" | "awq-int4" | "int4" => Ok(Self::AwqInt4),
            "mxfp4" => Ok(Self::Mxfp4),
            other => Err(format!(
                "unknown precision {other:?}: use bf16, fp8 or awq-int4"
            )),
        }
    }
}

/// GitLab stopped supporting a model: it still works, but GitLab gives no support for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Deprecation {
    /// The GitLab version whose deprecations page announced it.
    pub since: &'static str,
    /// The GitLab version from which GitLab no longer supports it.
    pub end_of_support: &'static str,
    /// The catalog id GitLab points to instead.
    pub replacement: &'static str,
}

/// The `vllm serve` options a model needs beyond the family defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ServeFlags {
    /// Oldest vLLM release that serves the model.
    pub min_vllm: Option<&'static str>,
    /// Load tokenizer, config and weights in Mistral's own format.
    pub mistral_format: bool,
    /// `--tool-call-parser` (with `--enable-auto-tool-choice`), for Duo Chat's tools.
    pub tool_parser: Option<&'static str>,
    /// `--chat-template` path, where the repository's own template cannot call tools.
    pub chat_template: Option<&'static str>,
    /// `--max-model-len`: capped so the KV cache the sizing assumes is what vLLM reserves.
    pub max_model_len: Option<u32>,
    /// Options the model card asks for that fit no field above.
    pub extra: &'static [&'static str],
}

impl ServeFlags {
    pub const NONE: ServeFlags = ServeFlags {
        min_vllm: None,
        mistral_format: false,
        tool_parser: None,
        chat_template: None,
        max_model_len: None,
        extra: &[],
    };
}

/// The architecture figures sizing needs. Parameter counts and shapes are the models'
/// published configs.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ModelShape {
    pub params_billion: f32,
    pub layers: u32,
    pub attention_heads: u32,
    pub kv_heads: u32,
    pub head_dim: u32,
    pub context_tokens: u32,
    /// Parameters used per token, for mixture-of-experts models: speed follows these,
    /// memory follows `params_billion`.
    pub active_params_billion: Option<f32>,
    pub precision: Precision,
}

/// One approved (or under-evaluation) model.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Model {
    /// Stable slug used on the command line and in the API.
    pub id: &'static str,
    /// The name the GitLab page uses.
    pub name: &'static str,
    pub family: Family,
    /// Hugging Face repository, or the cloud's model id for cloud-only models.
    pub public_id: &'static str,
    /// The Bedrock model id, where the model is offered on Bedrock.
    pub bedrock_id: Option<&'static str>,
    pub platforms: &'static [Platform],
    pub status: ReleaseStatus,
    pub ratings: Ratings,
    pub source: Source,
    /// `None` for models that only run in a cloud (no GPUs of yours to size).
    pub shape: Option<ModelShape>,
    /// The rating for GitLab's Duo Agent Platform column, where the page has one. Hearth
    /// does not serve the Agent Platform; the figure is shown so the table reads like GitLab's.
    pub agent_platform: Option<Rating>,
    /// The GitLab version whose page first lists the model, where a source states it.
    pub introduced: Option<&'static str>,
    pub deprecated: Option<Deprecation>,
    pub serve: ServeFlags,
}

impl Model {
    pub fn serves_on(&self, platform: Platform) -> bool {
        self.platforms.contains(&platform)
    }

    /// The repository's last path segment, which is what vLLM users usually serve the
    /// model as (`Mixtral-8x7B-Instruct-v0.1`).
    pub fn repo_name(&self) -> &'static str {
        self.public_id.rsplit('/').next().unwrap_or(self.public_id)
    }
}

const fn r(code_completion: Rating, code_generation: Rating, chat: Rating) -> Ratings {
    Ratings {
        code_completion,
        code_generation,
        chat,
    }
}

use Rating::{Amber as A, Green as G, NotSupported as No, Red as R, Supported as Yes};

const VLLM: &[Platform] = &[Platform::Vllm];
const VLLM_BEDROCK: &[Platform] = &[Platform::Vllm, Platform::Bedrock];
const BEDROCK: &[Platform] = &[Platform::Bedrock];
const AZURE: &[Platform] = &[Platform::AzureOpenai];

const MISTRAL_7B: ModelShape = ModelShape {
    params_billion: 7.25,
    layers: 32,
    attention_heads: 32,
    kv_heads: 8,
    head_dim: 128,
    context_tokens: 32_768,
    active_params_billion: None,
    precision: Precision::Bf16,
};
const MIXTRAL_8X7B: ModelShape = ModelShape {
    params_billion: 46.7,
    layers: 32,
    attention_heads: 32,
    kv_heads: 8,
    head_dim: 128,
    context_tokens: 32_768,
    active_params_billion: Some(12.9),
    precision: Precision::Bf16,
};
const MIXTRAL_8X22B: ModelShape = ModelShape {
    params_billion: 141.0,
    layers: 56,
    attention_heads: 48,
    kv_heads: 8,
    head_dim: 128,
    context_tokens: 65_536,
    active_params_billion: Some(39.0),
    precision: Precision::Bf16,
};
const CODEGEMMA_7B: ModelShape = ModelShape {
    params_billion: 8.54,
    layers: 28,
    attention_heads: 16,
    kv_heads: 16,
    head_dim: 256,
    context_tokens: 8_192,
    active_params_billion: None,
    precision: Precision::Bf16,
};
const CODELLAMA_13B: ModelShape = ModelShape {
    params_billion: 13.0,
    layers: 40,
    attention_heads: 40,
    kv_heads: 40,
    head_dim: 128,
    context_tokens: 16_384,
    active_params_billion: None,
    precision: Precision::Bf16,
};
const DEEPSEEK_33B: ModelShape = ModelShape {
    params_billion: 33.3,
    layers: 62,
    attention_heads: 56,
    kv_heads: 8,
    head_dim: 128,
    context_tokens: 16_384,
    active_params_billion: None,
    precision: Precision::Bf16,
};

/// GitLab deprecated its early Mistral models (Mistral 7B, Mixtral 8x7B and 8x22B) in favour of
/// Mistral Small 24B Instruct 2506: announced in 18.3, end of support in 18.6 (its deprecations
/// page, docs/catalog.md); every seed row of those two families is one.
const fn seed_deprecation(family: Family) -> Option<Deprecation> {
    match family {
        Family::Mistral | Family::Mixtral => Some(Deprecation {
            since: "18.3",
            end_of_support: "18.6",
            replacement: "mistral-small-24b-instruct-2506",
        }),
        _ => None,
    }
}

macro_rules! model {
    ($id:literal, $name:literal, $family:ident, $public:literal, $bedrock:expr, $platforms:expr,
     $status:ident, $ratings:expr, $source:ident, $shape:expr) => {
        Model {
            id: $id,
            name: $name,
            family: Family::$family,
            public_id: $public,
            bedrock_id: $bedrock,
            platforms: $platforms,
            status: ReleaseStatus::$status,
            ratings: $ratings,
            source: Source::$source,
            shape: $shape,
            agent_platform: None,
            introduced: None,
            deprecated: seed_deprecation(Family::$family),
            serve: ServeFlags::NONE,
        }
    };
}

/// KV cache the sizing keeps (hardware.rs caps at the same figure); `--max-model-len` is set to
/// it for long-context models so vLLM does not reserve a 128k-token sequence the estimate
/// leaves out.
const KV_CAP: u32 = 16_384;

const VLLM_AZURE_BEDROCK: &[Platform] = &[Platform::Vllm, Platform::AzureOpenai, Platform::Bedrock];

const MISTRAL_SMALL_24B: ModelShape = ModelShape {
    params_billion: 24.0,
    layers: 40,
    attention_heads: 32,
    kv_heads: 8,
    head_dim: 128,
    context_tokens: 131_072,
    active_params_billion: None,
    precision: Precision::Bf16,
};

/// Llama 3 and 3.x share their shape per size: 8B has 32 layers and 32 heads, 70B 80 and 64,
/// both with 8 KV heads of 128 dimensions; 3.1 and 3.3 raise the context from 8k to 128k.
const fn llama(params_billion: f32, layers: u32, heads: u32, context_tokens: u32) -> ModelShape {
    ModelShape {
        params_billion,
        layers,
        attention_heads: heads,
        kv_heads: 8,
        head_dim: 128,
        context_tokens,
        active_params_billion: None,
        precision: Precision::Bf16,
    }
}

/// gpt-oss: 64 query heads and 8 KV heads of 64 dimensions, 128k context, MXFP4 experts.
const fn gpt_oss(total: f32, active: f32, layers: u32) -> ModelShape {
    ModelShape {
        params_billion: total,
        layers,
        attention_heads: 64,
        kv_heads: 8,
        head_dim: 64,
        context_tokens: 131_072,
        active_params_billion: Some(active),
        precision: Precision::Mxfp4,
    }
}

/// The five Llama rows came to GitLab Duo Self-Hosted together, as beta, in GitLab 17.10
/// (release-post issue gitlab-org/gitlab 523917 and the 17.10 Root Cause Analysis beta it points
/// to; docs/catalog.md gives the sources and what stayed unknown for the other rows).
const LLAMA_INTRODUCED: Option<&str> = Some("17.10");

/// Llama 3 (not 3.1) has no tool-calling format and an 8k window, which vLLM reads from the
/// config: nothing to add.
const LLAMA3_SERVE: ServeFlags = ServeFlags::NONE;

/// vLLM's tool-calling recipe for Llama 3.1 and later: JSON tool calls with the template vLLM
/// ships in its examples directory.
const LLAMA31_SERVE: ServeFlags = ServeFlags {
    min_vllm: None,
    mistral_format: false,
    tool_parser: Some("llama3_json"),
    chat_template: Some("examples/tool_chat_template_llama3.1_json.jinja"),
    max_model_len: Some(KV_CAP),
    extra: &[],
};

/// gpt-oss needs vLLM 0.10.1 (the first release with its MXFP4 kernels and the harmony
/// format) and its own tool parser.
const GPT_OSS_SERVE: ServeFlags = ServeFlags {
    min_vllm: Some("0.10.1"),
    mistral_format: false,
    tool_parser: Some("openai"),
    chat_template: None,
    max_model_len: Some(KV_CAP),
    extra: &[],
};

/// A row of GitLab 18.x's table: four ratings (completion, generation, chat, Agent Platform),
/// GA, not deprecated.
macro_rules! current {
    ($id:literal, $name:literal, $family:ident, $public:literal, $bedrock:expr, $platforms:expr,
     [$cc:expr, $cg:expr, $chat:expr, $agent:expr], $introduced:expr, $shape:expr, $serve:expr) => {
        Model {
            id: $id,
            name: $name,
            family: Family::$family,
            public_id: $public,
            bedrock_id: $bedrock,
            platforms: $platforms,
            status: ReleaseStatus::Ga,
            ratings: r($cc, $cg, $chat),
            source: Source::CurrentPage,
            shape: $shape,
            agent_platform: Some($agent),
            introduced: $introduced,
            deprecated: None,
            serve: $serve,
        }
    };
}

/// Every catalog model, approved ones first, in the seed pages' order.
pub static MODELS: &[Model] = &[
    // Approved (seed 000, "Approved LLMs").
    model!(
        "codestral-22b-v0.1",
        "Codestral 22B v0.1",
        Codestral,
        "mistralai/Codestral-22B-v0.1",
        None,
        VLLM,
        Ga,
        r(G, G, No),
        SupportedModelsPage,
        Some(ModelShape {
            params_billion: 22.2,
            layers: 56,
            attention_heads: 48,
            kv_heads: 8,
            head_dim: 128,
            context_tokens: 32_768,
            active_params_billion: None,
            precision: Precision::Bf16,
        })
    ),
    model!(
        "mistral-7b-instruct-v0.3",
        "Mistral 7B-it v0.3",
        Mistral,
        "mistralai/Mistral-7B-Instruct-v0.3",
        None,
        VLLM,
        Ga,
        r(G, G, R),
        SupportedModelsPage,
        Some(MISTRAL_7B)
    ),
    model!(
        "mixtral-8x7b-instruct-v0.1",
        "Mixtral 8x7B-it v0.1",
        Mixtral,
        "mistralai/Mixtral-8x7B-Instruct-v0.1",
        Some("mistral.mixtral-8x7b-instruct-v0:1"),
        VLLM_BEDROCK,
        Ga,
        r(G, G, A),
        SupportedModelsPage,
        Some(MIXTRAL_8X7B)
    ),
    model!(
        "mixtral-8x22b-instruct-v0.1",
        "Mixtral 8x22B-it v0.1",
        Mixtral,
        "mistralai/Mixtral-8x22B-Instruct-v0.1",
        None,
        VLLM,
        Ga,
        r(G, G, G),
        SupportedModelsPage,
        Some(MIXTRAL_8X22B)
    ),
    model!(
        "claude-3.5-sonnet",
        "Claude 3.5 Sonnet",
        Claude3,
        "anthropic.claude-3-5-sonnet-20240620-v1:0",
        Some("anthropic.claude-3-5-sonnet-20240620-v1:0"),
        BEDROCK,
        Ga,
        r(G, G, G),
        SupportedModelsPage,
        None
    ),
    model!(
        "gpt-4-turbo",
        "GPT-4 Turbo",
        Gpt,
        "gpt-4-turbo",
        None,
        AZURE,
        Ga,
        r(G, G, A),
        SupportedModelsPage,
        None
    ),
    model!(
        "gpt-4o",
        "GPT-4o",
        Gpt,
        "gpt-4o",
        None,
        AZURE,
        Ga,
        r(G, G, G),
        SupportedModelsPage,
        None
    ),
    model!(
        "gpt-4o-mini",
        "GPT-4o-mini",
        Gpt,
        "gpt-4o-mini",
        None,
        AZURE,
        Ga,
        r(G, G, A),
        SupportedModelsPage,
        None
    ),
    // Under evaluation (seed 000).
    model!(
        "codegemma-2b",
        "CodeGemma 2b",
        Codegemma,
        "google/codegemma-2b",
        None,
        VLLM,
        Beta,
        r(Yes, No, No),
        SupportedModelsPage,
        Some(ModelShape {
            params_billion: 2.51,
            layers: 18,
            attention_heads: 8,
            kv_heads: 1,
            head_dim: 256,
            context_tokens: 8_192,
            active_params_billion: None,
            precision: Precision::Bf16,
        })
    ),
    model!(
        "codegemma-7b-it",
        "CodeGemma 7b-it",
        Codegemma,
        "google/codegemma-7b-it",
        None,
        VLLM,
        Beta,
        r(No, Yes, No),
        SupportedModelsPage,
        Some(CODEGEMMA_7B)
    ),
    model!(
        "codegemma-7b",
        "CodeGemma 7b-code",
        Codegemma,
        "google/codegemma-7b",
        None,
        VLLM,
        Beta,
        r(Yes, No, No),
        SupportedModelsPage,
        Some(CODEGEMMA_7B)
    ),
    model!(
        "codellama-13b-instruct",
        "Code-Llama 13b",
        Codellama,
        "meta-llama/CodeLlama-13b-Instruct-hf",
        None,
        VLLM,
        Beta,
        r(No, Yes, No),
        SupportedModelsPage,
        Some(CODELLAMA_13B)
    ),
    model!(
        "deepseek-coder-33b-instruct",
        "DeepSeek Coder 33b Instruct",
        Deepseekcoder,
        "deepseek-ai/deepseek-coder-33b-instruct",
        None,
        VLLM,
        Beta,
        r(Yes, Yes, No),
        SupportedModelsPage,
        Some(DEEPSEEK_33B)
    ),
    model!(
        "deepseek-coder-33b-base",
        "DeepSeek Coder 33b Base",
        Deepseekcoder,
        "deepseek-ai/deepseek-coder-33b-base",
        None,
        VLLM,
        Beta,
        r(Yes, No, No),
        SupportedModelsPage,
        Some(DEEPSEEK_33B)
    ),
    model!(
        "mistral-7b-instruct-v0.2",
        "Mistral 7B-it v0.2",
        Mistral,
        "mistralai/Mistral-7B-Instruct-v0.2",
        Some("mistral.mistral-7b-instruct-v0:2"),
        VLLM_BEDROCK,
        Beta,
        r(Yes, Yes, Yes),
        SupportedModelsPage,
        Some(MISTRAL_7B)
    ),
    // Only on the older page (seed 002), kept with its yes/no marks.
    model!(
        "mistral-7b-v0.1",
        "Mistral 7B",
        Mistral,
        "mistralai/Mistral-7B-v0.1",
        None,
        VLLM,
        Ga,
        r(No, Yes, Yes),
        InfrastructurePage,
        Some(MISTRAL_7B)
    ),
    model!(
        "mistral-7b-v0.3",
        "Mistral 7B Text",
        Mistral,
        "mistralai/Mistral-7B-v0.3",
        None,
        VLLM,
        Ga,
        r(Yes, No, No),
        InfrastructurePage,
        Some(MISTRAL_7B)
    ),
    model!(
        "mixtral-8x22b-v0.1",
        "Mixtral 8x22B Text",
        Mixtral,
        "mistralai/Mixtral-8x22B-v0.1",
        None,
        VLLM,
        Ga,
        r(Yes, No, No),
        InfrastructurePage,
        Some(MIXTRAL_8X22B)
    ),
    model!(
        "mixtral-8x7b-v0.1",
        "Mixtral 8x7B Text",
        Mixtral,
        "mistralai/Mixtral-8x7B-v0.1",
        None,
        VLLM,
        Ga,
        r(Yes, No, No),
        InfrastructurePage,
        Some(MIXTRAL_8X7B)
    ),
    model!(
        "codellama-13b",
        "Code-Llama 13b-code",
        Codellama,
        "meta-llama/CodeLlama-13b-hf",
        None,
        VLLM,
        Beta,
        r(Yes, No, No),
        InfrastructurePage,
        Some(CODELLAMA_13B)
    ),
    model!(
        "gpt-3.5-turbo",
        "GPT-3.5-Turbo",
        Gpt,
        "gpt-35-turbo",
        None,
        AZURE,
        Beta,
        r(No, Yes, No),
        InfrastructurePage,
        None
    ),
    model!(
        "gpt-4",
        "GPT-4",
        Gpt,
        "gpt-4",
        None,
        AZURE,
        Beta,
        r(No, Yes, No),
        InfrastructurePage,
        None
    ),
    // GitLab 18.x's table (docs/catalog.md gives the page copy and issue for each row).
    current!(
        "mistral-small-24b-instruct-2506",
        "Mistral Small 24B Instruct 2506",
        Mistral,
        "mistralai/Mistral-Small-3.2-24B-Instruct-2506",
        None,
        VLLM,
        [G, G, G, R],
        None,
        Some(MISTRAL_SMALL_24B),
        ServeFlags {
            min_vllm: Some("0.9.1"),
            mistral_format: true,
            tool_parser: Some("mistral"),
            chat_template: None,
            max_model_len: Some(KV_CAP),
            extra: &[],
        }
    ),
    current!(
        "llama-3-8b-instruct",
        "Llama 3 8B",
        Llama3,
        "meta-llama/Meta-Llama-3-8B-Instruct",
        None,
        VLLM,
        [A, G, R, R],
        LLAMA_INTRODUCED,
        Some(llama(8.03, 32, 32, 8_192)),
        LLAMA3_SERVE
    ),
    current!(
        "llama-3.1-8b-instruct",
        "Llama 3.1 8B",
        Llama3,
        "meta-llama/Llama-3.1-8B-Instruct",
        None,
        VLLM,
        [A, G, A, R],
        LLAMA_INTRODUCED,
        Some(llama(8.03, 32, 32, 131_072)),
        LLAMA31_SERVE
    ),
    current!(
        "llama-3-70b-instruct",
        "Llama 3 70B",
        Llama3,
        "meta-llama/Meta-Llama-3-70B-Instruct",
        None,
        VLLM,
        [A, G, R, R],
        LLAMA_INTRODUCED,
        Some(llama(70.6, 80, 64, 8_192)),
        LLAMA3_SERVE
    ),
    current!(
        "llama-3.1-70b-instruct",
        "Llama 3.1 70B",
        Llama3,
        "meta-llama/Llama-3.1-70B-Instruct",
        None,
        VLLM,
        [G, G, G, R],
        LLAMA_INTRODUCED,
        Some(llama(70.6, 80, 64, 131_072)),
        LLAMA31_SERVE
    ),
    current!(
        "llama-3.3-70b-instruct",
        "Llama 3.3 70B",
        Llama3,
        "meta-llama/Llama-3.3-70B-Instruct",
        None,
        VLLM,
        [G, G, G, R],
        LLAMA_INTRODUCED,
        Some(llama(70.6, 80, 64, 131_072)),
        LLAMA31_SERVE
    ),
    current!(
        "gpt-oss-120b",
        "GPT-oss-120B",
        Gpt,
        "openai/gpt-oss-120b",
        Some("openai.gpt-oss-120b-1:0"),
        VLLM_AZURE_BEDROCK,
        [G, G, G, R],
        None,
        Some(gpt_oss(116.8, 5.1, 36)),
        GPT_OSS_SERVE
    ),
    current!(
        "gpt-oss-20b",
        "GPT-oss-20B",
        Gpt,
        "openai/gpt-oss-20b",
        Some("openai.gpt-oss-20b-1:0"),
        VLLM_AZURE_BEDROCK,
        [A, A, A, R],
        None,
        Some(gpt_oss(20.9, 3.6, 24)),
        GPT_OSS_SERVE
    ),
    current!(
        "claude-3.7-sonnet",
        "Claude 3.7 Sonnet",
        Claude3,
        "anthropic.claude-3-7-sonnet-20250219-v1:0",
        Some("anthropic.claude-3-7-sonnet-20250219-v1:0"),
        BEDROCK,
        [G, G, G, A],
        None,
        None,
        ServeFlags::NONE
    ),
    current!(
        "claude-4-sonnet",
        "Claude 4 Sonnet",
        Claude3,
        "anthropic.claude-sonnet-4-20250514-v1:0",
        Some("anthropic.claude-sonnet-4-20250514-v1:0"),
        BEDROCK,
        [G, G, G, G],
        None,
        None,
        ServeFlags::NONE
    ),
    current!(
        "claude-4.5-sonnet",
        "Claude 4.5 Sonnet",
        Claude3,
        "anthropic.claude-sonnet-4-5-20250929-v1:0",
        Some("anthropic.claude-sonnet-4-5-20250929-v1:0"),
        BEDROCK,
        [G, G, G, G],
        None,
        None,
        ServeFlags::NONE
    ),
    current!(
        "claude-4.5-haiku",
        "Claude 4.5 Haiku",
        Claude3,
        "anthropic.claude-haiku-4-5-20251001-v1:0",
        Some("anthropic.claude-haiku-4-5-20251001-v1:0"),
        BEDROCK,
        [G, G, G, G],
        None,
        None,
        ServeFlags::NONE
    ),
    current!(
        "claude-4.5-opus",
        "Claude 4.5 Opus",
        Claude3,
        "anthropic.claude-opus-4-5-20251101-v1:0",
        Some("anthropic.claude-opus-4-5-20251101-v1:0"),
        BEDROCK,
        [G, G, G, G],
        None,
        None,
        ServeFlags::NONE
    ),
    current!(
        "gpt-5",
        "GPT-5",
        Gpt,
        "gpt-5",
        None,
        AZURE,
        [G, G, G, G],
        None,
        None,
        ServeFlags::NONE
    ),
    current!(
        "gpt-5-mini",
        "GPT-5 Mini",
        Gpt,
        "gpt-5-mini",
        None,
        AZURE,
        [G, G, G, A],
        None,
        None,
        ServeFlags::NONE
    ),
    current!(
        "gpt-5-codex",
        "GPT-5 Codex",
        Gpt,
        "gpt-5-codex",
        None,
        AZURE,
        [G, G, G, G],
        None,
        None,
        ServeFlags::NONE
    ),
    current!(
        "gpt-5.1",
        "GPT-5.1",
        Gpt,
        "gpt-5.1",
        None,
        AZURE,
        [G, G, G, G],
        None,
        None,
        ServeFlags::NONE
    ),
    current!(
        "gpt-5.2",
        "GPT-5.2",
        Gpt,
        "gpt-5.2",
        None,
        AZURE,
        [G, G, G, G],
        None,
        None,
        ServeFlags::NONE
    ),
];

/// A lookup that found nothing, or more than one thing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogError {
    UnknownModel {
        query: String,
        closest: Vec<&'static str>,
    },
    AmbiguousFamily {
        family: Family,
        models: Vec<&'static str>,
    },
    /// A `--precision` the model cannot be sized at.
    Precision { model: &'static str, why: String },
}

impl std::fmt::Display for CatalogError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnknownModel { query, closest } => write!(
                f,
                "no catalog model matches {query:?}; closest: {} (see `hearth catalog`)",
                closest.join(", ")
            ),
            Self::AmbiguousFamily { family, models } => write!(
                f,
                "family {family} has several catalog models; name one of: {}",
                models.join(", ")
            ),
            Self::Precision { model, why } => write!(f, "{model}: {why}"),
        }
    }
}

impl std::error::Error for CatalogError {}

pub fn model_by_id(id: &str) -> Option<&'static Model> {
    MODELS.iter().find(|m| m.id == id)
}

/// Finds a model by slug, page name, public id, repository name or Bedrock id
/// (case-insensitively), or by a family that has exactly one model.
pub fn find_model(query: &str) -> Result<&'static Model, CatalogError> {
    let q = query.trim().to_lowercase();
    let names = |m: &'static Model| {
        [
            Some(m.id),
            Some(m.name),
            Some(m.public_id),
            Some(m.repo_name()),
            m.bedrock_id,
        ]
        .into_iter()
        .flatten()
    };
    if let Some(m) = MODELS
        .iter()
        .find(|m| names(m).any(|n| n.to_lowercase() == q))
    {
        return Ok(m);
    }
    if let Some(family) = Family::parse(&q) {
        let models: Vec<&'static Model> = family.models().collect();
        match models.as_slice() {
            [only] => return Ok(only),
            [] => {}
            many => {
                return Err(CatalogError::AmbiguousFamily {
                    family,
                    models: many.iter().map(|m| m.id).collect(),
                });
            }
        }
    }
    let mut scored: Vec<(f64, &'static str)> = MODELS
        .iter()
        .map(|m| {
            let best = names(m)
                .map(|n| strsim::jaro_winkler(&n.to_lowercase(), &q))
                .fold(0.0, f64::max);
            (best, m.id)
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    Err(CatalogError::UnknownModel {
        query: query.to_string(),
        closest: scored.into_iter().take(3).map(|(_, id)| id).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rating::Capability;

    #[test]
    fn ids_are_unique() {
        for (i, a) in MODELS.iter().enumerate() {
            for b in &MODELS[i + 1..] {
                assert_ne!(a.id, b.id);
            }
        }
    }

    /// The approved table of the supported-models page, row by row.
    #[test]
    fn approved_models_carry_the_seed_ratings() {
        let expect = [
            ("Codestral 22B v0.1", G, G, No, &[Platform::Vllm][..]),
            ("Mistral 7B-it v0.3", G, G, R, &[Platform::Vllm][..]),
            (
                "Mixtral 8x7B-it v0.1",
                G,
                G,
                A,
                &[Platform::Vllm, Platform::Bedrock][..],
            ),
            ("Mixtral 8x22B-it v0.1", G, G, G, &[Platform::Vllm][..]),
            ("Claude 3.5 Sonnet", G, G, G, &[Platform::Bedrock][..]),
            ("GPT-4 Turbo", G, G, A, &[Platform::AzureOpenai][..]),
            ("GPT-4o", G, G, G, &[Platform::AzureOpenai][..]),
            ("GPT-4o-mini", G, G, A, &[Platform::AzureOpenai][..]),
        ];
        for (name, cc, cg, chat, platforms) in expect {
            let m = MODELS.iter().find(|m| m.name == name).unwrap();
            assert_eq!(m.status, ReleaseStatus::Ga, "{name}");
            assert_eq!(m.ratings, r(cc, cg, chat), "{name}");
            assert_eq!(m.platforms, platforms, "{name}");
            assert_eq!(m.source, Source::SupportedModelsPage, "{name}");
        }
    }

    #[test]
    fn evaluation_and_older_page_models_carry_their_yes_no_marks() {
        let expect = [
            ("CodeGemma 2b", Yes, No, No, ReleaseStatus::Beta),
            ("CodeGemma 7b-it", No, Yes, No, ReleaseStatus::Beta),
            ("CodeGemma 7b-code", Yes, No, No, ReleaseStatus::Beta),
            ("Code-Llama 13b", No, Yes, No, ReleaseStatus::Beta),
            (
                "DeepSeek Coder 33b Instruct",
                Yes,
                Yes,
                No,
                ReleaseStatus::Beta,
            ),
            ("DeepSeek Coder 33b Base", Yes, No, No, ReleaseStatus::Beta),
            ("Mistral 7B-it v0.2", Yes, Yes, Yes, ReleaseStatus::Beta),
            ("Mistral 7B", No, Yes, Yes, ReleaseStatus::Ga),
            ("Mistral 7B Text", Yes, No, No, ReleaseStatus::Ga),
            ("Mixtral 8x22B Text", Yes, No, No, ReleaseStatus::Ga),
            ("Mixtral 8x7B Text", Yes, No, No, ReleaseStatus::Ga),
            ("Code-Llama 13b-code", Yes, No, No, ReleaseStatus::Beta),
            ("GPT-3.5-Turbo", No, Yes, No, ReleaseStatus::Beta),
            ("GPT-4", No, Yes, No, ReleaseStatus::Beta),
        ];
        for (name, cc, cg, chat, status) in expect {
            let m = MODELS.iter().find(|m| m.name == name).unwrap();
            assert_eq!(m.ratings, r(cc, cg, chat), "{name}");
            assert_eq!(m.status, status, "{name}");
        }
        let seed_rows = MODELS
            .iter()
            .filter(|m| m.source != Source::CurrentPage)
            .count();
        assert_eq!(seed_rows, 8 + 14);
    }

    /// GitLab 18.x's table, row by row: full = green, partial = amber, limited = red, with
    /// the Agent Platform column kept beside the three Hearth rates.
    #[test]
    fn current_rows_carry_gitlab_18_ratings_and_platforms() {
        use Platform::{AzureOpenai as Az, Bedrock as Bd, Vllm as V};
        let expect: [(&str, [Rating; 4], &[Platform]); 18] = [
            ("Mistral Small 24B Instruct 2506", [G, G, G, R], &[V]),
            ("Llama 3 8B", [A, G, R, R], &[V]),
            ("Llama 3.1 8B", [A, G, A, R], &[V]),
            ("Llama 3 70B", [A, G, R, R], &[V]),
            ("Llama 3.1 70B", [G, G, G, R], &[V]),
            ("Llama 3.3 70B", [G, G, G, R], &[V]),
            ("GPT-oss-120B", [G, G, G, R], &[V, Az, Bd]),
            ("GPT-oss-20B", [A, A, A, R], &[V, Az, Bd]),
            ("Claude 3.7 Sonnet", [G, G, G, A], &[Bd]),
            ("Claude 4 Sonnet", [G, G, G, G], &[Bd]),
            ("Claude 4.5 Sonnet", [G, G, G, G], &[Bd]),
            ("Claude 4.5 Haiku", [G, G, G, G], &[Bd]),
            ("Claude 4.5 Opus", [G, G, G, G], &[Bd]),
            ("GPT-5", [G, G, G, G], &[Az]),
            ("GPT-5 Mini", [G, G, G, A], &[Az]),
            ("GPT-5 Codex", [G, G, G, G], &[Az]),
            ("GPT-5.1", [G, G, G, G], &[Az]),
            ("GPT-5.2", [G, G, G, G], &[Az]),
        ];
        for (name, [cc, cg, chat, agent], platforms) in expect {
            let m = MODELS.iter().find(|m| m.name == name).unwrap();
            assert_eq!(m.ratings, r(cc, cg, chat), "{name}");
            assert_eq!(m.agent_platform, Some(agent), "{name}");
            assert_eq!(m.platforms, platforms, "{name}");
            assert_eq!(
                (m.status, m.source, m.deprecated),
                (ReleaseStatus::Ga, Source::CurrentPage, None),
                "{name}"
            );
        }
        let current = MODELS
            .iter()
            .filter(|m| m.source == Source::CurrentPage)
            .count();
        assert_eq!(current, expect.len());
    }

    /// GitLab deprecated Mistral 7B and Mixtral for Mistral Small (announced 18.3, end of
    /// support 18.6, its deprecations page); their seed ratings stay.
    #[test]
    fn early_mistral_rows_are_deprecated_and_keep_their_ratings() {
        for m in MODELS {
            let early = matches!(m.family, Family::Mistral | Family::Mixtral)
                && m.source != Source::CurrentPage;
            match m.deprecated {
                Some(d) => {
                    assert!(early, "{}", m.id);
                    assert_eq!((d.since, d.end_of_support), ("18.3", "18.6"));
                    assert!(model_by_id(d.replacement).is_some());
                }
                None => assert!(!early, "{}", m.id),
            }
        }
        let mixtral = model_by_id("mixtral-8x7b-instruct-v0.1").unwrap();
        assert_eq!(mixtral.ratings, r(G, G, A));
        assert!(
            model_by_id("mistral-small-24b-instruct-2506")
                .unwrap()
                .deprecated
                .is_none()
        );
    }

    /// Bedrock model ids as AWS lists them; the Claude ones as Anthropic's Bedrock page lists
    /// them too (docs/catalog.md). `find_model` takes them as well.
    #[test]
    fn newer_bedrock_ids_are_the_published_ones() {
        for (id, bedrock) in [
            (
                "claude-3.7-sonnet",
                "anthropic.claude-3-7-sonnet-20250219-v1:0",
            ),
            ("claude-4-sonnet", "anthropic.claude-sonnet-4-20250514-v1:0"),
            (
                "claude-4.5-sonnet",
                "anthropic.claude-sonnet-4-5-20250929-v1:0",
            ),
            (
                "claude-4.5-haiku",
                "anthropic.claude-haiku-4-5-20251001-v1:0",
            ),
            ("claude-4.5-opus", "anthropic.claude-opus-4-5-20251101-v1:0"),
            ("gpt-oss-120b", "openai.gpt-oss-120b-1:0"),
            ("gpt-oss-20b", "openai.gpt-oss-20b-1:0"),
        ] {
            assert_eq!(model_by_id(id).unwrap().bedrock_id, Some(bedrock), "{id}");
            assert_eq!(find_model(bedrock).unwrap().id, id);
        }
    }

    /// Every shape figure of the GitLab 18.x rows that run on your GPUs, against the model's
    /// published `config.json` / model card (docs/catalog.md names the source of each):
    /// (parameters, active parameters, layers, attention heads, KV heads, head dim, context,
    /// precision).
    #[test]
    fn new_shapes_match_the_model_configs() {
        type Row = (f32, Option<f32>, u32, u32, u32, u32, u32, Precision);
        use Precision::{Bf16, Mxfp4};
        let expect: [(&str, Row); 8] = [
            (
                "mistral-small-24b-instruct-2506",
                (24.0, None, 40, 32, 8, 128, 131_072, Bf16),
            ),
            (
                "llama-3-8b-instruct",
                (8.03, None, 32, 32, 8, 128, 8_192, Bf16),
            ),
            (
                "llama-3.1-8b-instruct",
                (8.03, None, 32, 32, 8, 128, 131_072, Bf16),
            ),
            (
                "llama-3-70b-instruct",
                (70.6, None, 80, 64, 8, 128, 8_192, Bf16),
            ),
            (
                "llama-3.1-70b-instruct",
                (70.6, None, 80, 64, 8, 128, 131_072, Bf16),
            ),
            (
                "llama-3.3-70b-instruct",
                (70.6, None, 80, 64, 8, 128, 131_072, Bf16),
            ),
            (
                "gpt-oss-120b",
                (116.8, Some(5.1), 36, 64, 8, 64, 131_072, Mxfp4),
            ),
            (
                "gpt-oss-20b",
                (20.9, Some(3.6), 24, 64, 8, 64, 131_072, Mxfp4),
            ),
        ];
        for (id, row) in expect {
            let m = model_by_id(id).unwrap();
            let s = m.shape.unwrap();
            let got: Row = (
                s.params_billion,
                s.active_params_billion,
                s.layers,
                s.attention_heads,
                s.kv_heads,
                s.head_dim,
                s.context_tokens,
                s.precision,
            );
            assert_eq!(got, row, "{id}");
        }
        // The rows that have a shape are exactly those: the cloud-only rows have none.
        let sized = MODELS
            .iter()
            .filter(|m| m.source == Source::CurrentPage && m.shape.is_some())
            .count();
        assert_eq!(sized, expect.len());
        assert!(model_by_id("gpt-5").unwrap().shape.is_none());
        assert!(model_by_id("claude-4-sonnet").unwrap().shape.is_none());
        assert_eq!(
            shape_of("mixtral-8x7b-instruct-v0.1").active_params_billion,
            Some(12.9)
        );
    }

    fn shape_of(id: &str) -> ModelShape {
        model_by_id(id).unwrap().shape.unwrap()
    }

    /// The Llama parameter counts follow from the dimensions of their `config.json` (hidden
    /// size, MLP size, layers, KV width, a 128,256-token vocabulary with untied embeddings):
    /// 8,030 M for 8B and 70,554 M for 70B, which the catalog rounds to 8.03 and 70.6.
    #[test]
    fn llama_parameter_counts_follow_from_their_configs() {
        let count = |hidden: u64, mlp: u64, layers: u64, heads: u64, kv_heads: u64| -> f64 {
            let vocab = 128_256;
            let kv = hidden / heads * kv_heads;
            let attention = 2 * hidden * hidden + 2 * hidden * kv;
            let per_layer = attention + 3 * hidden * mlp + 2 * hidden;
            (layers * per_layer + 2 * vocab * hidden + hidden) as f64 / 1e9
        };
        let small = count(4_096, 14_336, 32, 32, 8);
        let large = count(8_192, 28_672, 80, 64, 8);
        assert!((small - 8.030).abs() < 0.001, "{small}");
        assert!((large - 70.554).abs() < 0.001, "{large}");
        let round2 = |x: f64| (x * 100.0).round() / 100.0;
        let round1 = |x: f64| (x * 10.0).round() / 10.0;
        assert_eq!(
            round2(small) as f32,
            shape_of("llama-3.1-8b-instruct").params_billion
        );
        assert_eq!(
            round1(large) as f32,
            shape_of("llama-3.3-70b-instruct").params_billion
        );
        // Their shapes: 8B is 32 heads of 4096 / 32 = 128, 70B 64 heads of 8192 / 64 = 128.
        assert_eq!(4_096 / 32, shape_of("llama-3-8b-instruct").head_dim);
        assert_eq!(8_192 / 64, shape_of("llama-3-70b-instruct").head_dim);
    }

    /// The GitLab version that introduced a row is claimed only where a source gives it
    /// (docs/catalog.md): the five Llama rows, beta in 17.10 (release-post issue 523917, whose
    /// Root Cause Analysis feedback issue 523912 is the 17.10 beta). Every other row stays
    /// empty: the seeds' rows predate the page's history, and for the other 18.x rows no
    /// versioned copy of the page or release note naming a version was found.
    #[test]
    fn introduced_versions_are_claimed_only_with_a_source() {
        let expect = [
            ("llama-3-8b-instruct", "17.10"),
            ("llama-3.1-8b-instruct", "17.10"),
            ("llama-3-70b-instruct", "17.10"),
            ("llama-3.1-70b-instruct", "17.10"),
            ("llama-3.3-70b-instruct", "17.10"),
        ];
        for (id, version) in expect {
            assert_eq!(model_by_id(id).unwrap().introduced, Some(version), "{id}");
        }
        for m in MODELS {
            if !expect.iter().any(|(id, _)| *id == m.id) {
                assert_eq!(m.introduced, None, "{}", m.id);
            }
        }
        // Claude 3.7 Sonnet is not on the 17.9 copy of the page (Claude 3.5 Sonnet is followed
        // by GPT-4 Turbo there) but its exact version was not found: it stays empty.
        assert_eq!(model_by_id("claude-3.7-sonnet").unwrap().introduced, None);
    }

    #[test]
    fn find_accepts_every_spelling_and_suggests_on_a_miss() {
        for q in [
            "mixtral-8x7b-instruct-v0.1",
            "Mixtral 8x7B-it v0.1",
            "mistralai/Mixtral-8x7B-Instruct-v0.1",
            "mixtral-8x7b-instruct-v0.1",
            "mistral.mixtral-8x7b-instruct-v0:1",
        ] {
            assert_eq!(
                find_model(q).unwrap().id,
                "mixtral-8x7b-instruct-v0.1",
                "{q}"
            );
        }
        assert_eq!(find_model("codestral").unwrap().id, "codestral-22b-v0.1");
        match find_model("mixtral") {
            Err(CatalogError::AmbiguousFamily { models, .. }) => assert!(models.len() >= 2),
            other => panic!("{other:?}"),
        }
        match find_model("mixtral-8x7b-instruct") {
            Err(CatalogError::UnknownModel { closest, .. }) => {
                assert_eq!(closest[0], "mixtral-8x7b-instruct-v0.1")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn family_best_rating_picks_the_best_model() {
        use crate::rating::FamilyVerdict;
        assert_eq!(
            Family::Mixtral.best_rating(Capability::Chat),
            FamilyVerdict::Rated {
                rating: G,
                model: "Mixtral 8x22B-it v0.1"
            }
        );
        assert_eq!(
            Family::Codestral.best_rating(Capability::Chat),
            FamilyVerdict::Rated {
                rating: No,
                model: "Codestral 22B v0.1"
            }
        );
        assert_eq!(
            Family::Qwen.best_rating(Capability::Chat),
            FamilyVerdict::Unrated
        );
    }
}
