//! A GitLab instance as far as token checks go: `/.well-known/openid-configuration` and the
//! JWKS it points to, with keys that can rotate, and a minter for tokens signed with them.
//! It counts what it is asked for and can be made slow or unavailable.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use serde_json::{Value, json};

pub const GITLAB_KEY: &str = include_str!("../fixtures/gitlab-test-key.pem");
pub const OTHER_KEY: &str = include_str!("../fixtures/other-test-key.pem");
const GITLAB_N: &str = include_str!("../fixtures/gitlab-test-key.n");
const OTHER_N: &str = include_str!("../fixtures/other-test-key.n");
pub const INSTANCE_ID: &str = "7f3a9c2e-1b2c-4d5e-8f90-a1b2c3d4e5f6";

#[derive(Default)]
struct Shared {
    /// (kid, modulus) pairs the JWKS serves.
    keys: Mutex<Vec<(String, &'static str)>>,
    jwks_fetches: AtomicUsize,
    discovery_fetches: AtomicUsize,
    url: Mutex<String>,
    /// Every answer waits this long first.
    delay: Mutex<Duration>,
    /// Answer 503 to everything.
    down: AtomicBool,
}

pub struct FakeGitlab {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    _server: tokio::task::JoinHandle<()>,
}

impl FakeGitlab {
    /// Serves the GitLab key as kid `k1`.
    pub async fn start() -> FakeGitlab {
        FakeGitlab::start_on("127.0.0.1:0").await
    }

    /// As [`FakeGitlab::start`], on `addr`.
    pub async fn start_on(addr: &str) -> FakeGitlab {
        let shared = Arc::new(Shared::default());
        shared
            .keys
            .lock()
            .unwrap()
            .push(("k1".into(), GITLAB_N.trim()));
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/oauth/discovery/keys", get(jwks))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        *shared.url.lock().unwrap() = format!("http://{addr}");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeGitlab {
            addr,
            shared,
            _server: server,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Publishes the other key as `kid` too (GitLab rotated its keys).
    pub fn rotate_in(&self, kid: &str) {
        self.shared
            .keys
            .lock()
            .unwrap()
            .push((kid.into(), OTHER_N.trim()));
    }

    pub fn jwks_fetches(&self) -> usize {
        self.shared.jwks_fetches.load(Ordering::SeqCst)
    }

    /// Requests for the discovery document, answered or not: one per key fetch a verifier starts.
    pub fn discovery_fetches(&self) -> usize {
        self.shared.discovery_fetches.load(Ordering::SeqCst)
    }

    /// Makes every later answer wait `delay` (zero: answer at once).
    pub fn set_delay(&self, delay: Duration) {
        *self.shared.delay.lock().unwrap() = delay;
    }

    /// While down, every request is answered 503 (and still counted).
    pub fn set_down(&self, down: bool) {
        self.shared.down.store(down, Ordering::SeqCst);
    }

    /// Claims GitLab puts in a self-managed instance's token, valid for an hour.
    pub fn claims(&self, scopes: &[&str]) -> Value {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        json!({
            "iss": self.url(), "sub": INSTANCE_ID, "aud": ["gitlab-ai-gateway"],
            "iat": now, "nbf": now - 5, "exp": now + 3600,
            "gitlab_realm": "self-managed", "gitlab_instance_id": INSTANCE_ID, "scopes": scopes,
        })
    }
}

/// Signs `claims` with RS256 and `key` (PKCS #8 PEM), under `kid`. The token is put together
/// here by hand, not by the jsonwebtoken that Hearth reads it with, so a fault in that reading
/// is not matched by the same fault in the writing.
pub fn mint(claims: &Value, kid: &str, key: &str) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    let der: String = key.lines().filter(|l| !l.starts_with("-----")).collect();
    let pair = RsaKeyPair::from_pkcs8(&STANDARD.decode(der).unwrap()).unwrap();
    let header = json!({"typ": "JWT", "alg": "RS256", "kid": kid});
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap()),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap())
    );
    let mut signature = vec![0; pair.public().modulus_len()];
    pair.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        message.as_bytes(),
        &mut signature,
    )
    .unwrap();
    format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// Waits the configured delay; `Err` with a 503 while the instance is down.
async fn gate(s: &Shared) -> Result<(), Response> {
    let delay = *s.delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if s.down.load(Ordering::SeqCst) {
        return Err((StatusCode::SERVICE_UNAVAILABLE, "GitLab is down").into_response());
    }
    Ok(())
}

async fn discovery(State(s): State<Arc<Shared>>) -> Response {
    s.discovery_fetches.fetch_add(1, Ordering::SeqCst);
    if let Err(r) = gate(&s).await {
        return r;
    }
    let url = s.url.lock().unwrap().clone();
    axum::Json(json!({"issuer": url, "jwks_uri": format!("{url}/oauth/discovery/keys")}))
        .into_response()
}

async fn jwks(State(s): State<Arc<Shared>>) -> Response {
    s.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    if let Err(r) = gate(&s).await {
        return r;
    }
    let keys: Vec<Value> = s
        .keys
        .lock()
        .unwrap()
        .iter()
        .map(|(kid, n)| json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": n, "e": "AQAB"}))
        .collect();
    axum::Json(json!({"keys": keys})).into_response()
}
