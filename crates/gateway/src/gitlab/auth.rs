//! GitLab's authentication of AI-gateway requests: an RS256 JWT whose signing keys come from
//! the GitLab instance's OIDC discovery document, plus the headers GitLab sends alongside.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::gitlab::error::GitlabError;

const AUDIENCE: &str = "gitlab-ai-gateway";
/// GitLab's gateway caches the merged key set this long.
const JWKS_TTL: Duration = Duration::from_secs(86_400);
/// After a successful fetch an unknown `kid` triggers a refetch, but not more often than this:
/// short enough that a token signed with a freshly rotated key waits at most this long.
const REFETCH_GAP: Duration = Duration::from_secs(1);
/// After a failed fetch nothing is fetched for this long; requests that need GitLab meanwhile
/// get the failure at once (or the stale keys), so an outage is not hammered by every request.
const FAILURE_BACKOFF: Duration = Duration::from_secs(10);
/// Discovery document and key set together. Every request waiting for the fetch waits at most
/// this long; a healthy GitLab answers both in milliseconds.
const FETCH_DEADLINE: Duration = Duration::from_secs(3);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Per response; GitLab's discovery document and key set are a few KB each.
const MAX_BODY: usize = 256 * 1024;

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

/// What the verifier knows about GitLab's keys. Only ever locked for a few instructions,
/// never across an await.
#[derive(Default)]
struct KeyCache {
    /// The last key set fetched, and when. Kept past its TTL: stale keys beat no keys while
    /// GitLab cannot be reached.
    keys: Option<(Instant, Keys)>,
    /// No fetch starts before this (the refetch gap, or the backoff after a failure).
    next_fetch: Option<Instant>,
    /// Why the last fetch failed; `None` after a success.
    last_error: Option<String>,
    /// Counts finished fetches, so a request that queued behind one knows it happened.
    generation: u64,
}

enum Decision {
    Use(Arc<DecodingKey>),
    Refuse(GitlabError),
    Fetch,
}

/// A fetched key set by `kid`, each key made ready to verify with once, when it arrives,
/// rather than per request (`None`: a key jsonwebtoken cannot use). Keys without a `kid`
/// are left out: no token could name them.
struct Keys(Vec<(String, Option<Arc<DecodingKey>>)>);

impl Keys {
    fn of(set: &JwkSet) -> Keys {
        Keys(
            set.keys
                .iter()
                .filter_map(|jwk| {
                    let kid = jwk.common.key_id.clone()?;
                    Some((kid, DecodingKey::from_jwk(jwk).ok().map(Arc::new)))
                })
                .collect(),
        )
    }

    fn find(&self, kid: &str) -> Option<&Option<Arc<DecodingKey>>> {
        self.0.iter().find(|(k, _)| k == kid).map(|(_, key)| key)
    }
}

impl KeyCache {
    /// What to do for `kid` at `now`; with `may_fetch` false the answer is never `Fetch`.
    fn decide(&self, kid: &str, now: Instant, may_fetch: bool) -> Decision {
        let may_fetch = may_fetch && self.next_fetch.is_none_or(|t| now >= t);
        let found = self.keys.as_ref().and_then(|(at, keys)| {
            keys.find(kid)
                .map(|key| (now.saturating_duration_since(*at) < JWKS_TTL, key))
        });
        match found {
            Some((fresh, key)) if fresh || !may_fetch => match key {
                Some(key) => Decision::Use(key.clone()),
                None => Decision::Refuse(GitlabError::forbidden_by_provider()),
            },
            _ if may_fetch => Decision::Fetch,
            _ => Decision::Refuse(match (&self.keys, &self.last_error) {
                (None, Some(why)) => unavailable(why),
                _ => GitlabError::forbidden_by_provider(),
            }),
        }
    }

    fn record(&mut self, result: Result<JwkSet, String>, now: Instant) {
        self.generation += 1;
        match result {
            Ok(set) => {
                self.keys = Some((now, Keys::of(&set)));
                self.last_error = None;
                self.next_fetch = Some(now + REFETCH_GAP);
            }
            Err(why) => {
                tracing::warn!(error = %why, "cannot load GitLab's signing keys; retrying in {}s", FAILURE_BACKOFF.as_secs());
                self.last_error = Some(why);
                self.next_fetch = Some(now + FAILURE_BACKOFF);
            }
        }
    }
}

fn unavailable(why: &str) -> GitlabError {
    GitlabError::unauthorized(format!("cannot load GitLab's signing keys: {why}"))
}

