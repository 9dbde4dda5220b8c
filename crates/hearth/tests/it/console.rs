//! The web console under `/admin`: its security over plain HTTP (sessions, CSRF, cookie
//! flags, no secret in any page), and the administrator's work in a real headless Chromium,
//! each browser test saving screenshots under `target/console-screenshots/`.
//!
//! Without Chromium the browser tests say so and pass — except in CI, where a missing
//! browser fails them (`.ci/run` installs Debian's `chromium`).

mod cdp;

use std::time::{Duration, Instant};

use hearth_testkit::FakeUpstream;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use serde_json::json;

use crate::harness::{ADMIN_TOKEN, Hearth, MARKER, api_key};
use cdp::Browser;

/// A console client that keeps its session cookie by hand and follows no redirect, so every
/// answer's status and `Location` can be checked.
struct Console {
    http: reqwest::Client,
    base: String,
    cookie: String,
    csrf: String,
}

struct Answer {
    status: StatusCode,
    location: String,
    set_cookies: Vec<String>,
    body: String,
}

async fn answer(resp: reqwest::Response) -> Answer {
    let status = resp.status();
    let location = resp
        .headers()
        .get(LOCATION)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let set_cookies = resp
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    Answer {
        status,
        location,
        set_cookies,
        body: resp.text().await.unwrap(),
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A form body, as a browser encodes it.
fn encode(form: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish()
}

/// `name=value` from a `Set-Cookie` line.
fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_string()
}

/// The value of the first `name="csrf"` field in a page.
fn csrf_in(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    page[at..].split('"').next().unwrap().to_string()
}

impl Console {
    fn anonymous(h: &Hearth) -> Console {
        Console {
            http: http(),
            base: h.url(""),
            cookie: String::new(),
            csrf: String::new(),
        }
    }

    async fn sign_in(h: &Hearth) -> (Console, Answer) {
        let mut c = Console::anonymous(h);
        let form = c.get("/admin/sign-in").await;
        let pre = cookie_pair(&form.set_cookies[0]);
        let csrf = csrf_in(&form.body);
        c.cookie = pre;
        let signed = c
            .post_raw("/admin/sign-in", &[("csrf", &csrf), ("token", ADMIN_TOKEN)])
            .await;
        assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.body);
        assert_eq!(signed.location, "/admin/models");
        let session = signed
            .set_cookies
            .iter()
            .find(|c| c.starts_with("hearth_console="))
            .unwrap();
        c.cookie = cookie_pair(session);
        let page = c.get("/admin/models").await;
        assert_eq!(page.status, StatusCode::OK);
        c.csrf = csrf_in(&page.body);
        (c, signed)
    }

    async fn get(&self, path: &str) -> Answer {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if !self.cookie.is_empty() {
            req = req.header(COOKIE, &self.cookie);
        }
        answer(req.send().await.unwrap()).await
    }

    async fn post_raw(&self, path: &str, form: &[(&str, &str)]) -> Answer {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(encode(form));
        if !self.cookie.is_empty() {
            req = req.header(COOKIE, &self.cookie);
        }
        answer(req.send().await.unwrap()).await
    }

    /// A form post with this session's CSRF token.
    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Answer {
        let mut all = vec![("csrf", self.csrf.as_str())];
        all.extend_from_slice(form);
        self.post_raw(path, &all).await
    }
}

/// Every signed-in route: (method, path).
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/admin"),
    ("GET", "/admin/models"),
    ("GET", "/admin/models/new"),
    ("POST", "/admin/models"),
    ("GET", "/admin/models/1/edit"),
    ("POST", "/admin/models/1"),
    ("POST", "/admin/models/1/delete"),
    ("POST", "/admin/models/1/check"),
    ("GET", "/admin/features"),
    ("POST", "/admin/features/code_completions"),
    ("GET", "/admin/settings"),
    ("POST", "/admin/settings"),
    ("GET", "/admin/catalog"),
    ("POST", "/admin/catalog"),
    ("GET", "/admin/keys"),
    ("POST", "/admin/keys"),
    ("POST", "/admin/keys/1/revoke"),
    ("POST", "/admin/sign-out"),
];

