//! The control endpoint outside `/v1`: fault settings and token expiry, for tests.

use axum::Json;
use serde_json::{Value, json};

use super::{JsonBody, State};
use crate::sim::error::{ApiError, ApiResult, ErrorClass};
use crate::sim::faults::{FaultPatch, FaultSettings};

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
