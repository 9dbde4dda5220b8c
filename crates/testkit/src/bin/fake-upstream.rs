//! The scriptable upstream as a process, for load tests: `fake-upstream 127.0.0.1:9100`.
//! Every request gets the default answer (a short completion; streamed as SSE when asked).

#[tokio::main]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9100".into());
    let up = hearth_testkit::FakeUpstream::start_on(&addr, true).await;
    println!("fake upstream on {}", up.endpoint());
    std::future::pending::<()>().await;
}