#[tokio::test]
async fn every_console_route_without_a_session_redirects_to_sign_in() {
    let h = Hearth::start();
    let id = h
        .create(
            json!({"name": "d", "family": "codestral", "endpoint": "http://127.0.0.1:9/v1",
            "identifier": "custom_openai/Codestral-22B-v0.1"}),
        )
        .await;
    assert_eq!(id, 1);
    let root = Console::anonymous(&h).get("/").await;
    assert_eq!(
        (root.status, root.location.as_str()),
        (StatusCode::SEE_OTHER, "/admin")
    );
    let mut forged = Console::anonymous(&h);
    forged.cookie = "hearth_console=not-a-session".into();
    for c in [Console::anonymous(&h), forged] {
        for (method, path) in ROUTES {
            let a = if *method == "GET" {
                c.get(path).await
            } else {
                c.post_raw(path, &[("csrf", "x"), ("beta_models_enabled", "1")])
                    .await
            };
            assert_eq!(a.status, StatusCode::SEE_OTHER, "{method} {path}");
            assert_eq!(a.location, "/admin/sign-in", "{method} {path}");
        }
    }
    // Nothing changed on the way.
    let (_, settings) = h.get("/api/v1/settings").await;
    assert_eq!(settings["beta_models_enabled"], false);
    // The sign-in page and the stylesheet are the only pages open to anyone.
    assert_eq!(
        Console::anonymous(&h).get("/admin/sign-in").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_form_post_without_this_sessions_csrf_token_is_refused() {
    let h = Hearth::start();
    let (c, _) = Console::sign_in(&h).await;
    for form in [
        vec![("beta_models_enabled", "1")],
        vec![("csrf", "0000"), ("beta_models_enabled", "1")],
        vec![("csrf", ""), ("beta_models_enabled", "1")],
    ] {
        let a = c.post_raw("/admin/settings", &form).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{form:?}");
        assert!(a.body.contains("expired"), "{}", a.body);
    }
    let a = c.post_raw("/admin/keys", &[("name", "sneaky")]).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let (_, settings) = h.get("/api/v1/settings").await;
    assert_eq!(settings["beta_models_enabled"], false);
    let (_, keys) = h.get("/api/v1/client_keys").await;
    assert_eq!(keys, json!([]));
    // Another session's token is no good either.
    let (other, _) = Console::sign_in(&h).await;
    assert_ne!(other.csrf, c.csrf);
    let a = c
        .post_raw(
            "/admin/settings",
            &[("csrf", &other.csrf), ("beta_models_enabled", "1")],
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    // With the right one the same post goes through.
    let a = c
        .post("/admin/settings", &[("beta_models_enabled", "1")])
        .await;
    assert_eq!(
        (a.status, a.location.as_str()),
        (StatusCode::SEE_OTHER, "/admin/settings")
    );
    let (_, settings) = h.get("/api/v1/settings").await;
    assert_eq!(settings["beta_models_enabled"], true);
    // Sign-in itself needs the token its form was given with.
    let anon = Console::anonymous(&h);
    let a = anon
        .post_raw("/admin/sign-in", &[("csrf", "abc"), ("token", ADMIN_TOKEN)])
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(
        a.set_cookies
            .iter()
            .all(|c| !c.starts_with("hearth_console="))
    );
}

#[tokio::test]
async fn the_session_cookie_is_http_only_strict_expiring_and_ends_at_sign_out() {
    let h = Hearth::start();
    let (c, signed) = Console::sign_in(&h).await;
    let session = signed
        .set_cookies
        .iter()
        .find(|c| c.starts_with("hearth_console="))
        .unwrap();
    for flag in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/admin",
        "Max-Age=28800",
    ] {
        assert!(session.contains(flag), "{flag} missing: {session}");
    }
    assert!(
        !session.contains("Secure"),
        "plain HTTP cannot carry a Secure cookie: {session}"
    );
    let out = c.post("/admin/sign-out", &[]).await;
    assert_eq!(out.location, "/admin/sign-in?signed_out=1");
    assert!(
        out.set_cookies
            .iter()
            .any(|c| c.starts_with("hearth_console=;") && c.contains("Max-Age=0"))
    );
    // The old cookie is dead on the server too, not just forgotten by the browser.
    let a = c.get("/admin/models").await;
    assert_eq!(
        (a.status, a.location.as_str()),
        (StatusCode::SEE_OTHER, "/admin/sign-in")
    );
}

#[tokio::test]
async fn over_tls_the_session_cookie_is_secure() {
    let dir = tempfile::tempdir().unwrap();
    let pair = crate::tls::pair();
    let (cert, key) = crate::tls::install(dir.path(), &pair);
    let h = crate::tls::start(&cert, &key, &[]);
    let https = crate::tls::client(&[&pair], true);
    let form = https
        .get(crate::tls::https(&h, "/admin/sign-in"))
        .send()
        .await
        .unwrap();
    let pre = form
        .headers()
        .get(SET_COOKIE)
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(pre.ends_with("; Secure"), "{pre}");
    let csrf = csrf_in(&form.text().await.unwrap());
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .tls_certs_only([reqwest::Certificate::from_pem(pair.cert_pem.as_bytes()).unwrap()])
        .build()
        .unwrap();
    let signed = no_redirects
        .post(crate::tls::https(&h, "/admin/sign-in"))
        .header(COOKIE, cookie_pair(&pre))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(encode(&[("csrf", csrf.as_str()), ("token", ADMIN_TOKEN)]))
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), StatusCode::SEE_OTHER);
    let session = signed
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("hearth_console="))
        .unwrap();
    assert!(
        session.contains("HttpOnly") && session.ends_with("; Secure"),
        "{session}"
    );
}

