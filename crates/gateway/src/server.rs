//! The listener: accepts connections, bounds how many are open and how long a client may
//! take to send its request head, and drains in-flight requests on shutdown with a deadline.
//!
//! Plain TCP is HTTP/1.1 only (every client Hearth has — GitLab, the OpenAI SDKs, IDE plugins
//! — speaks it there), so hyper's header timer runs from the first byte of every connection
//! and again while a kept-alive connection waits for its next request. With TLS, HTTP/2 is
//! offered too by ALPN; the header timeout then also bounds the handshake and the wait for the
//! first bytes after it, so a client that never finishes it, or falls silent after it, cannot
//! hold a connection slot.

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tower_service::Service;

use crate::Gateway;
use crate::tls::Tls;

/// Connections served past the cap, to answer health checks (and refuse the rest with 503)
/// rather than leave the load balancer without an answer. When all are taken, a new one
/// closes the oldest: a health check sends its request as soon as it connects, so it is
/// answered unless hundreds of connections arrive within its round trip.
pub const OVERFLOW_CONNECTIONS: usize = 256;
/// How long an overflow connection may take to send its request head.
const OVERFLOW_HEADER_TIMEOUT: Duration = Duration::from_secs(2);
/// One log line per this interval while the cap is hit, not one per connection.
const CAP_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// HTTP/2 streams one connection may have open at once; each may hold a model-server call.
const MAX_H2_STREAMS: u32 = 256;
/// How long an HTTP/2 client has to answer a keep-alive ping before its connection is closed.
const H2_PING_TIMEOUT: Duration = Duration::from_secs(20);

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
    /// Serve HTTPS (HTTP/1.1 and HTTP/2) with this certificate instead of plain HTTP/1.1.
    pub tls: Option<Tls>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            header_timeout: Duration::from_secs(30),
            max_connections: 4096,
            drain_timeout: Duration::from_secs(30),
            tls: None,
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
    let overflow = crate::Api::new(overflow);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(options.max_connections.max(1)));
    let mut overflowing: VecDeque<AbortHandle> = VecDeque::with_capacity(OVERFLOW_CONNECTIONS);
    let cap_log = CapLog::default();
    let normal = Protocols::new(options.header_timeout, true);
    let refusing = Protocols::new(options.header_timeout.min(OVERFLOW_HEADER_TIMEOUT), false);
    let tls = options.tls.clone();

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
                    tls.as_ref(),
                    router.clone(),
                    stream,
                    remote,
                    Some(permit),
                    graceful.watcher(),
                );
            }
            Err(_) => {
                cap_log.hit(options.max_connections);
                if overflowing.len() >= OVERFLOW_CONNECTIONS
                    && let Some(oldest) = overflowing.pop_front()
                {
                    oldest.abort();
                }
                let task = spawn_connection(
                    &refusing,
                    tls.as_ref(),
                    overflow.clone(),
                    stream,
                    remote,
                    None,
                    graceful.watcher(),
                );
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

/// The connection settings for one kind of connection (served normally, or past the cap).
#[derive(Clone)]
struct Protocols {
    h1: http1::Builder,
    h2: http2::Builder<TokioExecutor>,
    /// Bounds the TLS handshake, like the request head on plain HTTP/1.1.
    handshake_timeout: Duration,
}

impl Protocols {
    fn new(header_timeout: Duration, keep_alive: bool) -> Protocols {
        let mut h1 = http1::Builder::new();
        h1.timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .keep_alive(keep_alive);
        let mut h2 = http2::Builder::new(TokioExecutor::new());
        // HTTP/2 has no request-head timer; pings find dead peers instead, and a client that
        // stops answering them loses its connection (and its slot).
        h2.timer(TokioTimer::new())
            .max_concurrent_streams(if keep_alive { MAX_H2_STREAMS } else { 1 })
            .keep_alive_interval(Some(header_timeout))
            .keep_alive_timeout(H2_PING_TIMEOUT);
        Protocols {
            h1,
            h2,
            handshake_timeout: header_timeout,
        }
    }
}

fn spawn_connection(
    protocols: &Protocols,
    tls: Option<&Tls>,
    router: crate::Api,
    stream: TcpStream,
    remote: SocketAddr,
    permit: Option<OwnedSemaphorePermit>,
    watcher: Watcher,
) -> AbortHandle {
    // Small writes (SSE events) must leave at once, not wait for Nagle.
    let _ = stream.set_nodelay(true);
    let protocols = protocols.clone();
    let acceptor = tls.map(Tls::acceptor);
    tokio::spawn(async move {
        match acceptor {
            None => serve_http1(&protocols.h1, stream, router, remote, watcher).await,
            Some(acceptor) => {
                // One deadline for the handshake and the first bytes after it: HTTP/2 has no
                // request-head timer, so a client that stays silent after choosing it would
                // otherwise hold its slot for good.
                let opening = async {
                    let mut stream = acceptor.accept(stream).await?;
                    let mut first = vec![0u8; 4096];
                    let n = stream.read(&mut first).await?;
                    first.truncate(n);
                    Ok::<_, std::io::Error>((stream, first))
                };
                let (stream, first) =
                    match tokio::time::timeout(protocols.handshake_timeout, opening).await {
                        Ok(Ok((_, first))) if first.is_empty() => return,
                        Ok(Ok(opened)) => opened,
                        Ok(Err(e)) => {
                            tracing::debug!(client = %remote, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(client = %remote, "TLS handshake or first request not in time; closed");
                            return;
                        }
                    };
                let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                let stream = Prefixed::new(first, stream);
                if h2 {
                    let service = service(router, remote);
                    let connection = protocols
                        .h2
                        .serve_connection(TokioIo::new(stream), service);
                    if let Err(e) = watcher.watch(connection).await {
                        tracing::debug!(client = %remote, error = %e, "connection ended with an error");
                    }
                } else {
                    serve_http1(&protocols.h1, stream, router, remote, watcher).await;
                }
            }
        }
        drop(permit);
    })
    .abort_handle()
}

async fn serve_http1<I>(
    builder: &http1::Builder,
    io: I,
    router: crate::Api,
    remote: SocketAddr,
    watcher: Watcher,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let connection = builder.serve_connection(TokioIo::new(io), service(router, remote));
    if let Err(e) = watcher.watch(connection).await {
        tracing::debug!(client = %remote, error = %e, "connection ended with an error");
    }
}

/// The router as a hyper service that knows the client's address.
fn service(
    router: crate::Api,
    remote: SocketAddr,
) -> impl hyper::service::Service<
    hyper::Request<Incoming>,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future = impl Future<Output = Result<axum::response::Response, std::convert::Infallible>>
             + Send
             + 'static,
> + Clone
+ Send
+ 'static {
    hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(remote));
        // Called without `poll_ready`: every layer of the API passes readiness on from axum's
        // Router, which is always ready.
        router.clone().call(req.map(Body::new))
    })
}

/// A stream whose first bytes were already read (to bound the wait for them): hands them
/// out again before reading on.
struct Prefixed<T> {
    prefix: Vec<u8>,
    at: usize,
    inner: T,
}

impl<T> Prefixed<T> {
    fn new(prefix: Vec<u8>, inner: T) -> Self {
        Prefixed {
            prefix,
            at: 0,
            inner,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Prefixed<T> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.at < this.prefix.len() {
            let rest = &this.prefix[this.at..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.at += n;
            if this.at == this.prefix.len() {
                this.prefix = Vec::new();
                this.at = 0;
            }
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Prefixed<T> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
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
