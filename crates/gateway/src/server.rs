//! The listener: accepts connections, bounds how many are open and how long a client may
//! take to send its request head, and drains in-flight requests on shutdown with a deadline.
//!
//! Hearth serves HTTP/1.1 here (every client it has — GitLab, the OpenAI SDKs, IDE plugins —
//! speaks it on plain TCP), so hyper's header timer runs from the first byte of every
//! connection and again while a kept-alive connection waits for its next request.

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tower_service::Service;

use crate::Gateway;

/// Connections served past the cap, to answer health checks (and refuse the rest with 503)
/// rather than leave the load balancer without an answer. When all are taken, a new one
/// closes the oldest: a health check sends its request as soon as it connects, so it is
/// answered unless hundreds of connections arrive within its round trip.
pub const OVERFLOW_CONNECTIONS: usize = 256;
/// How long an overflow connection may take to send its request head.
const OVERFLOW_HEADER_TIMEOUT: Duration = Duration::from_secs(2);
/// One log line per this interval while the cap is hit, not one per connection.
const CAP_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The listener's limits.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Time a client has to send a request's head, and the longest a kept-alive connection
    /// may sit idle between requests.
    pub header_timeout: Duration,
    /// Open client connections served normally; more are answered by the overflow router.
    pub max_connections: usize,
    /// After the shutdown signal, how long requests in flight may take before they are cut.
    pub drain_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            header_timeout: Duration::from_secs(30),
            max_connections: 4096,
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// Serves the gateway's router on `listener` until `shutdown` resolves (its overflow router
/// answers connections beyond the cap). Then stops accepting, lets requests in flight finish
/// for up to the drain timeout, and returns, cutting what is left.
pub async fn serve(
    listener: TcpListener,
    gateway: Gateway,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let Gateway { router, overflow } = gateway;
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(options.max_connections.max(1)));
    let mut overflowing: VecDeque<AbortHandle> = VecDeque::with_capacity(OVERFLOW_CONNECTIONS);
    let cap_log = CapLog::default();
    let mut normal = hyper::server::conn::http1::Builder::new();
    normal
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_timeout);
    let mut refusing = hyper::server::conn::http1::Builder::new();
    refusing
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_timeout.min(OVERFLOW_HEADER_TIMEOUT))
        .keep_alive(false);

    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    accept_failed(&e, &cap_log).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        match slots.clone().try_acquire_owned() {
            Ok(permit) => {
                spawn_connection(
                    &normal,
                    router.clone(),
                    stream,
                    remote,
                    Some(permit),
                    &graceful,
                );
            }
            Err(_) => {
                cap_log.hit(options.max_connections);
                if overflowing.len() >= OVERFLOW_CONNECTIONS
                    && let Some(oldest) = overflowing.pop_front()
                {
                    oldest.abort();
                }
                let task =
                    spawn_connection(&refusing, overflow.clone(), stream, remote, None, &graceful);
                overflowing.push_back(task);
            }
        }
    }
    drop(listener);

    let open = graceful.count();
    if open > 0 {
        tracing::info!(
            connections = open,
            drain_timeout_s = options.drain_timeout.as_secs_f64(),
            "draining connections"
        );
    }
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(options.drain_timeout) => {
            tracing::warn!(
                drain_timeout_s = options.drain_timeout.as_secs_f64(),
                "requests still in flight at the drain deadline are cut"
            );
        }
    }
    Ok(())
}

fn spawn_connection(
    builder: &hyper::server::conn::http1::Builder,
    router: Router,
    stream: TcpStream,
    remote: SocketAddr,
    permit: Option<OwnedSemaphorePermit>,
    graceful: &GracefulShutdown,
) -> AbortHandle {
    // Small writes (SSE events) must leave at once, not wait for Nagle.
    let _ = stream.set_nodelay(true);
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(remote));
        router.clone().call(req.map(Body::new))
    });
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    let connection = graceful.watch(connection);
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(client = %remote, error = %e, "connection ended with an error");
        }
        drop(permit);
    })
    .abort_handle()
}

/// Accept errors: the per-connection ones are the client's; running out of file descriptors
/// is ours, and retrying at once would spin.
async fn accept_failed(e: &std::io::Error, log: &CapLog) {
    use std::io::ErrorKind as K;
    if matches!(
        e.kind(),
        K::ConnectionAborted | K::ConnectionReset | K::ConnectionRefused
    ) {
        return;
    }
    if log.due() {
        tracing::error!(error = %e, "cannot accept connections (open file limit?); retrying");
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// Rate-limits the "cap reached" line.
#[derive(Default)]
struct CapLog {
    epoch: std::sync::OnceLock<Instant>,
    /// Milliseconds since `epoch` before which no line is written.
    next_ms: AtomicU64,
    turned_away: AtomicU64,
}

impl CapLog {
    fn due(&self) -> bool {
        let now = self.epoch.get_or_init(Instant::now).elapsed().as_millis() as u64;
        let next = self.next_ms.load(Ordering::Relaxed);
        now >= next
            && self
                .next_ms
                .compare_exchange(
                    next,
                    now + CAP_LOG_INTERVAL.as_millis() as u64,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }

    fn hit(&self, cap: usize) {
        let n = self.turned_away.fetch_add(1, Ordering::Relaxed) + 1;
        if self.due() {
            self.turned_away.store(0, Ordering::Relaxed);
            tracing::warn!(
                max_connections = cap,
                turned_away = n,
                "connection cap reached: new connections get 503 (health checks still answer); raise --max-connections or add replicas"
            );
        }
    }
}
