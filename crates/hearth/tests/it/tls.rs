//! HTTPS on the listener: HTTP/1.1 and HTTP/2 by ALPN, the certificate reloaded on SIGHUP and
//! on file change (a bad new pair keeps the old one), a stalled handshake cut, and start-up
//! errors that name the file. Certificates are made here, per test, with rcgen.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::{StatusCode, Version};

use crate::harness::{Hearth, Options, serve_must_fail};

pub(crate) struct Pair {
    pub(crate) cert_pem: String,
    key_pem: String,
    der: Vec<u8>,
}

pub(crate) fn pair() -> Pair {
    let made =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    Pair {
        cert_pem: made.cert.pem(),
        key_pem: made.signing_key.serialize_pem(),
        der: made.cert.der().to_vec(),
    }
}

/// Writes the pair where the server reads it; returns (cert path, key path).
pub(crate) fn install(dir: &Path, pair: &Pair) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, &pair.cert_pem).unwrap();
    std::fs::write(&key, &pair.key_pem).unwrap();
    (cert, key)
}

pub(crate) fn start(cert: &Path, key: &Path, extra: &[&str]) -> Hearth {
    let mut args = vec![
        "--tls-cert".to_string(),
        cert.display().to_string(),
        "--tls-key".to_string(),
        key.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    Hearth::start_with(Options {
        args,
        ..Default::default()
    })
}

pub(crate) fn https(h: &Hearth, path: &str) -> String {
    format!("https://127.0.0.1:{}{path}", h.addr.port())
}

/// A client trusting only `trusted`, on a fresh connection every time (so each request sees
/// the certificate served now).
pub(crate) fn client(trusted: &[&Pair], http1_only: bool) -> reqwest::Client {
    let certs = trusted
        .iter()
        .map(|p| reqwest::Certificate::from_pem(p.cert_pem.as_bytes()).unwrap());
    let mut b = reqwest::Client::builder()
        .tls_certs_only(certs)
        .tls_info(true)
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10));
    if http1_only {
        b = b.http1_only();
    }
    b.build().unwrap()
}

