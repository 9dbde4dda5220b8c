//! GitLab's authentication of AI-gateway requests: an RS256 JWT whose signing keys come from
//! the GitLab instance's OIDC discovery document, plus the headers GitLab sends alongside.

use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;
use tokio::sync::RwLock;

use crate::gitlab::error::GitlabError;

const AUDIENCE: &str = "gitlab-ai-gateway";
/// GitLab's gateway caches the merged key set this long.
const JWKS_TTL: Duration = Duration::from_secs(86_400);
/// An unknown `kid` triggers a refetch, but not more often than this.
const REFETCH_GAP: Duration = Duration::from_secs(1);

#[derive(Debug, Deserialize, Default, Clone)]
pub(crate) struct Claims {
    #[serde(default)]
    pub sub: String,
    #[serde(default)]
    pub iss: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub gitlab_realm: String,
    #[serde(default)]
    pub gitlab_instance_id: String,
}

/// Who a request is, once verified.
#[derive(Debug, Clone)]
pub(crate) enum Principal {
    Token(Claims),
    /// Auth bypassed for local testing: every scope.
    Bypass,
}

impl Principal {
    pub(crate) fn allows(&self, scope: &str) -> bool {
        match self {
            Principal::Bypass => true,
            Principal::Token(c) => c.scopes.iter().any(|s| s == scope),
        }
    }
}

pub(crate) struct Verifier {
    gitlab_url: Option<String>,
    http: reqwest::Client,
    keys: RwLock<Option<(Instant, JwkSet)>>,
}

impl Verifier {
    pub(crate) fn new(gitlab_url: Option<String>) -> Verifier {
        Verifier {
            gitlab_url: gitlab_url.map(|u| u.trim_end_matches('/').to_string()),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            keys: RwLock::new(None),
        }
    }

    async fn fetch(&self, base: &str) -> Result<JwkSet, GitlabError> {
        let unavailable = |why: String| {
            GitlabError::unauthorized(format!("cannot load GitLab's signing keys: {why}"))
        };
        let discovery: serde_json::Value = self
            .http
            .get(format!("{base}/.well-known/openid-configuration"))
            .send()
            .await
            .map_err(|e| unavailable(e.to_string()))?
            .json()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let jwks_uri = discovery["jwks_uri"]
            .as_str()
            .ok_or_else(|| unavailable("no jwks_uri in the discovery document".into()))?;
        self.http
            .get(jwks_uri)
            .send()
            .await
            .map_err(|e| unavailable(e.to_string()))?
            .json()
            .await
            .map_err(|e| unavailable(e.to_string()))
    }

    /// The key for `kid`: from the cache, or after one refetch when the cache is stale or the
    /// kid is new (GitLab rotated its keys).
    async fn key(&self, kid: &str) -> Result<DecodingKey, GitlabError> {
        let base = self.gitlab_url.clone().ok_or_else(|| {
            GitlabError::unauthorized("Hearth has no GitLab URL to verify tokens with: set HEARTH_GITLAB_URL (or AIGW_GITLAB_URL)")
        })?;
        let cached = self.keys.read().await.clone();
        let fresh_enough = |at: Instant, gap: Duration| at.elapsed() < gap;
        if let Some((at, set)) = &cached
            && fresh_enough(*at, JWKS_TTL)
            && let Some(jwk) = set.find(kid)
        {
            return DecodingKey::from_jwk(jwk).map_err(|_| GitlabError::forbidden_by_provider());
        }
        if let Some((at, _)) = &cached
            && fresh_enough(*at, REFETCH_GAP)
        {
            return Err(GitlabError::forbidden_by_provider());
        }
        let set = self.fetch(&base).await?;
        let found = set.find(kid).map(DecodingKey::from_jwk);
        *self.keys.write().await = Some((Instant::now(), set));
        match found {
            Some(Ok(k)) => Ok(k),
            _ => Err(GitlabError::forbidden_by_provider()),
        }
    }

    /// Verifies a request's token and headers.
    pub(crate) async fn verify(&self, headers: &HeaderMap) -> Result<Claims, GitlabError> {
        // A header sent twice is never trusted: both copies would have to be checked.
        let header = |name: &str| {
            let mut values = headers.get_all(name).iter();
            match (values.next(), values.next()) {
                (Some(v), None) => v.to_str().unwrap_or("\u{0}"),
                (None, _) => "",
                (Some(_), Some(_)) => "\u{0}",
            }
        };
        let auth = header("authorization");
        if auth.is_empty() {
            return Err(GitlabError::unauthorized(
                "No authorization header presented",
            ));
        }
        let token = match auth.split_once(' ') {
            Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") => t.trim(),
            _ => return Err(GitlabError::unauthorized("Invalid authorization header")),
        };
        if header("x-gitlab-authentication-type") != "oidc" {
            return Err(GitlabError::unauthorized(
                "Invalid authentication token type - only OIDC is supported",
            ));
        }
        // `alg: none` and every algorithm but RS256 stop here.
        let head = decode_header(token).map_err(|_| GitlabError::forbidden_by_provider())?;
        if head.alg != Algorithm::RS256 {
            return Err(GitlabError::forbidden_by_provider());
        }
        let key = self.key(head.kid.as_deref().unwrap_or_default()).await?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&[AUDIENCE]);
        validation.validate_nbf = true;
        validation.leeway = 0;
        let claims = decode::<Claims>(token, &key, &validation)
            .map_err(|_| GitlabError::forbidden_by_provider())?
            .claims;
        let mismatch = |h: &str| GitlabError::unauthorized(format!("Header mismatch '{h}'"));
        if !claims.gitlab_realm.is_empty() && header("x-gitlab-realm") != claims.gitlab_realm {
            return Err(mismatch("X-Gitlab-Realm"));
        }
        let instance = header("x-gitlab-instance-id");
        if !claims.gitlab_instance_id.is_empty() && instance != claims.gitlab_instance_id {
            return Err(mismatch("X-Gitlab-Instance-Id"));
        }
        if claims.iss != AUDIENCE
            && !claims.sub.is_empty()
            && claims.gitlab_instance_id.is_empty()
            && instance != claims.sub
        {
            return Err(mismatch("X-Gitlab-Instance-Id"));
        }
        Ok(claims)
    }
}
