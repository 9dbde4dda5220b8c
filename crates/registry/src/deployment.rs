//! Self-hosted model deployments: their shape and every rule a new or changed one must meet.

use hearth_catalog::{Family, Model, Platform as CatalogPlatform, ReleaseStatus, find_model};
use secrecy::SecretString;

use crate::error::{RegistryError, Result};
use crate::settings::{ENABLE_BETA_HINT, Settings};

/// How Hearth talks to a deployment. Inferred from the identifier's prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeploymentPlatform {
    /// vLLM, llama.cpp, Ollama, TGI: anything that speaks the OpenAI API.
    OpenaiCompatible,
    Bedrock,
    AzureOpenai,
}

impl DeploymentPlatform {
    pub const ALL: [DeploymentPlatform; 3] =
        [Self::OpenaiCompatible, Self::Bedrock, Self::AzureOpenai];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpenaiCompatible => "openai_compatible",
            Self::Bedrock => "bedrock",
            Self::AzureOpenai => "azure_openai",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    fn identifier_prefix(self) -> &'static str {
        match self {
            Self::OpenaiCompatible => "custom_openai/",
            Self::Bedrock => "bedrock/",
            Self::AzureOpenai => "azure/",
        }
    }

    fn catalog_platform(self) -> Option<CatalogPlatform> {
        match self {
            Self::OpenaiCompatible => Some(CatalogPlatform::Vllm),
            Self::Bedrock => Some(CatalogPlatform::Bedrock),
            Self::AzureOpenai => Some(CatalogPlatform::AzureOpenai),
        }
    }
}

/// How a deployment's requests are spread over its endpoints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum RoutingPolicy {
    /// In turn, skipping unhealthy endpoints.
    RoundRobin,
    /// The endpoint with the fewest requests in flight (Hearth's count plus the model
    /// server's own queue where it reports one).
    LeastLoaded,
    /// Requests with the same affinity key (client and file) go to the same endpoint, so its
    /// prefix cache stays warm, unless that endpoint carries more than its share of the load;
    /// requests without a key go to the least loaded.
    #[default]
    PrefixAffinity,
}

impl RoutingPolicy {
    pub const ALL: [RoutingPolicy; 3] = [Self::RoundRobin, Self::LeastLoaded, Self::PrefixAffinity];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RoundRobin => "round_robin",
            Self::LeastLoaded => "least_loaded",
            Self::PrefixAffinity => "prefix_affinity",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// The stored form: `None` for the default, so a later change of default reaches it.
    pub(crate) fn stored(self) -> Option<&'static str> {
        (self != Self::default()).then_some(self.as_str())
    }
}

/// The state of a deployment's API key. The key itself never leaves the process except
/// towards the model server.
#[derive(Clone, Debug)]
pub enum ApiKey {
    None,
    Set(SecretString),
    /// Stored, but the current secret key cannot decrypt it.
    Unreadable(String),
}

impl ApiKey {
    pub fn is_set(&self) -> bool {
        !matches!(self, Self::None)
    }
}

/// Per-deployment timeouts in milliseconds; `None` uses the feature's default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimeoutOverrides {
    pub connect_ms: Option<u32>,
    pub first_token_ms: Option<u32>,
    pub total_ms: Option<u32>,
}

/// Changes to the timeouts; `Some(None)` returns one to the default.
#[derive(Clone, Copy, Debug, Default)]
pub struct TimeoutPatch {
    pub connect_ms: Option<Option<u32>>,
    pub first_token_ms: Option<Option<u32>>,
    pub total_ms: Option<Option<u32>>,
}

impl TimeoutOverrides {
    pub(crate) fn patched(self, p: TimeoutPatch) -> TimeoutOverrides {
        TimeoutOverrides {
            connect_ms: p.connect_ms.unwrap_or(self.connect_ms),
            first_token_ms: p.first_token_ms.unwrap_or(self.first_token_ms),
            total_ms: p.total_ms.unwrap_or(self.total_ms),
        }
    }
}