/// The DER certificate the server presented for a request to `path`.
async fn served_cert(h: &Hearth, trusted: &[&Pair]) -> Vec<u8> {
    let resp = client(trusted, false)
        .get(https(h, "/monitoring/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .unwrap()
        .to_vec()
}

#[tokio::test]
async fn https_serves_http1_and_http2_by_alpn() {
    let dir = tempfile::tempdir().unwrap();
    let a = pair();
    let (cert, key) = install(dir.path(), &a);
    let h = start(&cert, &key, &[]);
    let line = h.wait_for_log("hearth listening");
    assert!(line.contains("\"tls\":true"), "{line}");

    for (http1_only, version) in [(true, Version::HTTP_11), (false, Version::HTTP_2)] {
        let resp = client(&[&a], http1_only)
            .get(https(&h, "/api/v1/settings"))
            .bearer_auth(&h.token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.version(), version);
        assert_eq!(resp.status(), StatusCode::OK);
        let body: serde_json::Value = resp.json().await.unwrap();
        assert!(body["beta_models_enabled"].is_boolean(), "{body}");
    }

    // The certificate is checked: a client that does not trust it gets no answer.
    let other = pair();
    let err = client(&[&other], false)
        .get(https(&h, "/monitoring/healthz"))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    // And plain HTTP on the TLS port gets no HTTP answer.
    let plain = h.http().get(h.url("/monitoring/healthz")).send().await;
    assert!(plain.is_err() || plain.unwrap().status() != StatusCode::OK);
}

#[tokio::test]
async fn sighup_reloads_the_certificate_and_a_bad_pair_keeps_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (pair(), pair());
    let (cert, key) = install(dir.path(), &a);
    let h = start(&cert, &key, &["--tls-watch-interval", "0s"]);
    assert_eq!(served_cert(&h, &[&a, &b]).await, a.der);

    install(dir.path(), &b);
    h.signal("HUP");
    h.wait_for_log("TLS certificate reloaded");
    assert_eq!(served_cert(&h, &[&a, &b]).await, b.der);

    // A certificate with another pair's key: refused, and B is still served.
    let c = pair();
    std::fs::write(&cert, &c.cert_pem).unwrap();
    h.signal("HUP");
    let line = h.wait_for_log("TLS certificate not reloaded");
    assert!(line.contains("cannot be used together"), "{line}");
    assert_eq!(served_cert(&h, &[&a, &b, &c]).await, b.der);
}

#[tokio::test]
async fn a_changed_certificate_file_is_picked_up_without_a_signal() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (pair(), pair());
    let (cert, key) = install(dir.path(), &a);
    let h = start(&cert, &key, &["--tls-watch-interval", "100ms"]);
    assert_eq!(served_cert(&h, &[&a, &b]).await, a.der);
    // Key first, then certificate, as a renewal tool may write them: the half-written state
    // is refused and logged, the complete one served.
    std::fs::write(&key, &b.key_pem).unwrap();
    std::thread::sleep(Duration::from_millis(400));
    std::fs::write(&cert, &b.cert_pem).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while served_cert(&h, &[&a, &b]).await != b.der {
        assert!(
            Instant::now() < deadline,
            "new certificate not served:\n{}",
            h.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    h.wait_for_log("TLS certificate not reloaded");
}

#[tokio::test]
async fn a_stalled_handshake_is_cut_at_the_header_timeout_and_frees_its_slot() {
    let dir = tempfile::tempdir().unwrap();
    let a = pair();
    let (cert, key) = install(dir.path(), &a);
    let h = start(
        &cert,
        &key,
        &["--header-timeout", "1s", "--max-connections", "1"],
    );
    let addr = h.addr;
    let (closed_after, read) = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let started = Instant::now();
        let mut buf = [0u8; 64];
        let read = s.read(&mut buf);
        (started.elapsed(), read.map_err(|e| e.kind()))
    })
    .await
    .unwrap();
    assert!(
        matches!(read, Ok(0) | Err(std::io::ErrorKind::ConnectionReset)),
        "{read:?}"
    );
    assert!(
        closed_after >= Duration::from_millis(900),
        "{closed_after:?}"
    );
    assert!(closed_after < Duration::from_secs(5), "{closed_after:?}");
    // The slot is free again: a real request is served, not sent to the overflow 503.
    let resp = client(&[&a], false)
        .get(https(&h, "/api/v1/settings"))
        .bearer_auth(&h.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[test]
fn start_up_names_the_file_it_cannot_use() {
    let dir = tempfile::tempdir().unwrap();
    let a = pair();
    let (cert, key) = install(dir.path(), &a);
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());

    let missing = dir.path().join("missing.pem");
    let missing = missing.to_str().unwrap();
    let err = serve_must_fail(&["--tls-cert", missing, "--tls-key", key], &[]);
    assert!(
        err.contains("cannot read the TLS certificate file") && err.contains(missing),
        "{err}"
    );
    let err = serve_must_fail(&["--tls-cert", cert, "--tls-key", missing], &[]);
    assert!(
        err.contains("cannot read the TLS key file") && err.contains(missing),
        "{err}"
    );
    // The certificate where the key should be.
    let err = serve_must_fail(&["--tls-cert", cert, "--tls-key", cert], &[]);
    assert!(
        err.contains("holds no PEM private key") && err.contains(cert),
        "{err}"
    );
    let other = pair();
    let other_key = dir.path().join("other.key");
    std::fs::write(&other_key, &other.key_pem).unwrap();
    let other_key = other_key.to_str().unwrap();
    let err = serve_must_fail(&["--tls-cert", cert, "--tls-key", other_key], &[]);
    assert!(err.contains("cannot be used together"), "{err}");
    let err = serve_must_fail(&[], &[("HEARTH_TLS_CERT", cert)]);
    assert!(err.contains("--tls-cert needs --tls-key"), "{err}");
}

/// A client that finishes the TLS handshake, chooses HTTP/2 or HTTP/1.1, and then sends
/// nothing: cut at the header timeout like a silent plain client.
#[tokio::test]
async fn a_silent_client_after_the_handshake_is_cut_at_the_header_timeout() {
    use std::sync::Arc;
    use tokio::io::AsyncReadExt;

    let dir = tempfile::tempdir().unwrap();
    let a = pair();
    let (cert, key) = install(dir.path(), &a);
    let h = start(&cert, &key, &["--header-timeout", "1s"]);
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(a.der.clone()))
        .unwrap();
    for alpn in [&b"h2"[..], &b"http/1.1"[..]] {
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots.clone())
        .with_no_client_auth();
        config.alpn_protocols = vec![alpn.to_vec()];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(h.addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut tls = connector.connect(name, tcp).await.unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(alpn));
        let started = Instant::now();
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut buf)).await;
        let elapsed = started.elapsed();
        assert!(read.is_ok(), "{alpn:?}: still open after 10 s");
        assert!(elapsed < Duration::from_secs(5), "{alpn:?}: {elapsed:?}");
    }
}

