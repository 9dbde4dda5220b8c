//! Just enough of the Chrome DevTools Protocol to drive Debian's headless Chromium from a
//! test: start it, open a page, run JavaScript in it, wait for navigations, take screenshots.
//!
//! Why not chromiumoxide or headless_chrome: both compile the whole generated protocol (tens
//! of thousands of lines) and bring their own runtime or download logic, minutes of build on
//! two cores for the five commands used here. This is one small WebSocket dependency
//! (tungstenite, no TLS) and plain JSON.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};

/// Where the browser is, or `None` (the test then skips, except in CI where it fails).
pub fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("HEARTH_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

pub struct Browser {
    child: Child,
    ws: WebSocket<TcpStream>,
    session: String,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts a fresh headless Chromium (its own profile) with one blank page.
    pub fn launch(binary: &Path) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new(binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-dev-shm-usage",
                "--remote-debugging-port=0",
                "--window-size=1200,900",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.split("DevTools listening on ").nth(1) {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(u) => u,
            Err(_) => {
                let _ = child.kill();
                panic!("chromium did not start (no DevTools URL within 30 s)");
            }
        };
        let host = url
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .unwrap()
            .to_string();
        let stream = TcpStream::connect(&host).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let (ws, _) = tungstenite::client(url.as_str(), stream).unwrap();
        let mut b = Browser {
            child,
            ws,
            session: String::new(),
            next_id: 0,
            _profile: profile,
        };
        let target = b.call(None, "Target.createTarget", json!({"url": "about:blank"}));
        let target_id = target["targetId"].as_str().unwrap().to_string();
        let attached = b.call(
            None,
            "Target.attachToTarget",
            json!({"targetId": target_id, "flatten": true}),
        );
        b.session = attached["sessionId"].as_str().unwrap().to_string();
        b.send("Page.enable", json!({}));
        b.send("Runtime.enable", json!({}));
        b.viewport(1200, 900);
        b
    }

    fn call(&mut self, session: Option<String>, method: &str, params: Value) -> Value {
        match self.try_call(session, method, params) {
            Ok(v) => v,
            Err(e) => panic!("{method} failed: {e}"),
        }
    }

    fn try_call(
        &mut self,
        session: Option<String>,
        method: &str,
        params: Value,
    ) -> Result<Value, Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        self.ws.send(Message::text(msg.to_string())).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            assert!(Instant::now() < deadline, "no answer to {method}");
            let Message::Text(text) = self.ws.read().unwrap() else {
                continue;
            };
            let v: Value = serde_json::from_str(text.as_str()).unwrap();
            if v["id"].as_u64() == Some(id) {
                if let Some(e) = v.get("error") {
                    return Err(e.clone());
                }
                return Ok(v["result"].clone());
            }
        }
    }

    /// A command to the page.
    pub fn send(&mut self, method: &str, params: Value) -> Value {
        let s = self.session.clone();
        self.call(Some(s), method, params)
    }

    pub fn viewport(&mut self, width: u32, height: u32) {
        self.send(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
        );
    }

    /// Runs `expression` in the page and returns its value (JSON-serialisable).
    pub fn eval(&mut self, expression: &str) -> Value {
        let r = self.send(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        );
        if let Some(e) = r.get("exceptionDetails") {
            panic!("{expression}: {e}");
        }
        r["result"]["value"].clone()
    }

    /// Marks the current document, runs `action`, and waits until a new document has loaded.
    pub fn navigating(&mut self, action: &str) {
        self.eval("window.__hearth_old = true");
        self.eval(action);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // Mid-navigation the page's context can vanish under the call: just ask again.
            let s = self.session.clone();
            let fresh = self.try_call(
                Some(s),
                "Runtime.evaluate",
                json!({"expression": "window.__hearth_old === undefined && document.readyState === 'complete'", "returnByValue": true}),
            );
            if fresh.is_ok_and(|r| r["result"]["value"] == json!(true)) {
                return;
            }
            assert!(Instant::now() < deadline, "no new page after {action}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn goto(&mut self, url: &str) {
        self.navigating(&format!("location.href = {}", json!(url)));
    }

    /// Fills a field as typed: focus it, clear it, then type the text through the keyboard
    /// input path.
    pub fn fill(&mut self, id: &str, text: &str) {
        self.eval(&format!(
            "(() => {{ const e = document.getElementById({id}); e.focus(); e.value = ''; }})()",
            id = json!(id)
        ));
        self.send("Input.insertText", json!({"text": text}));
    }

    pub fn select(&mut self, id: &str, value: &str) {
        self.eval(&format!(
            "document.getElementById({}).value = {}",
            json!(id),
            json!(value)
        ));
    }

    /// Clicks the button or link matching `selector`, and waits for the next page.
    pub fn click(&mut self, selector: &str) {
        self.navigating(&format!(
            "document.querySelector({}).click()",
            json!(selector)
        ));
    }

    pub fn text(&mut self, selector: &str) -> String {
        self.eval(&format!(
            "(document.querySelector({}) || {{innerText: ''}}).innerText",
            json!(selector)
        ))
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    pub fn value(&mut self, id: &str) -> String {
        self.eval(&format!("document.getElementById({}).value", json!(id)))
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn url(&mut self) -> String {
        self.eval("location.pathname")
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn html(&mut self) -> String {
        self.eval("document.documentElement.outerHTML")
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Saves the whole page as `target/console-screenshots/NAME.png`.
    pub fn screenshot(&mut self, name: &str) -> PathBuf {
        let r = self.send(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true}),
        );
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap())
            .unwrap();
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `target/console-screenshots`, where CI keeps them.
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("console-screenshots")
}
