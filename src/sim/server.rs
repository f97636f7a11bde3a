//! The simulator's HTTP(S) server: its own accept loop, TLS, and hyper connections, so that a
//! fault can close a connection without an answer, as a failing node would.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use super::error::{ApiError, ErrorClass};
use super::faults::{Faults, Verdict};

/// The error that makes hyper close a connection without answering (an injected drop).
#[derive(Debug, thiserror::Error)]
#[error("connection dropped by an injected fault")]
struct Dropped;

/// Serves `app` on `listener` until `shutdown` completes; open connections are then closed.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    faults: Arc<Faults>,
    shutdown: impl Future<Output = ()>,
) {
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
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
        let (app, faults, tls) = (app.clone(), faults.clone(), tls.clone());
        connections.spawn(async move {
            let service =
                hyper::service::service_fn(move |req| gate(app.clone(), faults.clone(), req));
            let result = match tls {
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(s) => {
                        http1::Builder::new()
                            .serve_connection(TokioIo::new(s), service)
                            .await
                    }
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "simulator TLS handshake failed");
                        return;
                    }
                },
                None => {
                    http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "simulator connection ended");
            }
        });
    }
    connections.shutdown().await;
}

/// Applies the fault settings to an API request, then hands it to the router. The control
/// endpoint (`/sim/…`) is never faulted, so tests can always switch faults off again.
async fn gate(
    app: Router,
    faults: Arc<Faults>,
    req: hyper::Request<Incoming>,
) -> Result<Response, Dropped> {
    if !req.uri().path().starts_with("/sim/") {
        let (latency, verdict) = faults.decide();
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
    let req = req.map(Body::new);
    let response: Result<Response, Infallible> = app.oneshot(req).await;
    Ok(response.unwrap_or_else(|never| match never {}))
}