/// HTTP/2 on both sides: clients on Hearth's HTTPS listener, and a model server on HTTPS that
/// offers it, which Hearth trusts the way an operator would (`SSL_CERT_FILE`). Each of
/// several concurrent streams arrives whole, and Hearth's calls for them share one connection
/// to the model server — what keeps an open stream's cost low (docs/benchmarks.md, Memory).
#[tokio::test]
async fn http2_on_both_sides_carries_concurrent_streams() {
    use futures_util::future::join_all;
    use hearth_testkit::{FakeUpstream, SELF_SIGNED_CERT};
    use serde_json::{Value, json};

    let up = FakeUpstream::start_tls_on("127.0.0.1:0", false).await;
    assert!(up.endpoint().starts_with("https://"), "{}", up.endpoint());
    let dir = tempfile::tempdir().unwrap();
    let ours = pair();
    let (cert, key) = install(dir.path(), &ours);
    let h = Hearth::start_with(Options {
        args: vec![
            "--tls-cert".into(),
            cert.display().to_string(),
            "--tls-key".into(),
            key.display().to_string(),
        ],
        env: vec![("SSL_CERT_FILE", SELF_SIGNED_CERT.to_string())],
        https_ca: Some(&ours.cert_pem),
        ..Default::default()
    });
    let id = h
        .create(
            json!({"name": "tls", "family": "codestral", "endpoint": up.endpoint(),
            "identifier": "custom_openai/codestral"}),
        )
        .await;
    h.bind_completions(id).await;

    // The harness's one pooled client, so its streams can share a connection.
    let ask = |stream: bool| {
        crate::harness::post(
            &h,
            "/v1/completions",
            json!({"prompt": "def f(", "suffix": ")", "max_tokens": 8, "stream": stream}),
        )
    };
    let first = ask(false).await;
    assert_eq!(first.version(), Version::HTTP_2);
    assert_eq!(first.status(), StatusCode::OK);
    let body: Value = first.json().await.unwrap();
    assert!(body["choices"][0]["text"].is_string(), "{body}");
    for resp in join_all((0..8).map(|_| ask(true))).await {
        assert_eq!(resp.version(), Version::HTTP_2);
        let events = crate::harness::sse_json(resp).await;
        assert!(!events.is_empty());
    }
    let seen = up.requests();
    assert_eq!(seen.len(), 9);
    for r in &seen {
        assert_eq!(r.version, Version::HTTP_2, "{}", r.path);
        assert_eq!(
            r.peer, seen[0].peer,
            "a second connection to the model server"
        );
    }
}
