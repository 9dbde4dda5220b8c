//! Starts and stops `hearth serve`, collects its log lines, and checks on every response and
//! at every stop that no API key ever leaks.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Every API key a test stores contains this, so a leak anywhere is caught.
pub const SECRET: &str = "sk-SECRET-MARKER-7f3a9c";
/// The part every stored secret shares (API keys, AWS secrets, Azure keys).
pub const MARKER: &str = "SECRET-MARKER-7f3a9c";
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
pub const BIN: &str = env!("CARGO_BIN_EXE_hearth");

pub fn api_key(n: u32) -> String {
    format!("{SECRET}-{n}")
}

#[derive(Default)]
pub struct Options<'a> {
    pub data_dir: Option<&'a Path>,
    pub env: Vec<(&'a str, String)>,
    pub args: Vec<String>,
    /// Leave HEARTH_ADMIN_TOKEN unset so the server generates its token file.
    pub generated_token: bool,
    /// Listen address; 127.0.0.1:0 when unset.
    pub listen: Option<&'a str>,
    /// For a server started with `--tls-cert`: the PEM certificate the harness's client
    /// trusts; `url()` then says `https`.
    pub https_ca: Option<&'a str>,
}

pub struct Hearth {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    logs: Arc<Mutex<Vec<String>>>,
    pub token: String,
    http: reqwest::Client,
    scheme: &'static str,
}

impl Hearth {
    pub fn start() -> Hearth {
        Self::start_with(Options::default())
    }

