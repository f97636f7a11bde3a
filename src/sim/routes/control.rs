//! The control endpoint outside `/v1`, for tests: fault settings, token expiry, and nodes
//! going down and coming back up.

use std::sync::Arc;

use axum::{Extension, Json};
use serde_json::{Value, json};

use super::{JsonBody, P, State};
use crate::sim::error::{ApiError, ApiResult, ErrorClass};
use crate::sim::faults::{FaultPatch, FaultSettings};
use crate::sim::node_http::Origin;
use crate::sim::nodes::{NodeError, NodeStatus, Nodes};

pub(super) async fn get_faults(state: State) -> Json<FaultSettings> {
    Json(state.faults.get())
}

pub(super) async fn put_faults(
    state: State,
    JsonBody(new): JsonBody<FaultSettings>,
) -> ApiResult<Json<FaultSettings>> {
    state
        .faults
        .set(new)
        .map_err(|e| ApiError::new(ErrorClass::Decode, e))?;
    tracing::info!(faults = ?state.faults.get(), "simulator faults set");
    Ok(Json(state.faults.get()))
}

pub(super) async fn patch_faults(
    state: State,
    JsonBody(patch): JsonBody<FaultPatch>,
) -> ApiResult<Json<FaultSettings>> {
    let mut new = state.faults.get();
    new.apply(patch);
    put_faults(state, JsonBody(new)).await
}

pub(super) async fn expire_tokens(state: State) -> Json<Value> {
    let expired = state.users.expire_all();
    tracing::info!(expired, "simulator tokens expired");
    Json(json!({"expired": expired}))
}

/// `GET /sim/logins`: the logins accepted and refused since the start.
pub(super) async fn logins(state: State) -> Json<Value> {
    let (accepted, refused) = state.users.login_counts();
    Json(json!({"accepted": accepted, "refused": refused}))
}

/// The body of `GET /sim/nodes`.
#[derive(serde::Serialize)]
pub(super) struct NodeList {
    nodes: Vec<NodeStatus>,
}

pub(super) async fn list_nodes(state: State) -> ApiResult<Json<NodeList>> {
    let nodes = nodes(&state)?.status();
    Ok(Json(NodeList { nodes }))
}

pub(super) async fn node_down(
    state: State,
    origin: Option<Extension<Origin>>,
    P(index): P<String>,
) -> ApiResult<Json<NodeStatus>> {
    let origin = origin.map(|Extension(o)| o);
    let status = nodes(&state)?
        .down(node_index(&index)?, origin.as_ref())
        .await
        .map_err(node_error)?;
    Ok(Json(status))
}

pub(super) async fn node_up(state: State, P(index): P<String>) -> ApiResult<Json<NodeStatus>> {
    let status = nodes(&state)?
        .up(node_index(&index)?)
        .await
        .map_err(node_error)?;
    Ok(Json(status))
}

fn nodes(state: &State) -> ApiResult<Arc<Nodes>> {
    state
        .nodes
        .upgrade()
        .ok_or_else(|| node_error(NodeError::Stopping))
}

/// A node index from the path; anything else names no node.
fn node_index(s: &str) -> ApiResult<usize> {
    s.parse()
        .map_err(|_| ApiError::new(ErrorClass::NotFound, format!("No node {s}")))
}

fn node_error(e: NodeError) -> ApiError {
    let class = match e {
        NodeError::NoSuchNode(_) => ErrorClass::NotFound,
        NodeError::Rebind { .. } | NodeError::Stopping => ErrorClass::ServiceUnavailable,
    };
    ApiError::new(class, e.to_string())
}
