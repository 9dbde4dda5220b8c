//! Routing: which deployment serves a request, and how to reach it.
//!
//! A route's feature must be enabled. Without a `model`, the feature's deployment serves; a
//! named deployment serves if the catalog allows its model for the feature's kind of work.
//! When the feature's deployment has no healthy replica or its concurrency cap is reached,
//! the feature's fallbacks are tried in order. Within a deployment, `replicas` spreads the
//! attempts and `health` watches the replicas.

pub(crate) mod affinity;
mod budget;
pub(crate) mod health;
mod pick;
mod replicas;
pub(crate) mod supersede;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use hearth_catalog::{Capability, FamilyVerdict, Feature};
use hearth_providers::{
    AwsDefaults, BedrockTarget, Endpoint, Flavor, Timeouts, bedrock_auth_from_key,
    bedrock_runtime_url,
};
use hearth_registry::{ApiKey, Binding, Deployment, DeploymentPlatform, Snapshot};

use crate::openai::error::OaiError;

pub(crate) use pick::stable_hash;
pub use replicas::UpstreamRouting;
pub(crate) use replicas::{Pool, PoolEvent, Pools};

pub(crate) struct Route {
    pub deployment: Arc<Deployment>,
    pub endpoint: Endpoint,
    /// The deployment the feature is bound to, when a fallback serves instead.
    pub fallback_from: Option<String>,
}

/// Credentials the process's environment offers deployments that have none of their own.
#[derive(Clone, Debug, Default)]
pub struct CloudDefaults {
    pub aws: AwsDefaults,
    /// AZURE_OPENAI_API_KEY.
    pub azure_api_key: Option<secrecy::SecretString>,
}

/// The Azure OpenAI GA API version used when a deployment names none.
pub(crate) const AZURE_API_VERSION: &str = "2024-10-21";

/// Defaults per kind of work: completions must be quick or are useless; chat may think.
fn default_timeouts(capability: Capability) -> Timeouts {
    match capability {
        Capability::CodeCompletion => Timeouts {
            connect: Duration::from_secs(5),
            first_token: Duration::from_secs(10),
            total: Duration::from_secs(30),
        },
        Capability::CodeGeneration | Capability::Chat => Timeouts {
            connect: Duration::from_secs(5),
            first_token: Duration::from_secs(60),
            total: Duration::from_secs(300),
        },
    }
}

/// Whether a request that failed on deployment `failed` with `e` before anything reached its
/// client goes on to the feature's next fallback: the error must say the request was not acted
/// on, and an untried fallback must exist. Records `failed` as tried.
pub(crate) fn fall_back(
    snap: &Snapshot,
    feature: Feature,
    failed: i64,
    e: &hearth_providers::ProviderError,
    tried: &mut Vec<i64>,
) -> bool {
    let setting = snap.feature(feature);
    let in_chain =
        setting.binding.deployment_id() == Some(failed) || setting.fallbacks.contains(&failed);
    if !in_chain || !hearth_providers::retryable(e) {
        return false;
    }
    tried.push(failed);
    setting
        .fallbacks
        .iter()
        .any(|id| !tried.contains(id) && snap.deployment(*id).is_some())
}

/// Where the deployment stands for a new request: whether a replica can take it and its
/// in-flight cap has room.
pub(crate) trait Capacity {
    fn has_room(&self, deployment: &Deployment) -> bool;
}

pub(crate) fn resolve(
    snap: &Snapshot,
    feature: Feature,
    model: Option<&str>,
    cloud: &CloudDefaults,
    pools: &Pools,
    capacity: &dyn Capacity,
    tried: &[i64],
) -> Result<Route, OaiError> {
    let setting = snap.feature(feature);
    let bound = match setting.binding {
        Binding::Disabled => {
            return Err(OaiError::new(
                StatusCode::FORBIDDEN,
                "permission_error",
                "feature_disabled",
                format!(
                    "feature {feature} is disabled; an administrator enables it with `hearth features set {feature} <deployment>`"
                ),
            ));
        }
        Binding::SelfHosted { deployment_id } => deployment_id,
    };
    let capability = feature.capability();
    let deployment = match model.map(str::trim).filter(|m| !m.is_empty()) {
        None => snap.deployment(bound).cloned().ok_or_else(|| {
            OaiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "feature_unbound",
                format!("feature {feature} points at a deployment that no longer exists"),
            )
        })?,
        Some(name) => {
            let found = snap.deployment_by_name(name).cloned().or_else(|| {
                // Clients often send the served model name instead of the deployment name.
                let mut by_served = snap
                    .deployments()
                    .iter()
                    .filter(|d| d.upstream_model() == name);
                match (by_served.next(), by_served.next()) {
                    (Some(d), None) => Some(d.clone()),
                    _ => None,
                }
            });
            let d = found.ok_or_else(|| {
                let names: Vec<&str> = snap.deployments().iter().map(|d| d.name.as_str()).collect();
                let mut e = OaiError::new(
                    StatusCode::NOT_FOUND,
                    "invalid_request_error",
                    "model_not_found",
                    format!(
                        "the model {name:?} does not exist; GET /v1/models lists them: {}",
                        names.join(", ")
                    ),
                );
                e.param = Some("model".into());
                e
            })?;
            if let (FamilyVerdict::Rated { rating, model }, _) = d.verdict(capability)
                && !rating.allows_binding()
            {
                let mut e = OaiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    "model_not_capable",
                    format!(
                        "deployment {:?} ({model}) is rated {} for {}: use another model or leave `model` out to use the {feature} deployment",
                        d.name,
                        rating.as_str(),
                        capability.label()
                    ),
                );
                e.param = Some("model".into());
                return Err(e);
            }
            d
        }
    };
    let mut fallback_from = None;
    let failed_here = tried.contains(&deployment.id);
    let deployment = if deployment.id == bound
        && !setting.fallbacks.is_empty()
        && (failed_here || !capacity.has_room(&deployment))
    {
        let untried = || {
            setting
                .fallbacks
                .iter()
                .filter(|id| !tried.contains(id))
                .filter_map(|id| snap.deployment(*id))
        };
        let next = untried()
            .find(|d| capacity.has_room(d))
            .or_else(|| untried().next().filter(|_| failed_here));
        match next {
            Some(d) => {
                fallback_from = Some(deployment.name.clone());
                d.clone()
            }
            // No fallback is better off: the bound deployment's replicas get a probe.
            None => deployment,
        }
    } else {
        deployment
    };
    let mut endpoint = endpoint_for(&deployment, capability, cloud)?;
    endpoint.replicas = pools
        .of(&deployment)
        .map(|p| p as Arc<dyn hearth_providers::Replicas>);
    Ok(Route {
        deployment,
        endpoint,
        fallback_from,
    })
}

