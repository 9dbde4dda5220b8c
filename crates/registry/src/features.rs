//! Feature settings: which deployment serves each feature, and whether the catalog allows it.

use hearth_catalog::{Capability, FamilyVerdict, Feature, Rating};

use crate::deployment::Deployment;
use crate::error::{RegistryError, Result};
use crate::settings::{ENABLE_BETA_HINT, Settings};

/// Where a feature's requests go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binding {
    Disabled,
    SelfHosted { deployment_id: i64 },
}

impl Binding {
    pub fn provider(self) -> &'static str {
        match self {
            Self::Disabled => "disabled",
            Self::SelfHosted { .. } => "self_hosted",
        }
    }

    pub fn deployment_id(self) -> Option<i64> {
        match self {
            Self::Disabled => None,
            Self::SelfHosted { deployment_id } => Some(deployment_id),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeatureSetting {
    pub feature: Feature,
    pub binding: Binding,
    /// `None` until the feature is first set.
    pub updated_at: Option<String>,
    /// Deployments that serve the feature, in order, when the bound one cannot: every
    /// endpoint unhealthy or its concurrency cap reached.
    pub fallbacks: Vec<i64>,
}

impl Deployment {
    /// The catalog's rating for this deployment on `capability`: its own model's when known
    /// (`true`), else the best in its family (`false`).
    pub fn verdict(&self, capability: Capability) -> (FamilyVerdict, bool) {
        match self.model {
            Some(m) => (
                FamilyVerdict::Rated {
                    rating: m.ratings.get(capability),
                    model: m.name,
                },
                true,
            ),
            None => (self.family.best_rating(capability), false),
        }
    }
}

/// Checks that `feature` may use `deployment`; returns warnings for amber or unrated pairs.
pub(crate) fn check_binding(
    feature: Feature,
    deployment: &Deployment,
    settings: &Settings,
) -> Result<Vec<String>> {
    if feature.is_beta() && !settings.beta_models_enabled {
        return Err(RegistryError::invalid(
            "feature",
            format!("{feature} is a beta feature and beta models are off; {ENABLE_BETA_HINT}"),
        ));
    }
    let capability = feature.capability();
    let (verdict, exact) = deployment.verdict(capability);
    let basis = if exact {
        String::new()
    } else {
        format!(
            " (the best rating in the {} family; set the deployment's model to judge the exact model)",
            deployment.family
        )
    };
    match verdict {
        FamilyVerdict::Unrated => Ok(vec![format!(
            "the catalog has no rating for {} on {}; check the results yourself",
            deployment.family.display_name(),
            capability.label()
        )]),
        FamilyVerdict::Rated { rating, model } if !rating.allows_binding() => {
            let why = match rating {
                Rating::Red => format!(
                    "is rated red for {}: {}",
                    capability.label(),
                    rating.meaning()
                ),
                _ => format!("does not support {}", capability.label()),
            };
            Err(RegistryError::invalid(
                "self_hosted_model_id",
                format!(
                    "{feature} cannot use deployment {:?}: {model} {why}{basis}; bind a deployment whose model the catalog rates green or amber for {}, or disable the feature",
                    deployment.name,
                    capability.label()
                ),
            ))
        }
        FamilyVerdict::Rated {
            rating: Rating::Amber,
            model,
        } => Ok(vec![format!(
            "{model} is rated amber for {}: {}{basis}",
            capability.label(),
            Rating::Amber.meaning()
        )]),
        FamilyVerdict::Rated { model, .. } if !exact => Ok(vec![format!(
            "the catalog does not know which {} model deployment {:?} serves, so {feature} was judged by the best of its family ({model}); name it with `hearth models update {:?} --model ID` for the exact rating",
            deployment.family.display_name(),
            deployment.name,
            deployment.name
        )]),
        FamilyVerdict::Rated { .. } => Ok(Vec::new()),
    }
}

/// GitLab still lets a deprecated model serve, so binding one is allowed; the warning names
/// the version that deprecated it, its end of support and what GitLab points to instead.
pub(crate) fn deprecation_warning(deployment: &Deployment) -> Option<String> {
    let model = deployment.model?;
    let d = model.deprecated?;
    Some(format!(
        "{} was deprecated by GitLab in {} (end of support in {}): it still works, but GitLab no longer supports it; consider {}",
        model.name, d.since, d.end_of_support, d.replacement
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deployment::{ApiKey, DeploymentPlatform};
    use hearth_catalog::{Family, model_by_id};

    fn dep(family: Family, model: Option<&str>) -> Deployment {
        Deployment {
            id: 1,
            name: "d".into(),
            family,
            model: model.map(|m| model_by_id(m).unwrap()),
            platform: DeploymentPlatform::OpenaiCompatible,
            endpoint: Some("http://h:8000/v1".into()),
            endpoints: vec!["http://h:8000/v1".into()],
            routing: Default::default(),
            identifier: "custom_openai/x".into(),
            api_key: ApiKey::None,
            timeouts: Default::default(),
            api_version: None,
            region: None,
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    fn refusal(feature: Feature, d: &Deployment, s: &Settings) -> String {
        match check_binding(feature, d, s) {
            Err(RegistryError::Invalid {
                field: "self_hosted_model_id",
                message,
            }) => message,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn red_and_unsupported_are_refused_with_the_reason() {
        let s = Settings::default();
        let msg = refusal(
            Feature::DuoChat,
            &dep(Family::Mistral, Some("mistral-7b-instruct-v0.3")),
            &s,
        );
        assert!(msg.contains("rated red for chat"), "{msg}");
        let msg = refusal(
            Feature::DuoChatExplainCode,
            &dep(Family::Codestral, None),
            &s,
        );
        assert!(msg.contains("does not support chat"), "{msg}");
        assert!(msg.contains("best rating in the codestral family"), "{msg}");
    }

    #[test]
    fn amber_is_allowed_with_a_warning_and_green_silently_when_the_model_is_known() {
        let s = Settings::default();
        let w = check_binding(
            Feature::DuoChat,
            &dep(Family::Mixtral, Some("mixtral-8x7b-instruct-v0.1")),
            &s,
        )
        .unwrap();
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("amber"), "{w:?}");
        let w = check_binding(
            Feature::CodeCompletions,
            &dep(Family::Codestral, Some("codestral-22b-v0.1")),
            &s,
        )
        .unwrap();
        assert!(w.is_empty(), "{w:?}");
        // Judged by its family only: allowed, and the warning says how to judge it exactly.
        let w = check_binding(Feature::CodeCompletions, &dep(Family::Codestral, None), &s).unwrap();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("best of its family") && w[0].contains("--model"),
            "{w:?}"
        );
    }

    #[test]
    fn deprecated_models_warn_and_current_ones_do_not() {
        let w = deprecation_warning(&dep(Family::Mixtral, Some("mixtral-8x22b-instruct-v0.1")))
            .unwrap();
        assert!(
            w.contains("Mixtral 8x22B-it v0.1")
                && w.contains("deprecated by GitLab in 18.3 (end of support in 18.6)")
                && w.contains("mistral-small-24b-instruct-2506"),
            "{w}"
        );
        assert_eq!(
            deprecation_warning(&dep(
                Family::Mistral,
                Some("mistral-small-24b-instruct-2506")
            )),
            None
        );
        // Without a known model there is nothing exact to say.
        assert_eq!(deprecation_warning(&dep(Family::Mixtral, None)), None);
    }

    #[test]
    fn beta_features_need_the_setting_and_unrated_families_warn() {
        let off = Settings::default();
        match check_binding(
            Feature::GenerateCommitMessage,
            &dep(Family::Mixtral, None),
            &off,
        ) {
            Err(RegistryError::Invalid {
                field: "feature",
                message,
            }) => assert!(message.contains("beta")),
            other => panic!("{other:?}"),
        }
        let on = Settings {
            beta_models_enabled: true,
            ..Default::default()
        };
        let w = check_binding(Feature::CodeCompletions, &dep(Family::Qwen, None), &on).unwrap();
        assert!(w[0].contains("no rating"), "{w:?}");
    }
}