#[tokio::test]
async fn a_wrong_token_waits_says_so_and_never_echoes_a_token() {
    let h = Hearth::start();
    let c = Console::anonymous(&h);
    let form = c.get("/admin/sign-in").await;
    let mut with_pre = Console::anonymous(&h);
    with_pre.cookie = cookie_pair(&form.set_cookies[0]);
    let guess = "wrong-token-SECRET-MARKER-7f3a9c";
    let started = Instant::now();
    let a = with_pre
        .post_raw(
            "/admin/sign-in",
            &[("csrf", &csrf_in(&form.body)), ("token", guess)],
        )
        .await;
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.body.contains("not the admin token"), "{}", a.body);
    assert!(!a.body.contains(MARKER) && !a.body.contains(ADMIN_TOKEN));
    assert!(
        a.set_cookies
            .iter()
            .all(|c| !c.starts_with("hearth_console="))
    );
    assert!(!h.logs().contains(MARKER), "the guess reached the log");
}

#[tokio::test]
async fn no_page_carries_an_api_key_or_the_admin_token() {
    let h = Hearth::start();
    let id = h
        .create(
            json!({"name": "keyed", "family": "codestral", "endpoint": "http://127.0.0.1:9/v1",
            "identifier": "custom_openai/Codestral-22B-v0.1", "api_key": api_key(1)}),
        )
        .await;
    let (_, key) = h.post("/api/v1/client_keys", json!({"name": "ide"})).await;
    let client_key = key["key"].as_str().unwrap().to_string();
    let (c, _) = Console::sign_in(&h).await;
    let edit = format!("/admin/models/{id}/edit");
    let mut pages = Vec::new();
    for path in [
        "/admin/sign-in",
        "/admin/models",
        "/admin/models/new",
        edit.as_str(),
        "/admin/features",
        "/admin/settings",
        "/admin/catalog",
        "/admin/keys",
    ] {
        let a = c.get(path).await;
        pages.push((path.to_string(), a));
    }
    // Answers to posts too: a failed edit (the key field is never sent back) and a plan.
    let failed = c
        .post(
            &format!("/admin/models/{id}"),
            &[
                ("name", ""),
                ("family", "codestral"),
                ("identifier", "custom_openai/Codestral-22B-v0.1"),
                ("endpoint", "http://127.0.0.1:9/v1"),
                ("api_key", &api_key(2)),
            ],
        )
        .await;
    assert_eq!(failed.status, StatusCode::UNPROCESSABLE_ENTITY);
    pages.push(("failed edit".into(), failed));
    pages.push((
        "plan".into(),
        c.post("/admin/catalog", &[("model", "codestral-22b-v0.1")])
            .await,
    ));
    for (path, a) in &pages {
        assert!(
            a.status.is_success() || a.status.is_client_error() || a.status.is_redirection(),
            "{path}"
        );
        assert!(!a.body.contains(MARKER), "an API key in {path}");
        assert!(!a.body.contains(ADMIN_TOKEN), "the admin token in {path}");
        assert!(!a.body.contains(&client_key), "a client key in {path}");
    }
    let list = &pages[1].1.body;
    assert!(list.contains("keyed") && list.contains(">set<"), "{list}");
    // The catalog page shows the GitLab version that added a model, where it is known.
    let catalog = &pages[6].1.body;
    assert!(catalog.contains("GA (added 17.10)"), "{catalog}");
    assert!(!h.logs().contains(MARKER));
}