/// How to reach `deployment` for work of kind `capability`: its platform's dialect, key and
/// timeouts. Refuses deployments Hearth cannot call.
pub(crate) fn endpoint_for(
    deployment: &Deployment,
    capability: Capability,
    cloud: &CloudDefaults,
) -> Result<Endpoint, OaiError> {
    let aws = &cloud.aws;
    let flavor = match deployment.platform {
        DeploymentPlatform::OpenaiCompatible => Flavor::OpenAi,
        DeploymentPlatform::AzureOpenai => Flavor::Azure {
            deployment: deployment.upstream_model().to_string(),
            api_version: match deployment.api_version.as_deref() {
                Some("v1") => None,
                Some(v) => Some(v.to_string()),
                None => Some(AZURE_API_VERSION.to_string()),
            },
        },
        DeploymentPlatform::Bedrock => {
            let region = deployment.region.clone().or_else(|| aws.region.clone()).ok_or_else(|| {
                OaiError::new(StatusCode::BAD_GATEWAY, "server_error", "deployment_incomplete",
                    format!("deployment {:?} has no AWS region: set its region, or start Hearth with AWS_REGION", deployment.name))
            })?;
            let auth = match &deployment.api_key {
                ApiKey::Set(k) => bedrock_auth_from_key(k),
                ApiKey::Unreadable(_) => return Err(unreadable_key(deployment)),
                ApiKey::None => aws.auth.clone().ok_or_else(|| {
                    OaiError::new(StatusCode::BAD_GATEWAY, "server_error", "no_aws_credentials",
                        format!("deployment {:?} has no AWS credentials and Hearth's environment has none: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_BEARER_TOKEN_BEDROCK), or the deployment's api_key", deployment.name))
                })?,
            };
            Flavor::Bedrock(BedrockTarget {
                region,
                model_id: deployment.upstream_model().to_string(),
                auth,
            })
        }
    };
    let base_url = match (&flavor, deployment.endpoint.clone()) {
        (_, Some(url)) => url,
        (Flavor::Bedrock(t), None) => bedrock_runtime_url(&t.region),
        (_, None) => {
            return Err(OaiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "deployment_incomplete",
                format!("deployment {:?} has no endpoint", deployment.name),
            ));
        }
    };
    let api_key = match &deployment.api_key {
        _ if matches!(flavor, Flavor::Bedrock(_)) => None,
        ApiKey::None if matches!(flavor, Flavor::Azure { .. }) => cloud.azure_api_key.clone(),
        ApiKey::None => None,
        ApiKey::Set(k) => Some(k.clone()),
        ApiKey::Unreadable(_) => {
            return Err(OaiError::new(
                StatusCode::BAD_GATEWAY,
                "server_error",
                "deployment_key_unreadable",
                format!(
                    "deployment {:?} has an API key Hearth cannot decrypt (the secret key changed); an administrator sets it again",
                    deployment.name
                ),
            ));
        }
    };
    let defaults = default_timeouts(capability);
    let ms = |v: Option<u32>, d: Duration| v.map_or(d, |ms| Duration::from_millis(u64::from(ms)));
    let t = deployment.timeouts;
    Ok(Endpoint {
        flavor,
        base_url,
        replicas: None,
        api_key,
        timeouts: Timeouts {
            connect: ms(t.connect_ms, defaults.connect),
            first_token: ms(t.first_token_ms, defaults.first_token),
            total: ms(t.total_ms, defaults.total),
        },
    })
}

fn unreadable_key(deployment: &Deployment) -> OaiError {
    OaiError::new(
        StatusCode::BAD_GATEWAY,
        "server_error",
        "deployment_key_unreadable",
        format!(
            "deployment {:?} has an API key Hearth cannot decrypt (the secret key changed); an administrator sets it again",
            deployment.name
        ),
    )
}
