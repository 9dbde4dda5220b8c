//! Which model serves a GitLab request: the one the request names (GitLab sends the
//! self-hosted model's family, endpoint, key and identifier), else Hearth's feature setting.

use std::sync::Arc;

use axum::http::StatusCode;
use hearth_catalog::{Family, Feature};
use hearth_providers::Endpoint;
use hearth_registry::{ApiKey, Deployment, DeploymentPlatform};
use secrecy::SecretString;
use serde::Deserialize;

use crate::AppState;
use crate::gitlab::error::GitlabError;
use crate::openai::error::OaiError;
use crate::routing::endpoint_for;

/// The model fields of a request, in either of GitLab's spellings (`model_*` on /v2,
/// `model_metadata{…}` on /v3, /v4, chat and prompts).
#[derive(Deserialize, Default, Clone, Debug)]
pub(crate) struct ModelFields {
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub api_key: Option<String>,
    #[serde(default)]
    pub identifier: Option<String>,
}

impl ModelFields {
    pub(crate) fn is_empty(&self) -> bool {
        self.name.is_none() && self.endpoint.is_none() && self.identifier.is_none()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum UseCase {
    Completion,
    Generation,
    Chat,
}

/// GitLab's gateway accepts these `model_name`s from `litellm`, per use case. `general` is
/// added to each: GitLab Rails offers the compatible-model family (18.3) and sends it, but
/// GitLab's own gateway refuses it on these routes; Hearth serves it with the formats of
/// [`Family::prompt_family`].
fn allowed(use_case: UseCase) -> &'static [&'static str] {
    match use_case {
        UseCase::Completion => &[
            "codegemma",
            "codellama",
            "codestral",
            "codestral-2501",
            "codestral-2508",
            "deepseekcoder",
            "llama3",
            "mistral",
            "mixtral",
            "claude_3",
            "gpt",
            "qwen2p5-coder-7b",
            "general",
        ],
        UseCase::Generation => &[
            "codegemma",
            "codellama",
            "codestral",
            "deepseekcoder",
            "llama3",
            "mistral",
            "mixtral",
            "claude_3",
            "gpt",
            "general",
        ],
        UseCase::Chat => &[
            "codestral",
            "deepseekcoder",
            "llama3",
            "mistral",
            "mixtral",
            "claude_3",
            "gpt",
            "codellama",
            "codegemma",
            "general",
        ],
    }
}

pub(crate) struct Selected {
    pub deployment: Arc<Deployment>,
    pub endpoint: Endpoint,
    /// The name reported in `model.name`.
    pub name: String,
}

fn from_oai(e: OaiError) -> GitlabError {
    let mut g = GitlabError::detail(e.status, e.message);
    g.retry_after = e.retry_after;
    g
}

pub(crate) fn select(
    state: &AppState,
    fields: &ModelFields,
    feature: Feature,
    use_case: UseCase,
) -> Result<Selected, GitlabError> {
    select_after(state, fields, feature, use_case, &[])
}

/// As [`select`], after the deployments in `tried` failed this request.
pub(crate) fn select_after(
    state: &AppState,
    fields: &ModelFields,
    feature: Feature,
    use_case: UseCase,
    tried: &[i64],
) -> Result<Selected, GitlabError> {
    let capability = feature.capability();
    if fields.is_empty() {
        let snap = state.registry.snapshot();
        let route =
            crate::openai::route_after(state, &snap, feature, None, tried).map_err(from_oai)?;
        let name = route.deployment.family.as_str().to_string();
        return Ok(Selected {
            deployment: route.deployment,
            endpoint: route.endpoint,
            name,
        });
    }
    let invalid = |m: String| GitlabError::detail(StatusCode::UNPROCESSABLE_ENTITY, m);
    if !state.custom_models {
        return Err(invalid(
            "custom models are disabled (AIGW_CUSTOM_MODELS__ENABLED=false): requests may not name a model endpoint; \
             bind the feature in Hearth instead"
                .into(),
        ));
    }
    let name = fields.name.clone().ok_or_else(|| {
        invalid("model_name is required with model_endpoint or model_identifier".into())
    })?;
    if name.len() > 50 {
        return Err(invalid("model_name is longer than 50 characters".into()));
    }
    if !allowed(use_case).contains(&name.as_str()) {
        return Err(invalid(format!(
            "model_name {name:?} is not supported here; use one of: {}",
            allowed(use_case).join(", ")
        )));
    }
    let family_text = if name.starts_with("codestral") {
        "codestral"
    } else if name.starts_with("qwen") {
        "qwen"
    } else {
        name.as_str()
    };
    let family = Family::parse(family_text)
        .ok_or_else(|| invalid(format!("unknown model family {name:?}")))?;
    let identifier = match fields
        .identifier
        .as_deref()
        .map(str::trim)
        .filter(|i| !i.is_empty())
    {
        Some(i) if i.contains('/') => i.to_string(),
        Some(i) => format!("custom_openai/{i}"),
        None => format!("custom_openai/{name}"),
    };
    let platform = if identifier.starts_with("bedrock/") {
        DeploymentPlatform::Bedrock
    } else if identifier.starts_with("azure/") {
        DeploymentPlatform::AzureOpenai
    } else if identifier.starts_with("custom_openai/") {
        DeploymentPlatform::OpenaiCompatible
    } else {
        return Err(invalid(format!(
            "model_identifier {identifier:?} is not custom_openai/…, bedrock/… or azure/…"
        )));
    };
    let endpoint = fields
        .endpoint
        .as_deref()
        .map(|e| e.trim().trim_end_matches('/').to_string())
        .filter(|e| !e.is_empty());
    if endpoint
        .as_deref()
        .is_some_and(|e| !(e.starts_with("http://") || e.starts_with("https://")) || e.len() > 255)
    {
        return Err(invalid(
            "model_endpoint must be an http(s) URL of at most 255 characters".into(),
        ));
    }
    if fields.api_key.as_ref().is_some_and(|k| k.len() > 2000) {
        return Err(invalid(
            "model_api_key is longer than 2000 characters".into(),
        ));
    }
    let deployment = Deployment {
        id: 0,
        name: name.clone(),
        family,
        model: None,
        platform,
        endpoints: endpoint.iter().cloned().collect(),
        routing: Default::default(),
        endpoint,
        identifier,
        api_key: fields
            .api_key
            .clone()
            .filter(|k| !k.is_empty())
            .map_or(ApiKey::None, |k| ApiKey::Set(SecretString::from(k))),
        timeouts: Default::default(),
        api_version: None,
        region: None,
        created_at: String::new(),
        updated_at: String::new(),
    };
    let endpoint = endpoint_for(&deployment, capability, &state.cloud).map_err(from_oai)?;
    Ok(Selected {
        deployment: Arc::new(deployment),
        endpoint,
        name,
    })
}

/// The language GitLab reports: `language_identifier`, else the file extension's language.
pub(crate) fn language(identifier: Option<&str>, file_name: &str) -> String {
    if let Some(l) = identifier.map(str::trim).filter(|l| !l.is_empty()) {
        return l.to_lowercase();
    }
    let ext = file_name
        .rsplit_once('.')
        .map(|(_, e)| e.to_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "py" => "python",
        "rs" => "rust",
        "js" | "mjs" | "cjs" | "jsx" => "javascript",
        "ts" | "tsx" => "typescript",
        "go" => "go",
        "rb" => "ruby",
        "java" => "java",
        "kt" | "kts" => "kotlin",
        "c" | "h" => "c",
        "cc" | "cpp" | "cxx" | "hpp" => "c++",
        "cs" => "c#",
        "php" => "php",
        "swift" => "swift",
        "scala" => "scala",
        "sh" | "bash" => "shell",
        "sql" => "sql",
        "html" | "htm" => "html",
        "css" => "css",
        "yml" | "yaml" => "yaml",
        "json" => "json",
        "md" => "markdown",
        "tf" => "terraform",
        "vue" => "vue",
        other => return other.to_string(),
    }
    .to_string()
}
