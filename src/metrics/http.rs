//! The HTTP listener of `/health`, `/ready` and `/metrics` (axum on hyper). Bounded so that
//! it cannot become a way in: a few connections at once (more are closed at once), a few
//! seconds to send a request's head, a minute per connection; nothing it does waits on the
//! FTP side.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::Metrics;
use crate::state::AcceptFailures;

/// Connections served at once; more are closed as soon as they are accepted.
const MAX_CONNECTIONS: usize = 16;
/// How long a client may take to send a request's head (also the wait for the next request
/// on a kept-alive connection).
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one connection may last, requests included.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(60);
/// The content type of the text `prometheus-client` encodes (OpenMetrics).
const METRICS_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The routes: other paths are 404, other methods on these paths 405.
fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(render))
        .with_state(metrics)
}

async fn health() -> &'static str {
    "ok\n"
}

async fn ready(State(metrics): State<Arc<Metrics>>) -> Response {
    match metrics.ready().await {
        Ok(()) => "ready\n".into_response(),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", why.text()),
        )
            .into_response(),
    }
}

async fn render(State(metrics): State<Arc<Metrics>>) -> Response {
    match metrics.render().await {
        Ok(text) => {
            let mut resp = text.into_response();
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(METRICS_TYPE));
            resp
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

/// Serves `listener` (passed by systemd when `from_systemd`) until the process ends: a stop
/// does not close it, so `/ready` says `draining` while the sessions finish.
pub async fn serve(listener: TcpListener, from_systemd: bool, metrics: Arc<Metrics>) {
    let at = listener
        .local_addr()
        .map_or_else(|_| "?".to_string(), |a| a.to_string());
    let how = if from_systemd {
        "socket from systemd"
    } else {
        "bound"
    };
    tracing::info!("metrics, /health and /ready on http://{at} ({how})");
    let app = router(metrics);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut failures = AcceptFailures::default();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                if failures.failed() {
                    tracing::warn!(error = %e, "metrics listener: accept failed");
                }
                tokio::time::sleep(AcceptFailures::PAUSE).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "metrics listener: too many connections, closing one");
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT);
            let conn = http.serve_connection(TokioIo::new(stream), service);
            if tokio::time::timeout(CONNECTION_TIMEOUT, conn)
                .await
                .is_err()
            {
                tracing::debug!(%peer, "metrics listener: connection closed after its time");
            }
            drop(slot);
        });
    }
}