pub(crate) struct Verifier {
    gitlab_url: Option<String>,
    http: reqwest::Client,
    cache: Arc<Mutex<KeyCache>>,
    /// Held for the whole of a fetch: concurrent requests queue here and then read what the
    /// one fetch brought, instead of each asking GitLab.
    in_flight: Arc<tokio::sync::Mutex<()>>,
}

impl Verifier {
    pub(crate) fn new(gitlab_url: Option<String>) -> Verifier {
        crate::gitlab::rs256::install();
        Verifier {
            gitlab_url: gitlab_url.map(|u| u.trim_end_matches('/').to_string()),
            http: reqwest::Client::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .timeout(FETCH_DEADLINE)
                .build()
                .unwrap_or_default(),
            cache: Arc::default(),
            in_flight: Arc::default(),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, KeyCache> {
        // The lock is never held across anything that can panic; a poisoned one is still sound.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The key for `kid`: from the cache, or after a refetch when the cache is past its TTL or
    /// the kid is new (GitLab rotated its keys). At most one fetch runs at a time.
    async fn key(&self, kid: &str) -> Result<Arc<DecodingKey>, GitlabError> {
        let base = self.gitlab_url.clone().ok_or_else(|| {
            GitlabError::unauthorized("Hearth has no GitLab URL to verify tokens with: set HEARTH_GITLAB_URL (or AIGW_GITLAB_URL)")
        })?;
        let seen = {
            let cache = self.cache();
            match cache.decide(kid, Instant::now(), true) {
                Decision::Use(key) => return Ok(key),
                Decision::Refuse(e) => return Err(e),
                Decision::Fetch => cache.generation,
            }
        };
        let guard = self.in_flight.clone().lock_owned().await;
        if self.cache().generation == seen {
            let (http, cache) = (self.http.clone(), self.cache.clone());
            // A task of its own, holding the guard: a client that hangs up does not cancel the
            // fetch that others are queued behind.
            let fetch = tokio::spawn(async move {
                let result = tokio::time::timeout(FETCH_DEADLINE, fetch(&http, &base))
                    .await
                    .unwrap_or_else(|_| {
                        Err(format!(
                            "GitLab did not answer within {} s",
                            FETCH_DEADLINE.as_secs()
                        ))
                    });
                cache
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .record(result, Instant::now());
                drop(guard);
            });
            // A panicked fetch recorded nothing; the decision below then refuses.
            let _ = fetch.await;
        } else {
            drop(guard);
        }
        match self.cache().decide(kid, Instant::now(), false) {
            Decision::Use(key) => Ok(key),
            Decision::Refuse(e) => Err(e),
            Decision::Fetch => Err(GitlabError::forbidden_by_provider()),
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

/// What `hearth verify` learns about the GitLab instance, fetched afresh (not from the cache,
/// which may hold keys from before an outage).
pub(crate) struct Probe {
    pub discovery_url: String,
    /// The key set's URL, or why the discovery document could not be read.
    pub discovery: Result<String, String>,
    /// How many keys the set holds; `None` when discovery failed first.
    pub keys: Option<Result<usize, String>>,
    /// GitLab's clock minus ours, from the `Date` header, in seconds.
    pub clock_skew_secs: Option<i64>,
}

impl Verifier {
    pub(crate) fn gitlab_url(&self) -> Option<&str> {
        self.gitlab_url.as_deref()
    }

    /// Discovery, then the key set, each within the fetch deadline; `None` without a GitLab URL.
    pub(crate) async fn probe(&self) -> Option<Probe> {
        #[derive(Deserialize)]
        struct Discovery {
            jwks_uri: String,
        }
        let base = self.gitlab_url.clone()?;
        let discovery_url = format!("{base}/.well-known/openid-configuration");
        let within = |what: &str| {
            format!(
                "{what} did not answer within {} s",
                FETCH_DEADLINE.as_secs()
            )
        };
        let (discovery, date) = match tokio::time::timeout(
            FETCH_DEADLINE,
            get_json_dated::<Discovery>(&self.http, &discovery_url),
        )
        .await
        {
            Err(_) => (Err(within(&discovery_url)), None),
            Ok(Err(e)) => (Err(e), None),
            Ok(Ok((d, date))) => (Ok(d.jwks_uri), date),
        };
        let keys = match &discovery {
            Err(_) => None,
            Ok(uri) => Some(
                match tokio::time::timeout(FETCH_DEADLINE, get_json::<JwkSet>(&self.http, uri))
                    .await
                {
                    Err(_) => Err(within(uri)),
                    Ok(Err(e)) => Err(e),
                    Ok(Ok(set)) if set.keys.is_empty() => Err(format!("{uri} holds no keys")),
                    Ok(Ok(set)) => Ok(set.keys.len()),
                },
            ),
        };
        let clock_skew_secs = date.map(|theirs| {
            let now = std::time::SystemTime::now();
            match theirs.duration_since(now) {
                Ok(ahead) => ahead.as_secs() as i64,
                Err(behind) => -(behind.duration().as_secs() as i64),
            }
        });
        Some(Probe {
            discovery_url,
            discovery,
            keys,
            clock_skew_secs,
        })
    }
}

/// The discovery document, then the key set it points to.
async fn fetch(http: &reqwest::Client, base: &str) -> Result<JwkSet, String> {
    #[derive(Deserialize)]
    struct Discovery {
        jwks_uri: String,
    }
    let discovery: Discovery =
        get_json(http, &format!("{base}/.well-known/openid-configuration")).await?;
    get_json(http, &discovery.jwks_uri).await
}

/// reqwest's error with its innermost cause (`Connection refused`, the certificate error),
/// which its own text leaves out.
fn with_cause(e: &reqwest::Error) -> String {
    let mut inner: &dyn std::error::Error = e;
    while let Some(next) = inner.source() {
        inner = next;
    }
    let cause = inner.to_string();
    if cause == e.to_string() {
        cause
    } else {
        format!("{e}: {cause}")
    }
}

/// A JSON document from GitLab, refused when bigger than `MAX_BODY`.
async fn get_json<T: DeserializeOwned>(http: &reqwest::Client, url: &str) -> Result<T, String> {
    get_json_dated(http, url).await.map(|(t, _)| t)
}

/// [`get_json`], with the answer's `Date` header: tokens are checked with no leeway, so a
/// GitLab clock ahead of Hearth's makes fresh tokens "not yet valid".
async fn get_json_dated<T: DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
) -> Result<(T, Option<std::time::SystemTime>), String> {
    let too_big = || format!("{url} sent more than {MAX_BODY} bytes");
    let mut resp = http.get(url).send().await.map_err(|e| with_cause(&e))?;
    if !resp.status().is_success() {
        return Err(format!("{url} answered {}", resp.status()));
    }
    let date = resp
        .headers()
        .get(reqwest::header::DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok());
    if resp.content_length().is_some_and(|n| n > MAX_BODY as u64) {
        return Err(too_big());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(too_big());
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body)
        .map(|t| (t, date))
        .map_err(|e| format!("{url}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use base64::Engine;
    use proptest::prelude::*;

    const N: &str = include_str!("../../../testkit/fixtures/gitlab-test-key.n");

    fn set(kids: &[&str]) -> JwkSet {
        let keys: Vec<serde_json::Value> = kids
            .iter()
            .map(|kid| serde_json::json!({"kty": "RSA", "kid": kid, "alg": "RS256", "n": N.trim(), "e": "AQAB"}))
            .collect();
        serde_json::from_value(serde_json::json!({ "keys": keys })).unwrap()
    }

    fn used(d: Decision) -> bool {
        matches!(d, Decision::Use(_))
    }

    fn refusal(d: Decision) -> String {
        match d {
            Decision::Refuse(e) => e.message,
            Decision::Use(_) => "used a key".into(),
            Decision::Fetch => "fetched".into(),
        }
    }

    #[test]
    fn known_kids_are_served_from_the_cache_and_unknown_ones_wait_for_the_gap() {
        let t0 = Instant::now();
        let mut c = KeyCache::default();
        c.record(Ok(set(&["k1"])), t0);
        assert!(used(c.decide("k1", t0, true)));
        assert_eq!(
            refusal(c.decide("k2", t0 + REFETCH_GAP / 2, true)),
            "Forbidden by auth provider"
        );
        assert!(matches!(
            c.decide("k2", t0 + REFETCH_GAP, true),
            Decision::Fetch
        ));
        assert!(!matches!(
            c.decide("k2", t0 + REFETCH_GAP, false),
            Decision::Fetch
        ));
    }

    #[test]
    fn keys_past_their_ttl_are_refetched_but_still_used_when_gitlab_is_down() {
        let t0 = Instant::now();
        let mut c = KeyCache::default();
        c.record(Ok(set(&["k1"])), t0);
        let later = t0 + JWKS_TTL + Duration::from_secs(1);
        assert!(matches!(c.decide("k1", later, true), Decision::Fetch));
        c.record(Err("connection refused".into()), later);
        assert!(used(c.decide("k1", later, false)), "stale beats nothing");
        assert!(used(c.decide("k1", later + FAILURE_BACKOFF / 2, true)));
        assert!(matches!(
            c.decide("k1", later + FAILURE_BACKOFF, true),
            Decision::Fetch
        ));
        c.record(Ok(set(&["k2"])), later + FAILURE_BACKOFF);
        assert!(
            !used(c.decide("k1", later + FAILURE_BACKOFF, false)),
            "a key GitLab dropped is gone once GitLab answers"
        );
    }

    #[test]
    fn keys_are_made_ready_once_and_an_unusable_one_is_refused() {
        let t0 = Instant::now();
        let mut set = set(&["k1"]);
        let broken =
            serde_json::json!({"kty": "RSA", "kid": "bad", "n": "not base64!", "e": "AQAB"});
        set.keys.push(serde_json::from_value(broken).unwrap());
        let mut c = KeyCache::default();
        c.record(Ok(set), t0);
        let (Decision::Use(a), Decision::Use(b)) =
            (c.decide("k1", t0, true), c.decide("k1", t0, true))
        else {
            panic!("k1 is a usable key");
        };
        assert!(
            Arc::ptr_eq(&a, &b),
            "the same key, not one built per request"
        );
        assert_eq!(
            refusal(c.decide("bad", t0, true)),
            "Forbidden by auth provider"
        );
    }

    #[test]
    fn without_keys_a_failure_is_remembered_for_the_backoff() {
        let t0 = Instant::now();
        let mut c = KeyCache::default();
        assert!(matches!(c.decide("k1", t0, true), Decision::Fetch));
        c.record(Err("timed out".into()), t0);
        let why = refusal(c.decide("k1", t0 + FAILURE_BACKOFF / 2, true));
        assert_eq!(why, "cannot load GitLab's signing keys: timed out");
        assert!(matches!(
            c.decide("k1", t0 + FAILURE_BACKOFF, true),
            Decision::Fetch
        ));
    }

    /// One runtime and one verifier for every case: building them is most of a case's time.
    static OFFLINE: std::sync::LazyLock<(tokio::runtime::Runtime, Verifier)> =
        std::sync::LazyLock::new(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            (rt, offline_verifier())
        });

    /// A verifier that knows `k1` and never fetches: every token is judged on its own.
    fn offline_verifier() -> Verifier {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let v = Verifier::new(Some("http://127.0.0.1:9".into()));
        {
            let mut c = v.cache();
            c.record(Ok(set(&["k1"])), Instant::now());
            c.next_fetch = Some(Instant::now() + JWKS_TTL);
        }
        v
    }

    fn headers(authorization: HeaderValue) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("authorization", authorization);
        h.insert(
            "x-gitlab-authentication-type",
            HeaderValue::from_static("oidc"),
        );
        h
    }

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_authorization_header_is_refused_without_a_panic(raw in proptest::collection::vec(any::<u8>(), 0..300)) {
            let (rt, v) = &*OFFLINE;
            if let Ok(value) = HeaderValue::from_bytes(&raw) {
                prop_assert!(rt.block_on(v.verify(&headers(value))).is_err());
            }
            let mut bearer = b"Bearer ".to_vec();
            bearer.extend_from_slice(&raw);
            if let Ok(value) = HeaderValue::from_bytes(&bearer) {
                prop_assert!(rt.block_on(v.verify(&headers(value))).is_err());
            }
        }

        #[test]
        fn any_token_under_a_known_kid_is_refused_without_a_panic(
            header in "[ -~]{0,200}",
            alg in prop_oneof![Just("RS256".to_string()), Just("none".to_string()), Just("HS256".to_string()), "[A-Za-z0-9]{0,8}"],
            payload in proptest::collection::vec(any::<u8>(), 0..300),
            signature in proptest::collection::vec(any::<u8>(), 0..300),
            extra_dots in 0usize..3,
        ) {
            let (rt, v) = &*OFFLINE;
            let well_formed = format!(r#"{{"alg":"{alg}","kid":"k1","typ":"JWT"}}"#);
            for head in [header.as_bytes(), well_formed.as_bytes()] {
                let token = format!("{}.{}.{}{}", b64(head), b64(&payload), b64(&signature), ".".repeat(extra_dots));
                let value = HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
                prop_assert!(rt.block_on(v.verify(&headers(value))).is_err());
            }
        }
    }
}
