//! The scriptable upstream as a process, for load tests: `fake-upstream 127.0.0.1:9100`.
//! Every request gets the default answer (a short completion; streamed as SSE when asked).
//!
//! `FAKE_UPSTREAM_SLOW=EVERY_MS,COUNT` makes every streamed answer slow instead: COUNT chunks,
//! one every EVERY_MS milliseconds (for bench/memory.sh, which holds many streams open).
//!
//! `FAKE_UPSTREAM_TLS=1` serves HTTPS with the self-signed pair in testkit's `tls/` instead,
//! HTTP/2 or HTTP/1.1 by ALPN (a client trusts it with `SSL_CERT_FILE` pointing at the
//! certificate).

use std::time::Duration;

#[tokio::main]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9100".into());
    let slow = match std::env::var("FAKE_UPSTREAM_SLOW") {
        Ok(spec) => match parse_slow(&spec) {
            Some(slow) => Some(slow),
            None => {
                eprintln!("FAKE_UPSTREAM_SLOW must be EVERY_MS,COUNT (e.g. 500,240), not {spec:?}");
                std::process::exit(2);
            }
        },
        Err(_) => None,
    };
    let tls = std::env::var("FAKE_UPSTREAM_TLS").is_ok_and(|v| v == "1");
    let up = if tls {
        hearth_testkit::FakeUpstream::start_tls_on(&addr, true).await
    } else {
        hearth_testkit::FakeUpstream::start_on(&addr, true).await
    };
    if let Some((every, count)) = slow {
        up.slow_by_default(count, every);
    }
    println!("fake upstream on {}", up.endpoint());
    std::future::pending::<()>().await;
}

/// `EVERY_MS,COUNT` → (every, count).
fn parse_slow(spec: &str) -> Option<(Duration, usize)> {
    let (every, count) = spec.split_once(',')?;
    let every = every.trim().parse::<u64>().ok()?;
    let count = count.trim().parse::<usize>().ok()?;
    Some((Duration::from_millis(every), count))
}