// ---- In a real browser -------------------------------------------------------------------

/// One Chromium at a time: on two cores several at once starve the timing-sensitive tests
/// that run beside them.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The browser (and the turn to use one), or `None` after saying why the test skips. In CI a
/// missing browser fails.
async fn browser() -> Option<(tokio::sync::MutexGuard<'static, ()>, Browser)> {
    match cdp::chromium() {
        Some(path) => {
            let turn = ONE_BROWSER.lock().await;
            Some((turn, Browser::launch(&path)))
        }
        None if std::env::var_os("CI").is_some() => {
            panic!("CI must run the browser tests: install Debian's chromium (.ci/run does)")
        }
        None => {
            eprintln!("skipping: no chromium (apt-get install chromium, or set HEARTH_CHROMIUM)");
            None
        }
    }
}

/// Signs in through the form, as a person would.
fn sign_in(b: &mut Browser, h: &Hearth) {
    b.goto(&h.url("/"));
    assert_eq!(
        b.url(),
        "/admin/sign-in",
        "/ leads to the console, and it to sign-in"
    );
    b.fill("token", ADMIN_TOKEN);
    b.click("form[action='/admin/sign-in'] button[type=submit]");
    assert_eq!(b.url(), "/admin/models");
    assert!(!b.html().contains(ADMIN_TOKEN));
}

