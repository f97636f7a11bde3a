//! The simulated cluster's nodes. Each serves the same API on its own address over the same
//! state (store, users and tokens, faults), as the nodes of a Qumulo cluster share one file
//! system and one token table. A node can be taken down, which closes its listener and resets
//! its connections as a dead machine would, and brought back up on the same port.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::{Mutex, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::node_http::{self, Life, Origin, Serving};

/// How long bringing a node up retries while its port is still taken.
const REBIND_DEADLINE: Duration = Duration::from_secs(2);

/// Whether a node accepts connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    /// Listening and serving.
    Up,
    /// Taken down: connections to its port are refused.
    Down,
}

/// One node as `GET /sim/nodes` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeStatus {
    /// Position in the cluster, from 0.
    pub index: usize,
    /// Base URL, the same in every state.
    pub url: String,
    /// Up or down.
    pub state: NodeState,
    /// API requests (outside `/sim/`) this node has received since the start, faulted ones
    /// included: shows how clients spread their requests over the nodes.
    pub requests: u64,
}

/// Errors of node control.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The index is not that of a node.
    #[error("no node {0}")]
    NoSuchNode(usize),
    /// The node's port could not be bound again.
    #[error("cannot bring node {index} up on {addr}: {source}")]
    Rebind {
        /// The node.
        index: usize,
        /// Its address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The simulator is shutting down.
    #[error("the simulator is stopping")]
    Stopping,
}

/// Every node of the cluster.
#[derive(Debug)]
pub struct Nodes {
    serving: Arc<Serving>,
    nodes: Vec<Node>,
    /// Cancelled when the simulator stops: every node's life is a child of it, and no node
    /// comes up again.
    stopped: CancellationToken,
}

#[derive(Debug)]
struct Node {
    addr: SocketAddr,
    url: String,
    requests: Arc<AtomicU64>,
    /// Mirrors `running.is_some()`, readable without waiting for an up or down in progress.
    up: AtomicBool,
    /// Present while the node is up. An async mutex: going down waits for the accept loop to
    /// end, and an up and a down of one node must not interleave.
    running: Mutex<Option<Running>>,
}

#[derive(Debug)]
struct Running {
    down: CancellationToken,
    closed: oneshot::Receiver<()>,
    task: JoinHandle<()>,
}

impl Nodes {
    /// Starts one node on each listener, in order; `scheme` is `https` or `http`.
    pub fn start(
        serving: Arc<Serving>,
        listeners: Vec<(TcpListener, SocketAddr)>,
        scheme: &str,
    ) -> Self {
        let stopped = CancellationToken::new();
        let nodes = listeners
            .into_iter()
            .enumerate()
            .map(|(index, (listener, addr))| {
                let requests = Arc::default();
                let running = spawn_life(&serving, &stopped, index, &requests, listener);
                Node {
                    addr,
                    url: format!("{scheme}://{addr}"),
                    requests,
                    up: AtomicBool::new(true),
                    running: Mutex::new(Some(running)),
                }
            })
            .collect();
        Nodes {
            serving,
            nodes,
            stopped,
        }
    }

    /// The base URL of each node, node 0 first.
    pub fn urls(&self) -> impl Iterator<Item = &str> {
        self.nodes.iter().map(|n| n.url.as_str())
    }

    /// The address of each node, node 0 first.
    pub fn addrs(&self) -> impl Iterator<Item = SocketAddr> {
        self.nodes.iter().map(|n| n.addr)
    }

    /// The state of every node.
    pub fn status(&self) -> Vec<NodeStatus> {
        (0..self.nodes.len()).map(|i| self.status_of(i)).collect()
    }

    fn status_of(&self, index: usize) -> NodeStatus {
        let node = &self.nodes[index];
        NodeStatus {
            index,
            url: node.url.clone(),
            state: if node.up.load(Ordering::SeqCst) {
                NodeState::Up
            } else {
                NodeState::Down
            },
            requests: node.requests.load(Ordering::Relaxed),
        }
    }

    fn node(&self, index: usize) -> Result<&Node, NodeError> {
        self.nodes.get(index).ok_or(NodeError::NoSuchNode(index))
    }

    /// Takes node `index` down; a no-op when it is down already. On return its listener is
    /// closed. When `origin` (the request asking) came in on that very node, its connection is
    /// spared to carry the answer; otherwise every connection of the node has been reset too.
    pub async fn down(
        &self,
        index: usize,
        origin: Option<&Origin>,
    ) -> Result<NodeStatus, NodeError> {
        let node = self.node(index)?;
        let mut running = node.running.lock().await;
        if let Some(run) = running.take() {
            node.up.store(false, Ordering::SeqCst);
            let own = origin.filter(|o| o.node == index);
            if let Some(origin) = own {
                origin.spare();
            }
            run.down.cancel();
            if own.is_some() {
                let _ = run.closed.await;
            } else {
                let _ = run.task.await;
            }
            tracing::info!(node = index, addr = %node.addr, "simulator node down");
        }
        drop(running);
        Ok(self.status_of(index))
    }

    /// Brings node `index` up again on its port; a no-op when it is up.
    pub async fn up(&self, index: usize) -> Result<NodeStatus, NodeError> {
        let node = self.node(index)?;
        let mut running = node.running.lock().await;
        if running.is_none() {
            if self.stopped.is_cancelled() {
                return Err(NodeError::Stopping);
            }
            let listener = rebind(node.addr)
                .await
                .map_err(|source| NodeError::Rebind {
                    index,
                    addr: node.addr,
                    source,
                })?;
            *running = Some(spawn_life(
                &self.serving,
                &self.stopped,
                index,
                &node.requests,
                listener,
            ));
            node.up.store(true, Ordering::SeqCst);
            tracing::info!(node = index, addr = %node.addr, "simulator node up");
        }
        drop(running);
        Ok(self.status_of(index))
    }

    /// Cuts every node at once, without waiting (for a handle dropped without `shutdown`).
    pub fn stop(&self) {
        self.stopped.cancel();
    }

    /// Stops every node and waits until their listeners and connections are gone.
    pub async fn shutdown(&self) {
        self.stop();
        for index in 0..self.nodes.len() {
            let _ = self.down(index, None).await;
        }
    }
}

/// Spawns a new life of node `index` on `listener`; `stopped` ends it with the simulator.
fn spawn_life(
    serving: &Arc<Serving>,
    stopped: &CancellationToken,
    index: usize,
    requests: &Arc<AtomicU64>,
    listener: TcpListener,
) -> Running {
    let down = stopped.child_token();
    let life = Arc::new(Life {
        node: index,
        requests: requests.clone(),
        down: down.clone(),
    });
    let (closed_tx, closed) = oneshot::channel();
    let task = tokio::spawn(node_http::serve(listener, serving.clone(), life, closed_tx));
    Running { down, closed, task }
}

/// Binds `addr` again, retrying while the port is still in use.
async fn rebind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let deadline = Instant::now() + REBIND_DEADLINE;
    loop {
        match TcpListener::bind(addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests;
