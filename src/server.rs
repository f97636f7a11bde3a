//! The accept loop: every accepted control connection is served by its own libunftp server.
//! The caller injects the listener and the stop signal, so tests use port 0 and production a
//! socket from systemd.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::ftp::Gateway;

/// Serves FTP on `listener` until `shutdown` completes, then closes the open sessions.
pub async fn run(listener: TcpListener, gateway: Arc<Gateway>, shutdown: impl Future<Output = ()>) {
    let mut sessions = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            Some(_) = sessions.join_next(), if !sessions.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::error!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let server = match gateway.server() {
            Ok(server) => server,
            Err(e) => {
                tracing::error!(error = %e, %peer, "cannot serve the connection");
                continue;
            }
        };
        tracing::debug!(%peer, "connection");
        sessions.spawn(async move {
            if let Err(e) = server.service(stream).await {
                tracing::warn!(%peer, error = %e, "session ended with an error");
            }
        });
    }
    sessions.shutdown().await;
}