#[tokio::test(flavor = "multi_thread")]
async fn browser_add_a_vllm_model_fix_its_endpoint_and_bind_features() {
    // The browser is dropped (killed) before the turn is given back.
    let Some((_turn, mut b)) = browser().await else {
        return;
    };
    let h = Hearth::start();
    let started = Instant::now();
    b.goto(&h.url("/admin/models"));
    assert_eq!(b.url(), "/admin/sign-in", "pages refuse before sign-in");
    b.screenshot("01-sign-in");
    sign_in(&mut b, &h);

    b.click("a[href='/admin/models/new']");
    assert_eq!(b.text("h1"), "Add self-hosted model");
    assert!(
        b.text("#identifier-help")
            .contains("bedrock/mistral.mixtral-8x7b-instruct-v0:1")
    );
    b.fill("name", "Codestral on gpu-1");
    b.select("family", "codestral");
    b.fill("endpoint", "http://gpu-1.internal:8000");
    b.fill("api_key", &api_key(3));
    b.fill("identifier", "custom_openai/Codestral-22B-v0.1");
    b.click("form.card button[type=submit]");
    // The registry's message, beside the endpoint field; what was typed is still there.
    let error = b.text("#endpoint-error");
    assert!(
        error.contains("/v1") && error.contains("http://gpu-1.internal:8000/v1"),
        "{error}"
    );
    assert_eq!(
        b.eval("document.getElementById('endpoint').getAttribute('aria-invalid')"),
        json!("true")
    );
    assert_eq!(b.value("endpoint"), "http://gpu-1.internal:8000");
    assert_eq!(b.value("name"), "Codestral on gpu-1");
    assert_eq!(b.value("family"), "codestral");
    assert_eq!(b.value("identifier"), "custom_openai/Codestral-22B-v0.1");
    assert_eq!(
        b.value("api_key"),
        "",
        "the key is never sent back to the page"
    );
    assert!(!b.html().contains(MARKER));
    b.screenshot("02-endpoint-must-end-in-v1");

    b.fill("endpoint", "http://gpu-1.internal:8000/v1");
    b.fill("api_key", &api_key(3));
    b.click("form.card button[type=submit]");
    assert_eq!(b.url(), "/admin/models");
    assert!(
        b.text(".notices").contains("created"),
        "{}",
        b.text(".notices")
    );
    let row = b.text("#model-1");
    assert!(
        row.contains("Codestral on gpu-1") && row.contains("Codestral 22B") && row.contains("set"),
        "{row}"
    );
    let (_, d) = h.get("/api/v1/self_hosted_models/1").await;
    assert_eq!(d["endpoint"], "http://gpu-1.internal:8000/v1");
    assert_eq!(d["api_key_set"], true);
    b.screenshot("03-model-created");

    // A second model, rated red for chat.
    h.create(json!({"name": "Mistral 7B", "family": "mistral", "model": "mistral-7b-instruct-v0.3",
        "endpoint": "http://gpu-2.internal:8000/v1", "identifier": "custom_openai/Mistral-7B-Instruct-v0.3"}))
        .await;
    b.click("a[href='/admin/features']");
    let options = b.text("#deployment-duo_chat");
    assert!(options.contains("Mistral 7B — red"), "{options}");
    b.select("deployment-code_completions", "1");
    b.click("form[action='/admin/features/code_completions'] button");
    assert!(
        b.text(".notices")
            .contains("code_completions now uses \"Codestral on gpu-1\""),
        "{}",
        b.text(".notices")
    );
    b.select("deployment-duo_chat", "2");
    b.click("form[action='/admin/features/duo_chat'] button");
    let refusal = b.text(".notices");
    assert!(
        refusal.contains("duo_chat was not changed") && refusal.contains("rated red for chat"),
        "{refusal}"
    );
    b.screenshot("04-chat-on-a-red-model-refused");
    let (_, f) = h.get("/api/v1/feature_settings/code_completions").await;
    assert_eq!(f["self_hosted_model_id"], 1);
    let (_, f) = h.get("/api/v1/feature_settings/duo_chat").await;
    assert_eq!(f["provider"], "disabled");

    // Delete is refused while a feature uses the model, naming it.
    b.goto(&h.url("/admin/models"));
    b.click("form[action='/admin/models/1/delete'] button");
    assert!(
        b.text(".notices").contains("code_completions"),
        "{}",
        b.text(".notices")
    );
    eprintln!("browser test took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread")]
