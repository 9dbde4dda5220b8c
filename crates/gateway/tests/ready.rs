//! Readiness follows the database: a real server on 127.0.0.1:0 answers 200, then 503 with the
//! reason once the database stops answering, while liveness stays 200.

use secrecy::SecretString;

mod common;

#[tokio::test]
async fn ready_turns_503_with_the_reason_when_the_database_is_gone() {
    let (registry, _dir) = common::registry().await;
    let gateway = hearth_gateway::build(
        registry.clone(),
        SecretString::from("x".repeat(20)),
        hearth_gateway::RouterOptions {
            loopback: true,
            ..Default::default()
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(hearth_gateway::serve(
        listener,
        gateway,
        hearth_gateway::ServeOptions::default(),
        async {
            let _ = stopped.await;
        },
    ));
    let http = reqwest::Client::new();

    let ready = http
        .get(format!("http://{addr}/monitoring/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);

    registry.close().await;
    let ready = http
        .get(format!("http://{addr}/monitoring/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
    assert!(
        body["reason"].as_str().unwrap().starts_with("database:"),
        "{body}"
    );
    let live = http
        .get(format!("http://{addr}/monitoring/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}
