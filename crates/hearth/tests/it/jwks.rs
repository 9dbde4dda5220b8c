//! How Hearth fetches GitLab's signing keys under pressure: forged tokens with unknown `kid`s
//! in bursts, a slow GitLab, a GitLab that is down. The stand-in instance counts every
//! discovery request, which is where each key fetch starts.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use hearth_testkit::{FakeGitlab, GITLAB_KEY, INSTANCE_ID, OTHER_KEY, mint};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Hearth, Options};

const SCOPES: &[&str] = &["complete_code"];

async fn setup() -> (Hearth, FakeGitlab) {
    let gl = FakeGitlab::start().await;
    let h = Hearth::start_with(Options {
        env: vec![("HEARTH_GITLAB_URL", gl.url())],
        ..Default::default()
    });
    (h, gl)
}

/// Sends `token` to a GitLab route with the headers GitLab adds. The body is not a valid
/// request, so a token that passes gets a 422 from the body check that follows the token check,
/// and no model is needed.
async fn auth(h: &Hearth, token: &str) -> (StatusCode, Value) {
    let resp = h
        .http()
        .post(h.url("/v2/code/completions"))
        .bearer_auth(token)
        .header("x-gitlab-authentication-type", "oidc")
        .header("x-gitlab-realm", "self-managed")
        .header("x-gitlab-instance-id", INSTANCE_ID)
        .json(&json!({"not": "a completion request"}))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn valid(gl: &FakeGitlab) -> String {
    mint(&gl.claims(SCOPES), "k1", GITLAB_KEY)
}

/// A token signed with a key GitLab never published, under a `kid` it never used.
fn forged(gl: &FakeGitlab, n: usize) -> String {
    mint(&gl.claims(SCOPES), &format!("forged-{n}"), OTHER_KEY)
}

fn passed(got: &(StatusCode, Value)) -> bool {
    got.0 == StatusCode::UNPROCESSABLE_ENTITY
}

/// Sends `n` forged tokens at once; returns the answers.
async fn burst(h: &Hearth, gl: &FakeGitlab, n: usize) -> Vec<(StatusCode, Value)> {
    let tokens: Vec<String> = (0..n).map(|i| forged(gl, i)).collect();
    join_all(tokens.iter().map(|t| auth(h, t))).await
}

#[tokio::test]
async fn a_burst_of_unknown_kids_causes_one_fetch() {
    let (h, gl) = setup().await;
    let got = auth(&h, &valid(&gl)).await;
    assert!(passed(&got), "{got:?}");
    assert_eq!(gl.discovery_fetches(), 1);
    // Past the refetch gap, so every forged token is entitled to ask for a refetch; a slow
    // answer keeps the one fetch in flight while the rest of the burst arrives.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    gl.set_delay(Duration::from_millis(500));
    for got in burst(&h, &gl, 60).await {
        assert_eq!(
            got,
            (
                StatusCode::UNAUTHORIZED,
                json!({"error": "Forbidden by auth provider"})
            )
        );
    }
    assert_eq!(gl.discovery_fetches(), 2, "one refetch for the whole burst");
    assert_eq!(gl.jwks_fetches(), 2);
    gl.set_delay(Duration::ZERO);
    assert!(
        passed(&auth(&h, &valid(&gl)).await),
        "real tokens still pass"
    );
}

#[tokio::test]
async fn a_burst_while_gitlab_is_slow_returns_promptly_and_fetches_once() {
    let (h, gl) = setup().await;
    gl.set_delay(Duration::from_secs(60));
    // Signed before the clock starts: RSA signing in a debug build is slow on a busy machine.
    let tokens: Vec<String> = (0..30).map(|i| forged(&gl, i)).collect();
    let started = Instant::now();
    let answers = join_all(tokens.iter().map(|t| auth(&h, t))).await;
    let took = started.elapsed();
    for (status, body) in &answers {
        assert_eq!(*status, StatusCode::UNAUTHORIZED, "{body}");
        let error = body["error"].as_str().unwrap();
        assert!(
            error.starts_with("cannot load GitLab's signing keys: "),
            "{error}"
        );
    }
    // The fetch gives up after 3 s and everyone waited for that same fetch: far from the
    // 60 s GitLab takes, and from 30 requests each waiting out a timeout of their own.
    assert!(took < Duration::from_secs(10), "the burst took {took:?}");
    assert_eq!(gl.discovery_fetches(), 1, "one fetch for the whole burst");

    // The failure is remembered: the next requests are answered without asking GitLab again,
    // and without waiting for it, even a real token (there are no keys to check it with).
    let started = Instant::now();
    let (status, body) = auth(&h, &valid(&gl)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(started.elapsed() < Duration::from_secs(2));
    burst(&h, &gl, 10).await;
    assert_eq!(gl.discovery_fetches(), 1, "no refetch while backing off");
}

#[tokio::test]
async fn stale_keys_still_verify_while_gitlab_is_down() {
    let (h, gl) = setup().await;
    assert!(passed(&auth(&h, &valid(&gl)).await));
    gl.set_down(true);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // An unknown kid makes Hearth try GitLab, which fails...
    let (status, body) = auth(&h, &forged(&gl, 0)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(gl.discovery_fetches(), 2);
    // ...but the keys it had still verify GitLab's tokens,
    let got = auth(&h, &valid(&gl)).await;
    assert!(passed(&got), "{got:?}");
    // and the failure is not retried by every request that follows.
    burst(&h, &gl, 20).await;
    assert_eq!(gl.discovery_fetches(), 2, "no refetch while backing off");
    gl.set_down(false);
    burst(&h, &gl, 5).await;
    assert_eq!(
        gl.discovery_fetches(),
        2,
        "the backoff holds even once GitLab is back"
    );
    assert!(passed(&auth(&h, &valid(&gl)).await));
}