async fn browser_beta_families_and_test_connection() {
    // The browser is dropped (killed) before the turn is given back.
    let Some((_turn, mut b)) = browser().await else {
        return;
    };
    let up = FakeUpstream::start().await;
    let h = Hearth::start();
    sign_in(&mut b, &h);

    b.click("a[href='/admin/settings']");
    assert!(b.text("#beta-help").contains("Testing Agreement"));
    assert!(b.text("#verbose-help").contains("prompt"));
    b.eval("document.getElementById('beta_models_enabled').checked = true");
    b.click("form[action='/admin/settings'] button");
    assert!(b.text(".notices").contains("Settings saved"));
    assert_eq!(
        b.eval("document.getElementById('beta_models_enabled').checked"),
        json!(true)
    );
    let (_, s) = h.get("/api/v1/settings").await;
    assert_eq!(s["beta_models_enabled"], true);
    b.screenshot("05-beta-models-on");

    // A beta family against the running upstream, and one against a dead port.
    for (name, endpoint) in [
        ("CodeGemma alive", up.endpoint()),
        ("CodeGemma dead", "http://127.0.0.1:9/v1".into()),
    ] {
        b.goto(&h.url("/admin/models/new"));
        b.fill("name", name);
        b.select("family", "codegemma");
        b.fill("endpoint", &endpoint);
        b.fill("identifier", "custom_openai/codegemma-2b");
        b.click("form.card button[type=submit]");
        assert_eq!(b.url(), "/admin/models", "{}", b.text("main"));
    }
    b.click("form[action='/admin/models/1/check'] button");
    let ok = b.text(".notices");
    assert!(ok.contains("works") && ok.contains("codegemma-2b"), "{ok}");
    b.click("form[action='/admin/models/2/check'] button");
    let failed = b.text(".notices");
    assert!(
        failed.contains("failed") && failed.contains("127.0.0.1:9"),
        "{failed}"
    );
    let row1 = b.text("#model-1");
    let row2 = b.text("#model-2");
    assert!(row1.contains("passed"), "{row1}");
    assert!(row2.contains("failed"), "{row2}");
    b.screenshot("06-test-connection");
}

