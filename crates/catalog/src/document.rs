//! The whole catalog as one serialisable document, shared by `hearth catalog --json` and
//! `GET /api/v1/catalog` so both print the same thing.

use serde::Serialize;

use crate::family::{Family, ReleaseStatus};
use crate::feature::Feature;
use crate::hardware::{BASE_SYSTEM, BaseSystem, GPUS, Gpu, Requirement, requirement};
use crate::models::{MODELS, Model};
use crate::rating::{Capability, LEGEND, Rating};

/// Which models to list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only models the catalog allows for this capability (green, amber or supported).
    pub capability: Option<Capability>,
    pub status: Option<ReleaseStatus>,
}

impl Filter {
    pub fn matches(&self, model: &Model) -> bool {
        self.capability
            .is_none_or(|c| model.ratings.get(c).allows_binding())
            && self.status.is_none_or(|s| model.status == s)
    }
}

impl Capability {
    /// Accepts a capability (`code_completion`, `chat`) or any feature name
    /// (`code_completions`, `duo_chat_explain_code`, `explain_code`).
    pub fn parse(s: &str) -> Option<Capability> {
        let folded = s.trim().to_ascii_lowercase().replace('-', "_");
        Capability::ALL
            .into_iter()
            .find(|c| c.as_str() == folded)
            .or_else(|| Feature::parse(&folded).map(Feature::capability))
    }
}

impl ReleaseStatus {
    pub fn parse(s: &str) -> Option<ReleaseStatus> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ga" | "generally_available" => Some(ReleaseStatus::Ga),
            "beta" => Some(ReleaseStatus::Beta),
            _ => None,
        }
    }
}

#[derive(Serialize)]
pub struct LegendEntry {
    pub rating: Rating,
    pub meaning: &'static str,
}

#[derive(Serialize)]
pub struct FamilyEntry {
    pub id: Family,
    pub name: &'static str,
    pub status: ReleaseStatus,
    pub max_context_tokens: u32,
}

#[derive(Serialize)]
pub struct ModelEntry {
    #[serde(flatten)]
    pub model: &'static Model,
    /// GPU memory needed on vLLM; absent for cloud-only models.
    pub requirement: Option<Requirement>,
}

#[derive(Serialize)]
pub struct FeatureEntry {
    pub id: Feature,
    pub capability: Capability,
    pub beta: bool,
}

#[derive(Serialize)]
pub struct Document {
    pub legend: Vec<LegendEntry>,
    pub families: Vec<FamilyEntry>,
    pub models: Vec<ModelEntry>,
    pub features: Vec<FeatureEntry>,
    pub base_system: BaseSystem,
    pub gpus: &'static [Gpu],
}

pub fn document(filter: Filter) -> Document {
    Document {
        legend: LEGEND
            .iter()
            .map(|&(rating, meaning)| LegendEntry { rating, meaning })
            .collect(),
        families: Family::ALL
            .iter()
            .map(|&f| FamilyEntry {
                id: f,
                name: f.display_name(),
                status: f.status(),
                max_context_tokens: f.max_context_tokens(),
            })
            .collect(),
        models: MODELS
            .iter()
            .filter(|m| filter.matches(m))
            .map(|m| ModelEntry {
                model: m,
                requirement: requirement(m),
            })
            .collect(),
        features: Feature::ALL
            .iter()
            .map(|&f| FeatureEntry {
                id: f,
                capability: f.capability(),
                beta: f.is_beta(),
            })
            .collect(),
        base_system: BASE_SYSTEM,
        gpus: GPUS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_by_capability_and_status() {
        let chat_ga = document(Filter {
            capability: Some(Capability::Chat),
            status: Some(ReleaseStatus::Ga),
        });
        let names: Vec<&str> = chat_ga.models.iter().map(|e| e.model.name).collect();
        assert!(names.contains(&"Mixtral 8x7B-it v0.1"));
        assert!(names.contains(&"GPT-4o"));
        assert!(!names.contains(&"Mistral 7B-it v0.3"), "red for chat");
        assert!(!names.contains(&"Codestral 22B v0.1"), "no chat");
        assert!(!names.contains(&"Mistral 7B-it v0.2"), "beta");
        assert_eq!(document(Filter::default()).models.len(), MODELS.len());
    }

    #[test]
    fn capability_parse_accepts_feature_names() {
        assert_eq!(Capability::parse("chat"), Some(Capability::Chat));
        assert_eq!(
            Capability::parse("code_completions"),
            Some(Capability::CodeCompletion)
        );
        assert_eq!(Capability::parse("explain_code"), Some(Capability::Chat));
        assert_eq!(
            Capability::parse("code-generation"),
            Some(Capability::CodeGeneration)
        );
        assert_eq!(Capability::parse("vision"), None);
    }

    #[test]
    fn json_has_requirements_and_flattened_models() {
        let json = serde_json::to_value(document(Filter::default())).unwrap();
        let codestral = &json["models"][0];
        assert_eq!(codestral["id"], "codestral-22b-v0.1");
        assert_eq!(codestral["ratings"]["chat"], "not_supported");
        assert_eq!(codestral["requirement"]["min_vram_gb"], 90);
        assert_eq!(json["families"][7]["id"], "claude_3");
        assert_eq!(json["legend"][0]["rating"], "green");
    }
}
