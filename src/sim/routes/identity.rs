//! Session, cluster and identity endpoints: login, who-am-i, roles, version, cluster settings,
//! file-system capacity, local users and groups, identity find and expand.
//!
//! Inferred and chosen here: any logged-in user may read users, groups and identities (the
//! gateway resolves owner names with the user's own token); only administrators may read the
//! cluster settings.

use axum::Json;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Caller, JsonBody, P, State, blocking};
use crate::sim::error::{ApiError, ApiResult, ErrorClass};
use crate::sim::users::{self, ADMINS_GROUP, GROUPS, USERS_GROUP};

/// The version the simulator reports, in Qumulo's format.
pub const REVISION: &str = "Qumulo Core 7.10.2";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Login {
    username: String,
    password: String,
}

pub(super) async fn login(state: State, JsonBody(body): JsonBody<Login>) -> ApiResult<Json<Value>> {
    match state.users.login(&body.username, &body.password) {
        Ok(token) => {
            tracing::debug!(user = %body.username, "simulator login");
            Ok(Json(json!({"bearer_token": token})))
        }
        Err(e) => {
            tracing::info!(user = %body.username, "simulator login refused");
            Err(e)
        }
    }
}

pub(super) async fn who_am_i(Caller(user): Caller) -> Json<Value> {
    let mut me = user.to_json();
    let privileges: Vec<&str> = if user.admin {
        vec![
            "PRIVILEGE_CLUSTER_READ",
            "PRIVILEGE_CLUSTER_WRITE",
            "PRIVILEGE_FILE_FULL_ACCESS",
            "PRIVILEGE_IDENTITY_READ",
        ]
    } else {
        vec![]
    };
    me["privileges"] = json!(privileges);
    Json(me)
}

pub(super) async fn roles(Caller(user): Caller) -> Json<Value> {
    Json(if user.admin {
        json!(["Administrators"])
    } else {
        json!([])
    })
}

pub(super) async fn version() -> Json<Value> {
    Json(json!({
        "revision_id": REVISION,
        "build_id": concat!("qftpd-sim-", env!("CARGO_PKG_VERSION")),
        "flavor": "release",
        "build_date": "2026-01-01T00:00:00Z",
    }))
}

pub(super) async fn cluster_settings(state: State, Caller(user): Caller) -> ApiResult<Json<Value>> {
    if !user.admin {
        return Err(ApiError::new(
            ErrorClass::Forbidden,
            format!("{} may not read cluster settings", user.name),
        ));
    }
    Ok(Json(json!({"cluster_name": state.cluster_name})))
}

pub(super) async fn fs_stats(state: State, _caller: Caller) -> ApiResult<Json<Value>> {
    blocking(move || state.store.fs_stats()).await.map(Json)
}

fn parse_id(id: &str) -> ApiResult<u64> {
    id.parse()
        .map_err(|_| ApiError::new(ErrorClass::Decode, format!("{id:?} is not an id")))
}

fn no_such(kind: &str, id: &str) -> ApiError {
    ApiError::new(
        ErrorClass::NoSuchIdentity,
        format!("No local {kind} with id {id}"),
    )
}

pub(super) async fn list_users(state: State, _caller: Caller) -> Json<Value> {
    Json(Value::Array(
        state
            .users
            .users()
            .iter()
            .map(users::User::to_json)
            .collect(),
    ))
}

pub(super) async fn user(
    state: State,
    _caller: Caller,
    P(id): P<String>,
) -> ApiResult<Json<Value>> {
    let u = state
        .users
        .by_id(parse_id(&id)?)
        .ok_or_else(|| no_such("user", &id))?;
    Ok(Json(u.to_json()))
}

pub(super) async fn user_groups(
    state: State,
    _caller: Caller,
    P(id): P<String>,
) -> ApiResult<Json<Value>> {
    let u = state
        .users
        .by_id(parse_id(&id)?)
        .ok_or_else(|| no_such("user", &id))?;
    let groups = u
        .groups()
        .into_iter()
        .filter_map(|g| users::group_name(g).map(|n| users::group_json(g, n)));
    Ok(Json(Value::Array(groups.collect())))
}

pub(super) async fn list_groups(_caller: Caller) -> Json<Value> {
    Json(Value::Array(
        GROUPS
            .iter()
            .map(|(g, n)| users::group_json(*g, n))
            .collect(),
    ))
}

pub(super) async fn group(_caller: Caller, P(id): P<String>) -> ApiResult<Json<Value>> {
    let gid = parse_id(&id)?;
    let name = users::group_name(gid).ok_or_else(|| no_such("group", &id))?;
    Ok(Json(users::group_json(gid, name)))
}

pub(super) async fn group_members(
    state: State,
    _caller: Caller,
    P(id): P<String>,
) -> ApiResult<Json<Value>> {
    let gid = parse_id(&id)?;
    users::group_name(gid).ok_or_else(|| no_such("group", &id))?;
    let members = state
        .users
        .users()
        .iter()
        .filter(|u| u.groups().contains(&gid))
        .map(users::User::to_json);
    Ok(Json(Value::Array(members.collect())))
}

pub(super) async fn find(
    state: State,
    _caller: Caller,
    JsonBody(query): JsonBody<Value>,
) -> ApiResult<Json<Value>> {
    state.users.find_identity(&query).map(Json)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Expand {
    id: Value,
    #[serde(default)]
    #[allow(
        dead_code,
        reason = "accepted as Qumulo does; the simulator has no trusts to expand"
    )]
    equivalent_ids: Option<Value>,
}

pub(super) async fn expand(
    state: State,
    _caller: Caller,
    JsonBody(body): JsonBody<Expand>,
) -> ApiResult<Json<Value>> {
    let id = state.users.find_identity(&body.id)?;
    let auth_id = id["auth_id"]
        .as_str()
        .and_then(|a| a.parse::<u64>().ok())
        .unwrap_or_default();
    let (kind, groups) = match state.users.by_id(auth_id) {
        Some(u) => ("USER", u.groups()),
        None if auth_id == ADMINS_GROUP || auth_id == USERS_GROUP => ("GROUP", vec![]),
        None => ("UNKNOWN", vec![]),
    };
    let group_ids: Vec<Value> = groups
        .into_iter()
        .filter_map(|g| users::group_name(g).map(|n| users::group_identity(g, n)))
        .collect();
    Ok(Json(json!({
        "id": id,
        "type": kind,
        "smb_id": id,
        "nfs_id": null,
        "equivalent_ids": [],
        "group_ids": group_ids,
    })))
}