#[tokio::test(flavor = "multi_thread")]
async fn browser_client_keys_sign_out_and_a_narrow_window() {
    // The browser is dropped (killed) before the turn is given back.
    let Some((_turn, mut b)) = browser().await else {
        return;
    };
    let h = Hearth::start();
    sign_in(&mut b, &h);
    b.click("a[href='/admin/keys']");
    b.fill("key-name", "vscode-team-a");
    b.click("form[action='/admin/keys'] button");
    let key = b.value("new-key");
    assert!(key.starts_with("hth_"), "{key}");
    b.screenshot("07-client-key-shown-once");
    // It works, once revoked it does not, and it is never shown again.
    let models = |k: String| {
        let url = h.url("/v1/models");
        async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(k)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(models(key.clone()).await, StatusCode::OK);
    // A second key keeps client keys required on loopback once the first is revoked.
    let (_, other) = h.post("/api/v1/client_keys", json!({"name": "ci"})).await;
    b.goto(&h.url("/admin/keys"));
    assert!(!b.html().contains(&key));
    b.click("form[action='/admin/keys/1/revoke'] button");
    assert!(b.text("#key-1").contains("revoked"));
    assert_eq!(models(key).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        models(other["key"].as_str().unwrap().to_string()).await,
        StatusCode::OK
    );
    b.screenshot("08-client-key-revoked");

    // Narrow: the navigation wraps and nothing but tables scrolls sideways.
    b.viewport(380, 800);
    b.goto(&h.url("/admin/models/new"));
    let overflow = b.eval("document.documentElement.scrollWidth <= window.innerWidth + 1");
    assert_eq!(overflow, json!(true), "the page scrolls sideways at 380 px");
    // Keyboard: the first Tab reaches the skip link, and focus is visible.
    b.send(
        "Input.dispatchKeyEvent",
        json!({"type": "keyDown", "key": "Tab", "code": "Tab", "windowsVirtualKeyCode": 9}),
    );
    b.send(
        "Input.dispatchKeyEvent",
        json!({"type": "keyUp", "key": "Tab", "code": "Tab", "windowsVirtualKeyCode": 9}),
    );
    assert_eq!(b.eval("document.activeElement.className"), json!("skip"));
    let outline = b.eval("getComputedStyle(document.activeElement).outlineStyle");
    assert_eq!(outline, json!("solid"));
    // Every form control has a label.
    let unlabelled = b.eval("[...document.querySelectorAll('input:not([type=hidden]), select')].filter(e => !e.labels || e.labels.length === 0).map(e => e.id)");
    assert_eq!(unlabelled, json!([]));
    b.screenshot("09-narrow-window");
    b.viewport(1200, 900);

    b.goto(&h.url("/admin/models"));
    b.click("form.sign-out button");
    assert_eq!(b.url(), "/admin/sign-in");
    assert!(b.text(".notices").contains("signed out"));
    for page in [
        "/admin/models",
        "/admin/features",
        "/admin/settings",
        "/admin/catalog",
        "/admin/keys",
    ] {
        b.goto(&h.url(page));
        assert_eq!(b.url(), "/admin/sign-in", "{page} after sign-out");
    }
    b.screenshot("10-signed-out");
}

#[tokio::test(flavor = "multi_thread")]
async fn browser_plan_a_model_and_register_it() {
    // The browser is dropped (killed) before the turn is given back.
    let Some((_turn, mut b)) = browser().await else {
        return;
    };
    let h = Hearth::start();
    sign_in(&mut b, &h);
    b.click("a[href='/admin/catalog']");
    assert!(b.text("#catalog-caption").contains("GPU memory"));
    b.select("plan-model", "codestral-22b-v0.1");
    b.select("plan-gpu", "A100-80GB");
    b.fill("plan-host", "gpu-1.internal");
    b.click("form[action='/admin/catalog#plan'] button");
    let answer = b.text("#answer-heading");
    assert_eq!(answer, "It fits");
    assert!(
        b.text("main pre").contains("vllm serve"),
        "{}",
        b.text("main")
    );
    b.screenshot("11-plan");
    b.click("a[href^='/admin/models/new?']");
    assert_eq!(b.value("family"), "codestral");
    assert_eq!(b.value("endpoint"), "http://gpu-1.internal:8000/v1");
    assert_eq!(b.value("model"), "codestral-22b-v0.1");
    b.click("form.card button[type=submit]");
    assert_eq!(b.url(), "/admin/models", "{}", b.text("main"));
    let (_, list) = h.get("/api/v1/self_hosted_models").await;
    assert_eq!(list[0]["model"], "codestral-22b-v0.1");
}

#[tokio::test]
async fn editing_keeps_or_clears_the_key_amber_warns_and_the_status_strip_counts() {
    let up = FakeUpstream::start().await;
    let h = Hearth::start();
    let id = h
        .create(
            json!({"name": "mixtral", "family": "mixtral", "model": "mixtral-8x7b-instruct-v0.1",
            "endpoint": up.endpoint(), "identifier": "custom_openai/Mixtral-8x7B-Instruct-v0.1",
            "api_key": api_key(4)}),
        )
        .await;
    let (c, _) = Console::sign_in(&h).await;
    let fields = |name: &'static str, key: &'static str| {
        vec![
            ("name", name),
            ("family", "mixtral"),
            ("model", "mixtral-8x7b-instruct-v0.1"),
            ("endpoint", ""),
            ("identifier", "custom_openai/Mixtral-8x7B-Instruct-v0.1"),
            ("api_key", key),
        ]
    };
    let endpoint = up.endpoint();
    // An empty key field keeps the stored key.
    let mut form = fields("mixtral renamed", "");
    form[3].1 = &endpoint;
    let a = c.post(&format!("/admin/models/{id}"), &form).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let (_, d) = h.get(&format!("/api/v1/self_hosted_models/{id}")).await;
    assert_eq!(
        (d["name"].as_str(), d["api_key_set"].as_bool()),
        (Some("mixtral renamed"), Some(true))
    );
    let edit = c.get(&format!("/admin/models/{id}/edit")).await.body;
    assert!(
        edit.contains("A key is <strong>set</strong>") && edit.contains("clear_api_key"),
        "{edit}"
    );
    // Only the explicit box removes it.
    form.push(("clear_api_key", "1"));
    let a = c.post(&format!("/admin/models/{id}"), &form).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let (_, d) = h.get(&format!("/api/v1/self_hosted_models/{id}")).await;
    assert_eq!(d["api_key_set"], false);

    // Amber is accepted with its warning on the next page.
    let id_text = id.to_string();
    let a = c
        .post("/admin/features/duo_chat", &[("deployment", &id_text)])
        .await;
    assert_eq!(a.location, "/admin/features#duo_chat");
    let page = c.get("/admin/features").await.body;
    assert!(
        page.contains("now uses") && page.contains("Warning:") && page.contains("amber"),
        "{page}"
    );
    assert!(page.contains("mixtral renamed — amber"), "{page}");

    // Traffic shows in the status strip: one completion refused (feature disabled), one chat.
    let http = reqwest::Client::new();
    let refused = http
        .post(h.url("/v1/completions"))
        .json(&json!({"prompt": "def f():", "max_tokens": 4}))
        .send()
        .await
        .unwrap();
    assert!(refused.status().is_client_error(), "{}", refused.status());
    let ok = http
        .post(h.url("/v1/chat/completions"))
        .json(&json!({"model": "mixtral renamed", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let page = c.get("/admin/models").await.body;
    assert!(
        page.contains("code_completions 1 requests, 1 errors"),
        "{page}"
    );
    assert!(page.contains("duo_chat 1 requests, 0 errors"), "{page}");
}

/// The model form adds and removes replicas and sets how requests are spread; a bad replica URL
/// is shown at its field and nothing stored changes; the model table shows each replica.
#[tokio::test]
async fn the_model_form_manages_replicas_and_the_table_shows_them() {
    let h = Hearth::start_with(crate::harness::Options {
        args: vec!["--health-check-interval".into(), "0s".into()],
        ..Default::default()
    });
    let id = h
        .create(json!({"name": "cs", "family": "codestral",
            "endpoint": "http://gpu-1.internal:8000/v1", "identifier": "custom_openai/codestral-22b"}))
        .await;
    let (c, _) = Console::sign_in(&h).await;
    let edit = c.get(&format!("/admin/models/{id}/edit")).await.body;
    assert!(
        edit.contains("name=\"replicas\"") && edit.contains("name=\"routing\""),
        "{edit}"
    );
    let form = |replicas: &'static str, routing: &'static str| {
        vec![
            ("name", "cs"),
            ("family", "codestral"),
            ("model", ""),
            ("endpoint", "http://gpu-1.internal:8000/v1"),
            ("replicas", replicas),
            ("routing", routing),
            ("identifier", "custom_openai/codestral-22b"),
            ("api_key", ""),
        ]
    };
    let a = c
        .post(
            &format!("/admin/models/{id}"),
            &form(
                "http://gpu-2.internal:8000/v1\n\nhttp://gpu-3.internal:8000/v1\n",
                "least_loaded",
            ),
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let (_, d) = h.get(&format!("/api/v1/self_hosted_models/{id}")).await;
    let urls: Vec<&str> = d["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["url"].as_str().unwrap())
        .collect();
    assert_eq!(
        urls,
        [
            "http://gpu-1.internal:8000/v1",
            "http://gpu-2.internal:8000/v1",
            "http://gpu-3.internal:8000/v1"
        ]
    );
    assert_eq!(d["routing"], "least_loaded");
    let table = c.get("/admin/models").await.body;
    assert!(
        table.contains("http://gpu-3.internal:8000/v1") && table.contains("unchecked"),
        "{table}"
    );
    // A replica without /v1 is refused at the replicas box; the stored list stays.
    let a = c
        .post(
            &format!("/admin/models/{id}"),
            &form("http://gpu-2.internal:8000", "least_loaded"),
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.body);
    assert!(
        a.body.contains("id=\"endpoints-error\"") && a.body.contains("must end in /v1"),
        "{}",
        a.body
    );
    let (_, d) = h.get(&format!("/api/v1/self_hosted_models/{id}")).await;
    assert_eq!(d["endpoints"].as_array().unwrap().len(), 3);
    // An empty box removes them all but the first.
    let a = c
        .post(&format!("/admin/models/{id}"), &form("", "round_robin"))
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let (_, d) = h.get(&format!("/api/v1/self_hosted_models/{id}")).await;
    assert_eq!(d["endpoints"].as_array().unwrap().len(), 1);
    assert_eq!(d["routing"], "round_robin");
}
