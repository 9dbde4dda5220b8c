//! The CLI's HTTP client for the admin API: finds the server and the token, and turns every
//! failure into one line that says what to do.

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::cli::ClientArgs;
use crate::config::{DEFAULT_LISTEN, default_data_dir, env_secret};
use crate::serve::ADMIN_TOKEN_FILE;

pub(crate) struct Client {
    base: String,
    token: SecretString,
    http: reqwest::Client,
}

impl Client {
    pub(crate) fn new(args: &ClientArgs) -> anyhow::Result<Client> {
        let base = args
            .url
            .clone()
            .unwrap_or_else(default_url)
            .trim_end_matches('/')
            .to_string();
        let token = match env_secret("HEARTH_ADMIN_TOKEN") {
            Some(t) => SecretString::from(t),
            None => {
                let dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
                let path = dir.join(ADMIN_TOKEN_FILE);
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    anyhow!(
                        "no admin token: set HEARTH_ADMIN_TOKEN, or run where `hearth serve` keeps {} ({e}); pass --data-dir if it uses another data directory",
                        path.display()
                    )
                })?;
                SecretString::from(text.trim().to_string())
            }
        };
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60))
            .build()
            .context("cannot set up the HTTP client")?;
        Ok(Client { base, token, http })
    }

    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    pub(crate) async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(Method::GET, path, None).await
    }

    /// Sends a request; returns the JSON body (`Value::Null` for 204).
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut request = self
            .http
            .request(method, &url)
            .bearer_auth(self.token.expose_secret());
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| {
            let cause = std::error::Error::source(&e)
                .map(|s| s.to_string())
                .unwrap_or_else(|| e.to_string());
            anyhow!(
                "cannot reach Hearth at {}: {cause}; start it with `hearth serve`, or point --url / HEARTH_URL at it",
                self.base
            )
        })?;
        let status = response.status();
        if status == StatusCode::NO_CONTENT {
            return Ok(Value::Null);
        }
        let text = response
            .text()
            .await
            .with_context(|| format!("reading the answer from {url}"))?;
        let json: Option<Value> = serde_json::from_str(&text).ok();
        if status.is_success() {
            return json
                .ok_or_else(|| anyhow!("{url} answered {status} with a body that is not JSON"));
        }
        let message = json
            .as_ref()
            .and_then(|j| j["error"]["message"].as_str())
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{url} answered {status}"));
        bail!("{message} (HTTP {})", status.as_u16())
    }

    /// Resolves a deployment given by name or id to its id.
    pub(crate) async fn deployment_id(&self, name_or_id: &str) -> anyhow::Result<i64> {
        if let Ok(id) = name_or_id.parse::<i64>() {
            return Ok(id);
        }
        let list = self.get("/api/v1/self_hosted_models").await?;
        list.as_array()
            .into_iter()
            .flatten()
            .find(|d| d["name"].as_str() == Some(name_or_id))
            .and_then(|d| d["id"].as_i64())
            .ok_or_else(|| {
                anyhow!(
                    "no self-hosted model is named {name_or_id:?}; `hearth models list` shows them"
                )
            })
    }
}

/// The server's own address when it is configured by HEARTH_LISTEN on this machine.
pub(crate) fn default_url() -> String {
    let listen = std::env::var("HEARTH_LISTEN").unwrap_or_else(|_| DEFAULT_LISTEN.into());
    let listen = listen
        .replace("0.0.0.0", "127.0.0.1")
        .replace("[::]", "[::1]");
    format!("http://{listen}")
}
