//! Model families: the unit a deployment is registered under and prompts are chosen by.

use serde::Serialize;

use crate::models::MODELS;
use crate::rating::{Capability, FamilyVerdict};

/// Release status, for a family or for one model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseStatus {
    Ga,
    Beta,
}

impl ReleaseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ga => "ga",
            Self::Beta => "beta",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Ga => "GA",
            Self::Beta => "beta",
        }
    }
}

/// A model family. The identifiers are GitLab's (`claude_3`, `deepseekcoder`, …) so that a
/// GitLab instance's `model_name` maps onto them unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    Mistral,
    Mixtral,
    Codestral,
    Codegemma,
    Codellama,
    Deepseekcoder,
    Llama3,
    #[serde(rename = "claude_3")]
    Claude3,
    Gpt,
    Starcoder2,
    Qwen,
    /// GitLab's "compatible models" family (beta since 18.3): any model behind an
    /// OpenAI-compatible API, with no GitLab rating or support.
    General,
}

impl Family {
    pub const ALL: [Family; 12] = [
        Self::Mistral,
        Self::Mixtral,
        Self::Codestral,
        Self::Codegemma,
        Self::Codellama,
        Self::Deepseekcoder,
        Self::Llama3,
        Self::Claude3,
        Self::Gpt,
        Self::Starcoder2,
        Self::Qwen,
        Self::General,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mistral => "mistral",
            Self::Mixtral => "mixtral",
            Self::Codestral => "codestral",
            Self::Codegemma => "codegemma",
            Self::Codellama => "codellama",
            Self::Deepseekcoder => "deepseekcoder",
            Self::Llama3 => "llama3",
            Self::Claude3 => "claude_3",
            Self::Gpt => "gpt",
            Self::Starcoder2 => "starcoder2",
            Self::Qwen => "qwen",
            Self::General => "general",
        }
    }

    pub fn display_name(self) -> &'static str {
        match self {
            Self::Mistral => "Mistral",
            Self::Mixtral => "Mixtral",
            Self::Codestral => "Mistral Codestral",
            Self::Codegemma => "CodeGemma",
            Self::Codellama => "Code Llama",
            Self::Deepseekcoder => "DeepSeek Coder",
            Self::Llama3 => "Llama 3",
            Self::Claude3 => "Claude 3",
            Self::Gpt => "GPT",
            Self::Starcoder2 => "StarCoder2",
            Self::Qwen => "Qwen2.5-Coder",
            Self::General => "General (compatible model)",
        }
    }

    /// Parses a family identifier, accepting the spellings people type (`claude-3`,
    /// `deepseek_coder`, `CodeLlama`).
    pub fn parse(s: &str) -> Option<Family> {
        let folded: String = s
            .chars()
            .filter(|c| !matches!(c, '_' | '-' | ' ' | '.'))
            .flat_map(char::to_lowercase)
            .collect();
        Self::ALL.into_iter().find(|f| {
            let id: String = f.as_str().chars().filter(|c| *c != '_').collect();
            id == folded || (*f == Self::Qwen && (folded == "qwen25coder" || folded == "qwencoder"))
        })
    }

    /// GitLab's release status for the family: GA families work out of the box, beta ones
    /// need the `beta_models_enabled` setting.
    pub fn status(self) -> ReleaseStatus {
        match self {
            Self::Mistral | Self::Mixtral | Self::Codestral | Self::Claude3 | Self::Gpt => {
                ReleaseStatus::Ga
            }
            _ => ReleaseStatus::Beta,
        }
    }

    /// The context window GitLab's gateway assumes for the family, in tokens.
    pub fn max_context_tokens(self) -> u32 {
        match self {
            Self::Mistral | Self::Codestral | Self::Llama3 | Self::Gpt => 128_000,
            Self::Mixtral => 32_000,
            Self::Codellama | Self::Deepseekcoder | Self::Starcoder2 => 16_000,
            Self::Codegemma => 8_000,
            Self::Claude3 => 200_000,
            Self::Qwen => 32_000,
            Self::General => 200_000,
        }
    }

    /// The family a model name names (`Mixtral-8x7B-Instruct` → mixtral, `Qwen2.5-Coder-7B` →
    /// qwen): the longest family name found in it, ignoring case and separators. `general`
    /// names no model, so it is never the answer.
    pub fn named_in(text: &str) -> Option<Family> {
        let squash = |s: &str| -> String {
            s.chars()
                .filter(char::is_ascii_alphanumeric)
                .collect::<String>()
                .to_ascii_lowercase()
        };
        let text = squash(text);
        Self::ALL
            .into_iter()
            .filter(|f| *f != Self::General && text.contains(&squash(f.as_str())))
            .max_by_key(|f| f.as_str().len())
    }

    /// The family whose prompt formats a deployment uses. A compatible (`general`) deployment
    /// borrows the formats of the code family its served name names, so `Qwen2.5-Coder-7B`
    /// gets Qwen's FIM tokens and `deepseek-coder-v2-lite-base` DeepSeek's; any other served
    /// name (Devstral, Gemma 3, …) is asked in chat. Other families keep their own.
    pub fn prompt_family(self, served_name: &str) -> Family {
        if self != Self::General {
            return self;
        }
        match Self::named_in(served_name) {
            Some(
                f @ (Self::Codestral
                | Self::Codegemma
                | Self::Codellama
                | Self::Deepseekcoder
                | Self::Starcoder2
                | Self::Qwen),
            ) => f,
            _ => Self::General,
        }
    }

    pub fn models(self) -> impl Iterator<Item = &'static crate::Model> {
        MODELS.iter().filter(move |m| m.family == self)
    }

    /// The best rating any catalog model of this family has for `capability`. A deployment
    /// that does not say which model it serves is judged by this.
    pub fn best_rating(self, capability: Capability) -> FamilyVerdict {
        self.models()
            .max_by_key(|m| m.ratings.get(capability).rank())
            .map_or(FamilyVerdict::Unrated, |m| FamilyVerdict::Rated {
                rating: m.ratings.get(capability),
                model: m.name,
            })
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn general_is_beta_unrated_and_named_by_nothing() {
        assert_eq!(Family::parse("general"), Some(Family::General));
        assert_eq!(Family::General.status(), ReleaseStatus::Beta);
        assert_eq!(Family::General.max_context_tokens(), 200_000);
        assert_eq!(
            Family::General.best_rating(Capability::Chat),
            FamilyVerdict::Unrated
        );
        assert_eq!(Family::named_in("general-purpose-7b"), None);
    }

    #[test]
    fn compatible_deployments_borrow_the_fim_family_their_name_names() {
        for (served, family) in [
            ("Qwen2.5-Coder-7B", Family::Qwen),
            ("qwen/Qwen2.5-Coder-32B-Instruct", Family::Qwen),
            ("bigcode/starcoder2-15b", Family::Starcoder2),
            ("DeepSeek-Coder-V2-Lite-Base", Family::Deepseekcoder),
            ("codegemma-2b", Family::Codegemma),
            ("Devstral-Small-2505", Family::General),
            ("gemma-3-27b-it", Family::General),
            // A chat family's name does not change the format: the deployment said general.
            ("Mistral-Small-3.2-24B-Instruct-2506", Family::General),
        ] {
            assert_eq!(Family::General.prompt_family(served), family, "{served}");
        }
        assert_eq!(Family::Qwen.prompt_family("anything"), Family::Qwen);
    }
}