/// A registered deployment, as readers see it.
#[derive(Clone, Debug)]
pub struct Deployment {
    pub id: i64,
    pub name: String,
    pub family: Family,
    /// The catalog model it serves, when named or recognised from the identifier.
    pub model: Option<&'static Model>,
    pub platform: DeploymentPlatform,
    /// The first of `endpoints`.
    pub endpoint: Option<String>,
    /// Every replica's base URL, `endpoint` first; empty for a Bedrock deployment that uses
    /// the region's public endpoint.
    pub endpoints: Vec<String>,
    pub routing: RoutingPolicy,
    pub identifier: String,
    pub api_key: ApiKey,
    pub timeouts: TimeoutOverrides,
    /// Azure only: `None` for Hearth's default, `"v1"` for the v1 API.
    pub api_version: Option<String>,
    /// Bedrock only: `None` for the process's AWS_REGION.
    pub region: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl Deployment {
    /// The model name the platform knows: vLLM's served name, the Bedrock model id or the
    /// Azure deployment.
    pub fn upstream_model(&self) -> &str {
        self.identifier
            .split_once('/')
            .map_or(self.identifier.as_str(), |(_, rest)| rest)
    }

    /// The family whose prompts this deployment gets: its own, or for a compatible
    /// (`general`) deployment the code family its served name names.
    pub fn prompt_family(&self) -> Family {
        self.family.prompt_family(self.upstream_model())
    }
}

/// Everything needed to create a deployment, as the caller typed it.
#[derive(Clone, Debug, Default)]
pub struct NewDeployment {
    pub name: String,
    pub family: String,
    pub model: Option<String>,
    pub platform: Option<String>,
    pub endpoint: Option<String>,
    /// Replicas of the same served model; `endpoint`, when also given, must be the first.
    pub endpoints: Option<Vec<String>>,
    pub routing: Option<String>,
    pub identifier: String,
    pub api_key: Option<SecretString>,
    pub timeouts: TimeoutOverrides,
    pub api_version: Option<String>,
    pub region: Option<String>,
}

/// A partial update. For the nullable fields, `Some(None)` clears the value.
#[derive(Clone, Debug, Default)]
pub struct DeploymentPatch {
    pub name: Option<String>,
    pub family: Option<String>,
    pub model: Option<Option<String>>,
    pub platform: Option<String>,
    /// Replaces the first endpoint, keeping the other replicas.
    pub endpoint: Option<Option<String>>,
    /// Replaces the whole list.
    pub endpoints: Option<Vec<String>>,
    pub routing: Option<String>,
    pub identifier: Option<String>,
    pub api_key: Option<Option<SecretString>>,
    pub timeouts: TimeoutPatch,
    pub api_version: Option<Option<String>>,
    pub region: Option<Option<String>>,
}

/// A deployment that passed every rule, ready to store.
#[derive(Debug)]
pub(crate) struct Validated {
    pub name: String,
    pub family: Family,
    pub model: Option<&'static Model>,
    pub platform: DeploymentPlatform,
    pub endpoint: Option<String>,
    pub endpoints: Vec<String>,
    pub routing: RoutingPolicy,
    pub identifier: String,
    pub timeouts: TimeoutOverrides,
    pub api_version: Option<String>,
    pub region: Option<String>,
    pub warnings: Vec<String>,
}

const NAME_MAX: usize = 255;
const ENDPOINT_MAX: usize = 2048;
/// Replicas per deployment: each gets its own health checks and connection pool.
pub const MAX_ENDPOINTS: usize = 32;
const IDENTIFIER_MAX: usize = 255;
pub(crate) const API_KEY_MAX: usize = 2000;
/// One hour: longer than any completion or chat turn should take.
const TIMEOUT_MAX_MS: u32 = 3_600_000;

const IDENTIFIER_FORMS: &str = "custom_openai/<served model name> (vLLM and other OpenAI-compatible servers), \
     bedrock/<model id> (AWS Bedrock) or azure/<deployment name> (Azure OpenAI)";

/// Checks a deployment's fields. `check_beta` is false when an update leaves the family as it
/// was, so a beta deployment stays editable after beta models are turned off.
/// What the process's environment offers deployments that name no credentials of their own.
#[derive(Clone, Debug, Default)]
pub struct CloudEnvironment {
    /// AWS credentials or a Bedrock API key are available (environment or profile).
    pub aws_credentials: bool,
    /// AWS_REGION / AWS_REGION_NAME.
    pub aws_region: Option<String>,
    /// AZURE_OPENAI_API_KEY is set.
    pub azure_key: bool,
}

pub(crate) fn validate(
    input: &NewDeployment,
    settings: &Settings,
    check_beta: bool,
    cloud: &CloudEnvironment,
) -> Result<Validated> {
    let mut warnings = Vec::new();
    let name = validate_name(&input.name)?;

    let family = Family::parse(&input.family).ok_or_else(|| {
        RegistryError::invalid(
            "family",
            format!(
                "unknown model family {:?}; use one of: {}",
                input.family,
                family_list()
            ),
        )
    })?;
    if check_beta && family.status() == ReleaseStatus::Beta && !settings.beta_models_enabled {
        return Err(RegistryError::invalid(
            "family",
            format!(
                "{} is a beta model family and beta models are off; {ENABLE_BETA_HINT}",
                family.as_str()
            ),
        ));
    }

    let identifier = input.identifier.trim();
    let platform = parse_identifier(identifier)?;
    if let Some(given) = input.platform.as_deref() {
        let given_platform = DeploymentPlatform::parse(given).ok_or_else(|| {
            RegistryError::invalid(
                "platform",
                format!("unknown platform {given:?}; use openai_compatible, bedrock or azure_openai, or leave it out to infer it from the identifier"),
            )
        })?;
        if given_platform != platform {
            return Err(RegistryError::invalid(
                "platform",
                format!(
                    "platform {given} does not match identifier {identifier:?}, which means {}; \
                     leave platform out or use an identifier starting with {}",
                    platform.as_str(),
                    given_platform.identifier_prefix()
                ),
            ));
        }
    }

    let endpoints = validate_endpoints(input, platform)?;
    let endpoint = endpoints.first().cloned();
    let routing = match input.routing.as_deref().map(str::trim) {
        None | Some("") => RoutingPolicy::default(),
        Some(r) => RoutingPolicy::parse(r).ok_or_else(|| {
            RegistryError::invalid(
                "routing",
                format!("unknown routing {r:?}; use round_robin, least_loaded or prefix_affinity"),
            )
        })?,
    };
    validate_timeouts(input.timeouts)?;
    let api_version = validate_api_version(input.api_version.as_deref(), platform)?;
    let region = validate_region(input.region.as_deref(), platform)?;
    if platform == DeploymentPlatform::AzureOpenai && input.api_key.is_none() && !cloud.azure_key {
        return Err(RegistryError::invalid(
            "api_key",
            "azure deployments need credentials: set api_key to the resource's key (or \"Bearer <Entra ID token>\"), or start Hearth with AZURE_OPENAI_API_KEY",
        ));
    }
    if platform == DeploymentPlatform::Bedrock {
        if region.is_none() && cloud.aws_region.is_none() {
            return Err(RegistryError::invalid(
                "region",
                "no AWS region: set the deployment's region (e.g. us-east-1), or start Hearth with AWS_REGION (or AWS_REGION_NAME)",
            ));
        }
        if input.api_key.is_none() && !cloud.aws_credentials {
            return Err(RegistryError::invalid(
                "api_key",
                "no AWS credentials: set api_key to ACCESS_KEY_ID:SECRET_ACCESS_KEY[:SESSION_TOKEN] or a Bedrock API key, \
                 or start Hearth with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_BEARER_TOKEN_BEDROCK, or an AWS profile)",
            ));
        }
    }

    let model = match input
        .model
        .as_deref()
        .map(str::trim)
        .filter(|m| !m.is_empty())
    {
        Some(query) => {
            let model =
                find_model(query).map_err(|e| RegistryError::invalid("model", e.to_string()))?;
            if model.family != family {
                return Err(RegistryError::invalid(
                    "model",
                    format!(
                        "catalog model {} belongs to family {}, not {}",
                        model.id, model.family, family
                    ),
                ));
            }
            Some(model)
        }
        None => recognise_model(family, identifier),
    };

    if let Some(catalog_platform) = platform.catalog_platform() {
        let listed = match model {
            Some(m) => m.serves_on(catalog_platform),
            None => family.models().any(|m| m.serves_on(catalog_platform)),
        };
        let has_models = family.models().next().is_some();
        if has_models && !listed {
            warnings.push(format!(
                "the catalog does not list {} on {}; Hearth will try it, but it is not an approved combination",
                model.map_or(family.display_name(), |m| m.name),
                catalog_platform.label()
            ));
        }
    }
    let served = identifier
        .split_once('/')
        .map_or(identifier, |(_, rest)| rest);
    if family == Family::General {
        // A compatible deployment's served name is how it picks its prompt format, so a name
        // that names a family is expected, not a contradiction: say which format it gets.
        let format = family.prompt_family(served);
        warnings.push(if format == Family::General {
            format!(
                "compatible model {served:?}: no FIM format is known for it, so code completion asks it in chat"
            )
        } else {
            format!(
                "compatible model {served:?}: code completion uses {}'s FIM format, chosen from the served name",
                format.display_name()
            )
        });
    } else if let Some(suggested) = Family::named_in(served).filter(|f| *f != family) {
        warnings.push(format!(
            "the identifier {identifier:?} looks like a {} model (family {suggested}), not {family}; check --family: the family decides the prompt format and the ratings",
            suggested.display_name()
        ));
    } else if model.is_none() && family.models().next().is_some() {
        let ids: Vec<&str> = family.models().map(|m| m.id).collect();
        warnings.push(format!(
            "the catalog does not recognise the served name {served:?}, so ratings use the best {} model; name the catalog model with --model (one of: {})",
            family.display_name(),
            ids.join(", ")
        ));
    }

    if family == Family::General {
        warnings.push(
            "General (compatible model) is beta: GitLab neither rates nor supports these models, so no feature rating applies; check the results yourself".to_string(),
        );
    } else if family.models().next().is_none() {
        warnings.push(format!(
            "{} has no model in GitLab's catalog, so no feature rating applies",
            family.display_name()
        ));
    }

    Ok(Validated {
        name,
        family,
        model,
        platform,
        endpoint,
        endpoints,
        routing,
        identifier: identifier.to_string(),
        timeouts: input.timeouts,
        api_version,
        region,
        warnings,
    })
}

/// AWS region names: `us-east-1`, `eu-central-2`, `us-gov-west-1`, `ap-southeast-4`.
fn validate_region(raw: Option<&str>, platform: DeploymentPlatform) -> Result<Option<String>> {
    let Some(r) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    if platform != DeploymentPlatform::Bedrock {
        return Err(RegistryError::invalid(
            "region",
            "region applies to bedrock/… deployments only; leave it out",
        ));
    }
    let parts: Vec<&str> = r.split('-').collect();
    let ok = (3..=4).contains(&parts.len())
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
        && parts
            .last()
            .is_some_and(|p| p.chars().all(|c| c.is_ascii_digit()));
    if ok {
        Ok(Some(r.to_string()))
    } else {
        Err(RegistryError::invalid(
            "region",
            format!("region {r:?} is not an AWS region name such as us-east-1"),
        ))
    }
}

/// Azure's versions are dates (`2024-10-21`, `2025-04-01-preview`), or `v1` for the v1 API.
fn validate_api_version(raw: Option<&str>, platform: DeploymentPlatform) -> Result<Option<String>> {
    let Some(v) = raw.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if platform != DeploymentPlatform::AzureOpenai {
        return Err(RegistryError::invalid(
            "api_version",
            "api_version applies to azure/… deployments only; leave it out",
        ));
    }
    let date = v.strip_suffix("-preview").unwrap_or(v);
    let is_date = date.len() == 10
        && date.char_indices().all(|(i, c)| {
            if i == 4 || i == 7 {
                c == '-'
            } else {
                c.is_ascii_digit()
            }
        });
    if v == "v1" || is_date {
        Ok(Some(v.to_string()))
    } else {
        Err(RegistryError::invalid(
            "api_version",
            format!(
                "api_version {v:?} is not an Azure API version: use a date such as 2024-10-21 (or 2025-04-01-preview), or v1 for the v1 API"
            ),
        ))
    }
}

fn validate_timeouts(t: TimeoutOverrides) -> Result<()> {
    for (field, value) in [
        ("connect_timeout_ms", t.connect_ms),
        ("first_token_timeout_ms", t.first_token_ms),
        ("total_timeout_ms", t.total_ms),
    ] {
        if let Some(ms) = value
            && !(1..=TIMEOUT_MAX_MS).contains(&ms)
        {
            return Err(RegistryError::invalid(
                field,
                format!(
                    "{field} must be between 1 and {TIMEOUT_MAX_MS} milliseconds, or null for the default"
                ),
            ));
        }
    }
    if let (Some(first), Some(total)) = (t.first_token_ms, t.total_ms)
        && first > total
    {
        return Err(RegistryError::invalid(
            "first_token_timeout_ms",
            format!(
                "first_token_timeout_ms ({first}) cannot be longer than total_timeout_ms ({total})"
            ),
        ));
    }
    Ok(())
}

fn family_list() -> String {
    Family::ALL
        .iter()
        .map(|f| f.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn validate_name(raw: &str) -> Result<String> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(RegistryError::invalid(
            "name",
            "name must not be empty; give the deployment a name such as \"Mixtral-8x7B on gpu-1\"",
        ));
    }
    if name.chars().count() > NAME_MAX {
        return Err(RegistryError::invalid(
            "name",
            format!("name is longer than {NAME_MAX} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(RegistryError::invalid(
            "name",
            "name must not contain control characters",
        ));
    }
    Ok(name.to_string())
}

fn parse_identifier(identifier: &str) -> Result<DeploymentPlatform> {
    if identifier.is_empty() {
        return Err(RegistryError::invalid(
            "identifier",
            format!("identifier is required; use {IDENTIFIER_FORMS}"),
        ));
    }
    if identifier.len() > IDENTIFIER_MAX {
        return Err(RegistryError::invalid(
            "identifier",
            format!("identifier is longer than {IDENTIFIER_MAX} characters"),
        ));
    }
    if identifier
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(RegistryError::invalid(
            "identifier",
            "identifier must not contain spaces or control characters",
        ));
    }
    let platform = DeploymentPlatform::ALL
        .into_iter()
        .find(|p| identifier.starts_with(p.identifier_prefix()))
        .ok_or_else(|| {
            RegistryError::invalid(
                "identifier",
                format!(
                    "identifier {identifier:?} is not in an accepted form; use {IDENTIFIER_FORMS}"
                ),
            )
        })?;
    if identifier.len() == platform.identifier_prefix().len() {
        return Err(RegistryError::invalid(
            "identifier",
            format!(
                "identifier {identifier:?} names no model after the prefix; use {IDENTIFIER_FORMS}"
            ),
        ));
    }
    Ok(platform)
}

/// The replicas' URLs, `endpoint` first: from `endpoints` when given (`endpoint` then must be
/// its first entry), else the single `endpoint`.
fn validate_endpoints(input: &NewDeployment, platform: DeploymentPlatform) -> Result<Vec<String>> {
    let Some(list) = &input.endpoints else {
        return Ok(validate_endpoint(input.endpoint.as_deref(), platform)?
            .into_iter()
            .collect());
    };
    if list.is_empty() {
        return Err(RegistryError::invalid(
            "endpoints",
            "endpoints is empty: give at least one URL, or leave endpoints out and set endpoint",
        ));
    }
    if list.len() > MAX_ENDPOINTS {
        return Err(RegistryError::invalid(
            "endpoints",
            format!(
                "{} endpoints is more than the {MAX_ENDPOINTS} a deployment may have",
                list.len()
            ),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for (i, raw) in list.iter().enumerate() {
        let at = |e: RegistryError| match e {
            RegistryError::Invalid { message, .. } => {
                RegistryError::invalid("endpoints", format!("endpoints[{i}]: {message}"))
            }
            other => other,
        };
        if raw.trim().is_empty() {
            return Err(at(RegistryError::invalid("endpoints", "the URL is empty")));
        }
        let Some(url) = validate_endpoint(Some(raw), platform).map_err(at)? else {
            return Err(at(RegistryError::invalid("endpoints", "the URL is empty")));
        };
        if out.contains(&url) {
            return Err(at(RegistryError::invalid(
                "endpoints",
                format!("{url} is listed twice"),
            )));
        }
        out.push(url);
    }
    if let Some(first) = input
        .endpoint
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty())
        && first.trim_end_matches('/') != out[0]
    {
        return Err(RegistryError::invalid(
            "endpoint",
            "endpoint and endpoints disagree: endpoint must be the first of endpoints; send only endpoints",
        ));
    }
    Ok(out)
}

fn validate_endpoint(raw: Option<&str>, platform: DeploymentPlatform) -> Result<Option<String>> {
    let raw = raw.map(str::trim).filter(|s| !s.is_empty());
    let Some(raw) = raw else {
        return match platform {
            DeploymentPlatform::OpenaiCompatible => Err(RegistryError::invalid(
                "endpoint",
                "endpoint is required for custom_openai deployments; for vLLM it is http(s)://<host>:8000/v1",
            )),
            DeploymentPlatform::AzureOpenai => Err(RegistryError::invalid(
                "endpoint",
                "endpoint is required for azure deployments: https://<resource>.openai.azure.com",
            )),
            DeploymentPlatform::Bedrock => Ok(None),
        };
    };
    if raw.len() > ENDPOINT_MAX {
        return Err(RegistryError::invalid(
            "endpoint",
            format!("endpoint is longer than {ENDPOINT_MAX} characters"),
        ));
    }
    let url = url::Url::parse(raw).map_err(|e| {
        RegistryError::invalid(
            "endpoint",
            format!("endpoint {raw:?} is not a URL ({e}); write it as http(s)://host:port/v1"),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(RegistryError::invalid(
            "endpoint",
            format!("endpoint {raw:?} must be an http:// or https:// URL with a host"),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(RegistryError::invalid(
            "endpoint",
            "endpoint must not carry credentials; put the key in api_key, which is stored encrypted",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(RegistryError::invalid(
            "endpoint",
            "endpoint must not have a query string or fragment",
        ));
    }
    let trimmed = raw.trim_end_matches('/').to_string();
    if platform == DeploymentPlatform::OpenaiCompatible
        && !url.path().trim_end_matches('/').ends_with("/v1")
    {
        return Err(RegistryError::invalid(
            "endpoint",
            format!(
                "an OpenAI-compatible (vLLM) endpoint must end in /v1: use {}",
                suggest_v1(&url)
            ),
        ));
    }
    Ok(Some(trimmed))
}

/// The URL a user most likely meant: the base ending in `/v1`.
fn suggest_v1(url: &url::Url) -> String {
    let mut fixed = url.clone();
    let path = url.path().trim_end_matches('/');
    let base = match path.find("/v1/") {
        Some(i) => &path[..i + 3],
        None => path,
    };
    let new_path = if base.ends_with("/v1") {
        base.to_string()
    } else {
        format!("{base}/v1")
    };
    fixed.set_path(&new_path);
    fixed.to_string()
}

/// Recognises the catalog model from the identifier: vLLM users usually serve a model under
/// its repository name, and Bedrock ids are exact, or carry a cross-region inference
/// profile's prefix (`us.`, `eu.`, `apac.`, `global.`), which newer Claude models need.
fn recognise_model(family: Family, identifier: &str) -> Option<&'static Model> {
    let (platform, rest) = identifier.split_once('/')?;
    let target = rest.to_lowercase();
    let bedrock_target = match platform {
        "bedrock" => ["us.", "eu.", "apac.", "global."]
            .iter()
            .find_map(|p| target.strip_prefix(p))
            .unwrap_or(&target)
            .to_string(),
        _ => target.clone(),
    };
    family.models().find(|m| {
        m.repo_name().to_lowercase() == target
            || m.public_id.to_lowercase() == target
            || m.bedrock_id
                .is_some_and(|b| b.to_lowercase() == bedrock_target)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bedrock_inference_profile_ids_are_recognised() {
        for id in [
            "bedrock/anthropic.claude-sonnet-4-5-20250929-v1:0",
            "bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "bedrock/eu.anthropic.claude-sonnet-4-5-20250929-v1:0",
        ] {
            assert_eq!(
                recognise_model(Family::Claude3, id).map(|m| m.id),
                Some("claude-4.5-sonnet"),
                "{id}"
            );
        }
        // The prefix means nothing outside Bedrock.
        assert_eq!(
            recognise_model(
                Family::Claude3,
                "custom_openai/us.anthropic.claude-sonnet-4-5-20250929-v1:0"
            ),
            None
        );
    }

    #[test]
    fn the_family_a_served_name_names_is_found() {
        assert_eq!(
            Family::named_in("Mixtral-8x7B-Instruct-v0.1"),
            Some(Family::Mixtral)
        );
        assert_eq!(
            Family::named_in("mistralai/Mistral-7B-Instruct-v0.3"),
            Some(Family::Mistral)
        );
        assert_eq!(
            Family::named_in("Codestral-22B-v0.1"),
            Some(Family::Codestral)
        );
        assert_eq!(
            Family::named_in("deepseek-coder-33b"),
            Some(Family::Deepseekcoder)
        );
        assert_eq!(Family::named_in("Meta-Llama-3-8B"), Some(Family::Llama3));
        assert_eq!(Family::named_in("my-model"), None);
    }

    #[test]
    fn a_family_the_identifier_contradicts_is_warned_and_an_unknown_name_too() {
        let contradicted = validate_t(
            &input(
                "codestral",
                Some("http://h:8000/v1"),
                "custom_openai/Mixtral-8x7B-Instruct-v0.1",
            ),
            &Settings::default(),
            true,
        )
        .unwrap();
        assert!(
            contradicted
                .warnings
                .iter()
                .any(|w| w.contains("family mixtral") && w.contains("not codestral")),
            "{:?}",
            contradicted.warnings
        );
        let unknown = validate_t(
            &input(
                "mistral",
                Some("http://h:8000/v1"),
                "custom_openai/my-model",
            ),
            &Settings::default(),
            true,
        )
        .unwrap();
        assert!(
            unknown.warnings.iter().any(|w| w
                .contains("does not recognise the served name \"my-model\"")
                && w.contains("--model")),
            "{:?}",
            unknown.warnings
        );
        let known = validate_t(
            &input(
                "mixtral",
                Some("http://h:8000/v1"),
                "custom_openai/Mixtral-8x7B-Instruct-v0.1",
            ),
            &Settings::default(),
            true,
        )
        .unwrap();
        assert!(known.warnings.is_empty(), "{:?}", known.warnings);
    }

    #[test]
    fn general_deployments_need_beta_and_say_which_format_they_get() {
        let off = validate_t(
            &input(
                "general",
                Some("http://h:8000/v1"),
                "custom_openai/Qwen2.5-Coder-7B",
            ),
            &Settings::default(),
            true,
        );
        assert!(off.is_err(), "general is a beta family");
        let on = Settings {
            beta_models_enabled: true,
            ..Default::default()
        };
        let qwen = validate_t(
            &input(
                "general",
                Some("http://h:8000/v1"),
                "custom_openai/Qwen2.5-Coder-7B",
            ),
            &on,
            true,
        )
        .unwrap();
        assert!(
            qwen.warnings
                .iter()
                .any(|w| w.contains("Qwen2.5-Coder's FIM format")),
            "{:?}",
            qwen.warnings
        );
        assert!(
            !qwen.warnings.iter().any(|w| w.contains("check --family")),
            "{:?}",
            qwen.warnings
        );
        assert!(
            qwen.warnings
                .iter()
                .any(|w| w.contains("neither rates nor supports")),
            "{:?}",
            qwen.warnings
        );
        let devstral = validate_t(
            &input(
                "general",
                Some("http://h:8000/v1"),
                "custom_openai/Devstral-Small-2507",
            ),
            &on,
            true,
        )
        .unwrap();
        assert!(
            devstral
                .warnings
                .iter()
                .any(|w| w.contains("asks it in chat")),
            "{:?}",
            devstral.warnings
        );
    }

    fn input(family: &str, endpoint: Option<&str>, identifier: &str) -> NewDeployment {
        NewDeployment {
            name: "dep".into(),
            family: family.into(),
            endpoint: endpoint.map(Into::into),
            identifier: identifier.into(),
            ..Default::default()
        }
    }

    fn validate_t(
        input: &NewDeployment,
        settings: &Settings,
        check_beta: bool,
    ) -> Result<Validated> {
        let cloud = CloudEnvironment {
            aws_credentials: true,
            aws_region: Some("us-east-1".into()),
            azure_key: true,
        };
        validate(input, settings, check_beta, &cloud)
    }

    #[test]
    fn bedrock_needs_a_region_and_credentials_from_somewhere() {
        let s = Settings::default();
        let i = input(
            "claude_3",
            None,
            "bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0",
        );
        let none = CloudEnvironment::default();
        match validate(&i, &s, true, &none) {
            Err(RegistryError::Invalid {
                field: "region",
                message,
            }) => assert!(message.contains("AWS_REGION")),
            other => panic!("{other:?}"),
        }
        let mut with_region = i.clone();
        with_region.region = Some("eu-west-1".into());
        match validate(&with_region, &s, true, &none) {
            Err(RegistryError::Invalid {
                field: "api_key",
                message,
            }) => assert!(message.contains("AWS_ACCESS_KEY_ID")),
            other => panic!("{other:?}"),
        }
        with_region.api_key = Some(SecretString::from("AKIA:secret"));
        assert_eq!(
            validate(&with_region, &s, true, &none)
                .unwrap()
                .region
                .as_deref(),
            Some("eu-west-1")
        );
        with_region.region = Some("mars".into());
        assert!(validate(&with_region, &s, true, &none).is_err());
    }

    fn err_of(input: &NewDeployment, settings: &Settings) -> (&'static str, String) {
        match validate_t(input, settings, true) {
            Err(RegistryError::Invalid { field, message }) => (field, message),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn vllm_endpoints_must_end_in_v1_and_the_refusal_shows_the_fix() {
        let s = Settings::default();
        for (given, fixed) in [
            ("http://gpu:8000", "http://gpu:8000/v1"),
            ("http://gpu:8000/", "http://gpu:8000/v1"),
            (
                "https://gpu:8000/v1/chat/completions",
                "https://gpu:8000/v1",
            ),
            ("http://gpu/vllm", "http://gpu/vllm/v1"),
        ] {
            let (field, msg) = err_of(&input("mistral", Some(given), "custom_openai/m"), &s);
            assert_eq!(field, "endpoint");
            assert!(msg.contains(fixed), "{given}: {msg}");
        }
        let ok = validate_t(
            &input("mistral", Some("http://gpu:8000/v1/"), "custom_openai/m"),
            &s,
            true,
        )
        .unwrap();
        assert_eq!(ok.endpoint.as_deref(), Some("http://gpu:8000/v1"));
    }

    #[test]
    fn identifiers_set_the_platform_and_bad_ones_list_the_forms() {
        let s = Settings::default();
        let v = validate_t(
            &input(
                "mixtral",
                None,
                "bedrock/mistral.mixtral-8x7b-instruct-v0:1",
            ),
            &s,
            true,
        )
        .unwrap();
        assert_eq!(v.platform, DeploymentPlatform::Bedrock);
        assert_eq!(v.model.unwrap().id, "mixtral-8x7b-instruct-v0.1");
        let v = validate_t(
            &input("gpt", Some("https://r.openai.azure.com"), "azure/gpt-4o"),
            &s,
            true,
        )
        .unwrap();
        assert_eq!(v.platform, DeploymentPlatform::AzureOpenai);
        for bad in [
            "",
            "openai/gpt-4",
            "Mixtral",
            "custom_openai/",
            "custom_openai/a b",
        ] {
            let (field, msg) = err_of(&input("mistral", Some("http://h:8000/v1"), bad), &s);
            assert_eq!(field, "identifier", "{bad}");
            assert!(msg.contains("identifier"), "{bad}: {msg}");
        }
        let (_, msg) = err_of(&input("mistral", Some("http://h:8000/v1"), "openai/x"), &s);
        assert!(
            msg.contains("custom_openai/<served model name>") && msg.contains("bedrock/<model id>")
        );
    }

    #[test]
    fn api_versions_are_azure_dates_or_v1() {
        let s = Settings::default();
        let mut i = input("gpt", Some("https://r.openai.azure.com"), "azure/gpt-4o");
        for ok in ["2024-10-21", "2025-04-01-preview", "v1"] {
            i.api_version = Some(ok.into());
            assert_eq!(
                validate_t(&i, &s, true).unwrap().api_version.as_deref(),
                Some(ok)
            );
        }
        i.api_version = Some("latest".into());
        assert_eq!(err_of(&i, &s).0, "api_version");
        let mut v = input("mistral", Some("http://h:8000/v1"), "custom_openai/m");
        v.api_version = Some("2024-10-21".into());
        assert!(err_of(&v, &s).1.contains("azure/… deployments only"));
    }

    #[test]
    fn endpoint_rules_depend_on_the_platform() {
        let s = Settings::default();
        assert_eq!(
            err_of(&input("mistral", None, "custom_openai/m"), &s).0,
            "endpoint"
        );
        assert_eq!(err_of(&input("gpt", None, "azure/x"), &s).0, "endpoint");
        assert!(validate_t(&input("claude_3", None, "bedrock/anthropic.x"), &s, true).is_ok());
        for bad in [
            "ftp://h/v1",
            "not a url",
            "http://user:pw@h:8000/v1",
            "http://h:8000/v1?x=1",
        ] {
            assert_eq!(
                err_of(&input("mistral", Some(bad), "custom_openai/m"), &s).0,
                "endpoint",
                "{bad}"
            );
        }
        let long = format!("http://h/{}/v1", "a".repeat(2100));
        assert!(
            err_of(&input("mistral", Some(&long), "custom_openai/m"), &s)
                .1
                .contains("2048")
        );
    }

    #[test]
    fn beta_families_need_the_setting() {
        let off = Settings::default();
        let (field, msg) = err_of(
            &input("codegemma", Some("http://h:8000/v1"), "custom_openai/cg"),
            &off,
        );
        assert_eq!(field, "family");
        assert!(msg.contains("beta_models_enabled"), "{msg}");
        let on = Settings {
            beta_models_enabled: true,
            ..Default::default()
        };
        assert!(
            validate_t(
                &input("codegemma", Some("http://h:8000/v1"), "custom_openai/cg"),
                &on,
                true
            )
            .is_ok()
        );
        // An existing beta deployment stays editable.
        assert!(
            validate_t(
                &input("codegemma", Some("http://h:8000/v1"), "custom_openai/cg"),
                &off,
                false
            )
            .is_ok()
        );
    }

    #[test]
    fn names_families_platforms_and_models_are_checked() {
        let s = Settings::default();
        let mut i = input("mistral", Some("http://h:8000/v1"), "custom_openai/m");
        i.name = "  ".into();
        assert_eq!(err_of(&i, &s).0, "name");
        i.name = "x".repeat(256);
        assert_eq!(err_of(&i, &s).0, "name");
        i.name = "ok".into();
        i.family = "gemini-ultra".into();
        let (field, msg) = err_of(&i, &s);
        assert_eq!(field, "family");
        assert!(msg.contains("codestral"), "{msg}");
        i.family = "Mistral".into();
        i.platform = Some("bedrock".into());
        assert_eq!(err_of(&i, &s).0, "platform");
        i.platform = Some("openai_compatible".into());
        i.model = Some("codestral-22b-v0.1".into());
        let (field, msg) = err_of(&i, &s);
        assert_eq!(field, "model");
        assert!(msg.contains("belongs to family codestral"), "{msg}");
        i.model = Some("mistral-7b-instruct-v0.3".into());
        assert_eq!(
            validate_t(&i, &s, true).unwrap().model.unwrap().name,
            "Mistral 7B-it v0.3"
        );
    }

    #[test]
    fn unlisted_platform_combinations_warn() {
        let s = Settings::default();
        let v = validate_t(
            &input("gpt", Some("http://h:8000/v1"), "custom_openai/gpt-4o"),
            &s,
            true,
        )
        .unwrap();
        assert!(
            v.warnings
                .iter()
                .any(|w| w.contains("not an approved combination")),
            "{:?}",
            v.warnings
        );
        let v = validate_t(
            &input(
                "mixtral",
                Some("http://h:8000/v1"),
                "custom_openai/Mixtral-8x7B-Instruct-v0.1",
            ),
            &s,
            true,
        )
        .unwrap();
        assert!(v.warnings.is_empty(), "{:?}", v.warnings);
        assert_eq!(v.model.unwrap().id, "mixtral-8x7b-instruct-v0.1");
    }
}
