//! Runs llama.cpp's `llama-server` on a model for a test, on 127.0.0.1, and stops it on drop.
//!
//! Every server is started with `--metrics` (Prometheus text at `/metrics`, which the routing
//! tests read to count the prompt tokens each replica really evaluated) and with llama-server's
//! defaults for prompt caching (`cache_prompt` on, the host-memory prompt cache on). A server
//! keeps its port across [`LlamaServer::kill`] and [`LlamaServer::restart`], so a replica a
//! test killed comes back at the address its deployment lists.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct LlamaServer {
    child: Option<Child>,
    pub port: u16,
    binary: PathBuf,
    model: PathBuf,
    extra: Vec<String>,
}

impl LlamaServer {
    /// Starts `binary` serving `model` and waits until `/health` answers 200.
    pub async fn start(binary: &Path, model: &Path) -> LlamaServer {
        Self::start_with(binary, model, &[]).await
    }

    /// Like [`start`](Self::start), with more command-line arguments (`-t 1`, `-np 4`, …);
    /// later arguments override the defaults.
    pub async fn start_with(binary: &Path, model: &Path, extra: &[&str]) -> LlamaServer {
        // llama-server needs a port number up front; ask the OS for a free one.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = LlamaServer {
            child: None,
            port,
            binary: binary.to_path_buf(),
            model: model.to_path_buf(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        server.restart().await;
        server
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// Kills the server at once (SIGKILL: in-flight requests see their connection close) and
    /// waits for it to be gone; its port is then refused until [`restart`](Self::restart).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a fresh server process on the same port (an empty cache, zeroed metrics) and
    /// waits until it is healthy. Kills the running one first, if any.
    pub async fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut child = Command::new(&self.binary)
                .args(["-m"])
                .arg(&self.model)
                .args([
                    "--host",
                    "127.0.0.1",
                    "--port",
                    &self.port.to_string(),
                    "-c",
                    "2048",
                    "-np",
                    "2",
                    "--alias",
                    "tiny",
                    "--metrics",
                ])
                .args(&self.extra)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            loop {
                if health_ok(self.port).await {
                    self.child = Some(child);
                    return;
                }
                // It exited: the port was not free yet (a restart right after a kill), or it
                // failed; try again until the deadline.
                if child.try_wait().ok().flatten().is_some() {
                    break;
                }
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("llama-server did not become healthy on port {}", self.port);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert!(
                Instant::now() < deadline,
                "llama-server kept exiting on port {}",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The server's Prometheus text from `/metrics`.
    pub async fn metrics(&self) -> String {
        get(self.port, "/metrics").await.unwrap_or_default()
    }

    /// `llamacpp:prompt_tokens_total`: prompt tokens this process has evaluated since it
    /// started. llama-server adds each request's `n_prompt_tokens_processed`, which leaves out
    /// the tokens reused from its prompt cache (a fully cached prompt still evaluates its last
    /// token, for the logits).
    pub async fn prompt_tokens_evaluated(&self) -> u64 {
        metric(&self.metrics().await, "llamacpp:prompt_tokens_total") as u64
    }
}

/// The value of the unlabelled sample `name` in Prometheus text, 0 when absent.
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (n, v) = l.split_once(' ')?;
            (n == name).then(|| v.trim().parse().ok()).flatten()
        })
        .unwrap_or(0.0)
}

/// One plain HTTP/1.0 GET of `/health`.
async fn health_ok(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    if s.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .is_err()
    {
        return false;
    }
    let mut buf = vec![0u8; 64];
    matches!(s.read(&mut buf).await, Ok(n) if buf[..n].starts_with(b"HTTP/1.1 200") || buf[..n].starts_with(b"HTTP/1.0 200"))
}

/// One plain HTTP/1.0 GET; the body when the answer is 200.
async fn get(port: u16, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.split(' ')
        .nth(1)
        .is_some_and(|s| s == "200")
        .then(|| body.to_string())
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        self.kill();
    }
}