    pub fn start_with(opts: Options<'_>) -> Hearth {
        let _ = rustls::crypto::ring::default_provider().install_default();
        // Built before the child starts, so no panic can leave a server behind.
        let (http, scheme) = match opts.https_ca {
            None => (reqwest::Client::new(), "http"),
            Some(pem) => (
                reqwest::Client::builder()
                    .tls_certs_only([reqwest::Certificate::from_pem(pem.as_bytes()).unwrap()])
                    .build()
                    .unwrap(),
                "https",
            ),
        };
        let (temp, data_dir) = match opts.data_dir {
            Some(d) => (None, d.to_path_buf()),
            None => {
                let t = tempfile::tempdir().unwrap();
                let p = t.path().to_path_buf();
                (Some(t), p)
            }
        };
        let mut cmd = Command::new(BIN);
        cmd.args([
            "serve",
            "--listen",
            opts.listen.unwrap_or("127.0.0.1:0"),
            "--log-format",
            "json",
            "--data-dir",
        ])
        .arg(&data_dir)
        .args(&opts.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        for (k, _) in std::env::vars() {
            if k.starts_with("HEARTH_") || k.starts_with("AWS_") {
                cmd.env_remove(k);
            }
        }
        // No ambient AWS profile either: tests say which credentials exist.
        cmd.env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/hearth-test");
        if !opts.generated_token {
            cmd.env("HEARTH_ADMIN_TOKEN", ADMIN_TOKEN);
        }
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        {
            let logs = logs.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if line.contains("hearth listening") {
                        let v: Value = serde_json::from_str(&line).unwrap();
                        let _ = tx.send(v["addr"].as_str().unwrap().parse::<SocketAddr>().unwrap());
                    }
                    logs.lock().unwrap().push(line);
                }
            });
        }
        {
            let logs = logs.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    logs.lock().unwrap().push(line);
                }
            });
        }
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!("hearth did not start:\n{}", logs.lock().unwrap().join("\n"));
            }
        };
        let token = if opts.generated_token {
            std::fs::read_to_string(data_dir.join("admin.token"))
                .unwrap()
                .trim()
                .to_string()
        } else {
            ADMIN_TOKEN.to_string()
        };
        Hearth {
            child: Some(child),
            addr,
            data_dir,
            _temp: temp,
            logs,
            token,
            http,
            scheme,
        }
    }

    pub fn url(&self, path: &str) -> String {
        let mut addr = self.addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        format!("{}://{addr}{path}", self.scheme)
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// A GET without credentials, for the routes that need none.
    pub async fn open_get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.unwrap()
    }

    /// An admin API call with the right token. Fails the test if the body holds an API key.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, self.url(path))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert!(
            !text.contains(MARKER),
            "a secret leaked in a response: {text}"
        );
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        };
        (status, json)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PATCH, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, None).await
    }

    /// Creates a deployment and returns its id; panics with the server's answer otherwise.
    pub async fn create(&self, body: Value) -> i64 {
        let (status, json) = self.post("/api/v1/self_hosted_models", body).await;
        assert_eq!(status, StatusCode::CREATED, "{json}");
        json["id"].as_i64().unwrap()
    }

    /// Binds code completion to deployment `id` and checks that it took.
    pub async fn bind_completions(&self, id: i64) {
        let (s, b) = self
            .put(
                "/api/v1/feature_settings/code_completions",
                serde_json::json!({"provider": "self_hosted", "self_hosted_model_id": id}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// Waits until a log line containing `needle` appears.
    pub fn wait_for_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(line) = self
                .logs
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(needle))
            {
                return line.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {needle:?}:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a signal (`HUP`, …) to the server without waiting for anything.
    pub fn signal(&self, name: &str) {
        let child = self.child.as_ref().expect("server is running");
        let status = Command::new("kill")
            .args([&format!("-{name}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("server is running");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                // Let the reader threads drain the last lines.
                std::thread::sleep(Duration::from_millis(100));
                self.assert_no_secret_in_logs();
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "hearth did not stop within 15 s after SIGTERM:\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn assert_no_secret_in_logs(&self) {
        let logs = self.logs();
        assert!(
            !logs.contains(MARKER),
            "a secret leaked into the log:\n{logs}"
        );
        assert!(
            !logs.contains(&self.token),
            "the admin token leaked into the log"
        );
    }
}

impl Drop for Hearth {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(50));
            if !std::thread::panicking() {
                self.assert_no_secret_in_logs();
            }
        }
    }
}

/// Runs `hearth serve` where start-up must fail; returns its stderr.
pub fn serve_must_fail(extra_args: &[&str], env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .args(extra_args)
        .env("HEARTH_ADMIN_TOKEN", ADMIN_TOKEN)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "hearth serve should have refused to start"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A deployment body that passes every rule.
pub fn vllm_body(name: &str) -> Value {
    serde_json::json!({
        "name": name,
        "family": "mixtral",
        "endpoint": "http://gpu-1.internal:8000/v1",
        "identifier": "custom_openai/Mixtral-8x7B-Instruct-v0.1",
    })
}

/// Asserts an API error: status, code and the field it names; returns the message.
pub fn expect_error(got: &(StatusCode, Value), status: StatusCode, field: Option<&str>) -> String {
    let (s, body) = got;
    assert_eq!(*s, status, "{body}");
    assert!(body["error"]["code"].is_string(), "{body}");
    assert_eq!(body["error"]["field"].as_str(), field, "{body}");
    body["error"]["message"].as_str().unwrap().to_string()
}

/// A POST to an inference route, without admin credentials.
pub async fn post(h: &Hearth, path: &str, body: Value) -> reqwest::Response {
    h.http().post(h.url(path)).json(&body).send().await.unwrap()
}

/// Reads a whole SSE answer and returns its `data:` payloads, `[DONE]` last, after checking
/// the framing: status 200, `text/event-stream`, only data events, `[DONE]` at the end.
pub async fn sse_payloads(resp: reqwest::Response) -> Vec<String> {
    use futures_util::StreamExt;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut raw = Vec::new();
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        raw.extend_from_slice(&chunk.unwrap());
    }
    let text = String::from_utf8(raw).unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text:?}");
    text.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            e.strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not a data event: {e:?}"))
                .to_string()
        })
        .collect()
}

/// The JSON events of an SSE answer, without `[DONE]`.
pub async fn sse_json(resp: reqwest::Response) -> Vec<Value> {
    let mut payloads = sse_payloads(resp).await;
    payloads.pop();
    payloads
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect()
}
