//! The HTTP(S) side of a simulated node: one accept loop per node, TLS, and hyper connections, so that
//! a fault can close a connection without an answer, and a node can die as a machine would: its
//! listener closes and every one of its connections is reset, even in the middle of a body.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::either::Either;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::error::{ApiError, ErrorClass};
use super::faults::{Faults, Verdict};

/// What every node serves: they differ only in their address.
pub struct Serving {
    /// The routes over the cluster state all nodes share.
    pub app: Router,
    /// One TLS identity for every node (they all listen on the same host).
    pub tls: Option<TlsAcceptor>,
    /// The fault switches, shared as a real cluster shares its failures' causes.
    pub faults: Arc<Faults>,
}

impl std::fmt::Debug for Serving {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Serving")
            .field("tls", &self.tls.is_some())
            .field("faults", &self.faults)
            .finish_non_exhaustive()
    }
}

/// One life of a node, from being brought up to being taken down.
#[derive(Debug)]
pub struct Life {
    /// The node's index, recorded in each request's [`Origin`].
    pub node: usize,
    /// API requests received by the node, over all its lives (shared with the node).
    pub requests: Arc<AtomicU64>,
    /// Cancelled when the node goes down: the accept loop ends and connections are cut.
    pub down: CancellationToken,
}

/// The node and connection a request came in on, as a request extension, so that a node asked
/// to take itself down can still answer that one request.
#[derive(Debug, Clone)]
pub struct Origin {
    /// Index of the node that received the request.
    pub node: usize,
    /// Set before the node goes down: this connection finishes its request, then closes.
    spared: Arc<AtomicBool>,
}

impl Origin {
    /// Lets this request's connection outlive its node long enough to send the answer.
    pub fn spare(&self) {
        self.spared.store(true, Ordering::SeqCst);
    }
}

/// The error that makes hyper close a connection without answering (an injected drop).
#[derive(Debug, thiserror::Error)]
#[error("connection dropped by an injected fault")]
struct Dropped;

/// Serves `serving` on `listener` until `life.down` is cancelled. The listener is then closed
/// (new connections are refused), `closed` fires, and the loop waits for its connections, which
/// end at once: cut, or for a spared one, after its answer.
pub async fn serve(
    listener: TcpListener,
    serving: Arc<Serving>,
    life: Arc<Life>,
    closed: oneshot::Sender<()>,
) {
    let mut connections = JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            () = life.down.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "simulator accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        connections.spawn(connection(stream, peer, serving.clone(), life.clone()));
    }
    drop(listener);
    let _ = closed.send(());
    while connections.join_next().await.is_some() {}
}

/// Serves one connection until the client closes it or the node goes down.
async fn connection(stream: TcpStream, peer: SocketAddr, serving: Arc<Serving>, life: Arc<Life>) {
    let origin = Origin {
        node: life.node,
        spared: Arc::default(),
    };
    let io = NodeIo {
        tcp: stream,
        down: life.down.clone(),
        spared: origin.spared.clone(),
    };
    let io = match &serving.tls {
        None => Either::Right(io),
        Some(acceptor) => tokio::select! {
            () = life.down.cancelled() => return,
            accepted = acceptor.accept(io) => match accepted {
                Ok(tls) => Either::Left(tls),
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "simulator TLS handshake failed");
                    return;
                }
            },
        },
    };
    let service = {
        let (serving, life, origin) = (serving.clone(), life.clone(), origin.clone());
        hyper::service::service_fn(move |req| {
            gate(serving.clone(), life.clone(), origin.clone(), req)
        })
    };
    let conn = http1::Builder::new().serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let finished = tokio::select! {
        result = conn.as_mut() => Some(result),
        () = life.down.cancelled() => None,
    };
    let result = match finished {
        Some(result) => result,
        None if origin.spared.load(Ordering::SeqCst) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
        // Dropping the connection resets it (see `NodeIo`), whatever it was doing.
        None => return,
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "simulator connection ended");
    }
}

/// Counts an API request, applies the fault settings to it, then hands it to the router. The
/// control endpoint (`/sim/…`) is never faulted nor counted, so tests can always switch faults
/// off again and read the counters without changing them.
async fn gate(
    serving: Arc<Serving>,
    life: Arc<Life>,
    origin: Origin,
    mut req: hyper::Request<Incoming>,
) -> Result<Response, Dropped> {
    if !req.uri().path().starts_with("/sim/") {
        life.requests.fetch_add(1, Ordering::Relaxed);
        let (latency, verdict) = serving.faults.decide();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        match verdict {
            Verdict::Serve => {}
            Verdict::Drop => return Err(Dropped),
            Verdict::Fail => {
                return Ok(ApiError::new(
                    ErrorClass::ServiceUnavailable,
                    "Injected fault: service unavailable",
                )
                .into_response());
            }
        }
    }
    req.extensions_mut().insert(origin);
    let req = req.map(Body::new);
    let response: Result<Response, Infallible> = serving.app.clone().oneshot(req).await;
    Ok(response.unwrap_or_else(|never| match never {}))
}

/// A node's TCP connection. Dropped after its node went down (and not spared), it is reset
/// instead of closed, so the peer sees an error, never what could pass for the end of a body.
struct NodeIo {
    tcp: TcpStream,
    down: CancellationToken,
    spared: Arc<AtomicBool>,
}

impl Drop for NodeIo {
    fn drop(&mut self) {
        if self.down.is_cancelled() && !self.spared.load(Ordering::SeqCst) {
            // SO_LINGER 0: close() sends RST and discards what is still unsent.
            let _ = self.tcp.set_zero_linger();
        }
    }
}

impl AsyncRead for NodeIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for NodeIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}
