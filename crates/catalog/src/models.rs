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
};
const MIXTRAL_8X7B: ModelShape = ModelShape {
    params_billion: 46.7,
    layers: 32,
    attention_heads: 32,
    kv_heads: 8,
    head_dim: 128,
    context_tokens: 32_768,
};
const MIXTRAL_8X22B: ModelShape = ModelShape {
    params_billion: 141.0,
    layers: 56,
    attention_heads: 48,
    kv_heads: 8,
    head_dim: 128,
    context_tokens: 65_536,
};
const CODEGEMMA_7B: ModelShape = ModelShape {
    params_billion: 8.54,
    layers: 28,
    attention_heads: 16,
    kv_heads: 16,
    head_dim: 256,
    context_tokens: 8_192,
};
const CODELLAMA_13B: ModelShape = ModelShape {
    params_billion: 13.0,
    layers: 40,
    attention_heads: 40,
    kv_heads: 40,
    head_dim: 128,
    context_tokens: 16_384,
};
const DEEPSEEK_33B: ModelShape = ModelShape {
    params_billion: 33.3,
    layers: 62,
    attention_heads: 56,
    kv_heads: 8,
    head_dim: 128,
    context_tokens: 16_384,
};

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
            context_tokens: 32_768
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
            context_tokens: 8_192
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
        assert_eq!(MODELS.len(), 8 + 14);
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
