//! The simulator's routes: Qumulo's `/v1` endpoints and the `/sim` control endpoint.
//!
//! Extractors here turn every malformed request into Qumulo's JSON `decode_error` and a
//! missing or stale bearer token into 401, so handlers only see well-formed input.

mod control;
mod files;
mod identity;
mod tokens;

use std::sync::{Arc, Weak};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::routing::{delete, get, post};
use serde::de::DeserializeOwned;

use super::error::{ApiError, ApiResult, ErrorClass};
use super::faults::Faults;
use super::nodes::Nodes;
use super::store::Store;
use super::users::{Directory, User};

/// Everything the handlers share.
#[derive(Debug)]
pub struct Cluster {
    /// The file system.
    pub store: Store,
    /// Users, groups and sessions.
    pub users: Arc<Directory>,
    /// Injected faults.
    pub faults: Arc<Faults>,
    /// Reported by `GET /v1/cluster/settings`.
    pub cluster_name: String,
    /// The nodes serving this state, for `/sim/nodes`. Weak: the nodes hold the router, which
    /// holds this.
    pub nodes: Weak<Nodes>,
}

type State = axum::extract::State<Arc<Cluster>>;

/// Builds the router over `cluster`.
pub fn router(cluster: Arc<Cluster>) -> Router {
    // Every directory-like route is served with and without its trailing slash.
    let both =
        |r: Router<Arc<Cluster>>, path: &str, m: axum::routing::MethodRouter<Arc<Cluster>>| {
            r.route(path, m.clone()).route(&format!("{path}/"), m)
        };
    let mut r = Router::new()
        .route("/v1/session/login", post(identity::login))
        .route("/v1/session/who-am-i", get(identity::who_am_i))
        .route("/v1/session/roles", get(identity::roles))
        .route("/v1/version", get(identity::version))
        .route("/v1/cluster/settings", get(identity::cluster_settings))
        .route("/v1/file-system", get(identity::fs_stats))
        .route("/v1/identity/find", post(identity::find))
        .route("/v1/identity/expand", post(identity::expand))
        .route("/v1/files/{ref}/entries/{name}", delete(files::unlink))
        .route(
            "/sim/faults",
            get(control::get_faults)
                .put(control::put_faults)
                .patch(control::patch_faults),
        )
        .route("/sim/expire-tokens", post(control::expire_tokens))
        .route("/sim/logins", get(control::logins))
        .route("/sim/nodes", get(control::list_nodes))
        .route("/sim/nodes/{index}/down", post(control::node_down))
        .route("/sim/nodes/{index}/up", post(control::node_up));
    r = both(r, "/v1/files/{ref}", delete(files::delete));
    r = both(
        r,
        "/v1/files/{ref}/info/attributes",
        get(files::get_attrs).patch(files::patch_attrs),
    );
    r = both(
        r,
        "/v2/files/{ref}/info/acl",
        get(files::get_acl).put(files::put_acl),
    );
    r = both(
        r,
        "/v1/files/{ref}/entries",
        get(files::list).post(files::create),
    );
    r = both(
        r,
        "/v1/files/{ref}/data",
        get(files::read).put(files::replace).patch(files::write_at),
    );
    r = both(
        r,
        "/v1/auth/access-tokens",
        get(tokens::list).post(tokens::create),
    );
    r = both(
        r,
        "/v1/auth/access-tokens/{id}",
        get(tokens::get_one)
            .patch(tokens::modify)
            .delete(tokens::delete),
    );
    r = both(r, "/v1/users", get(identity::list_users));
    r = both(r, "/v1/users/{id}", get(identity::user));
    r = both(r, "/v1/users/{id}/groups", get(identity::user_groups));
    r = both(r, "/v1/groups", get(identity::list_groups));
    r = both(r, "/v1/groups/{id}", get(identity::group));
    r = both(r, "/v1/groups/{id}/members", get(identity::group_members));
    r.fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(cluster)
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        ErrorClass::NotFound,
        format!("No such endpoint {}", uri.path()),
    )
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        ErrorClass::MethodNotAllowed,
        format!("{method} is not allowed on {}", uri.path()),
    )
}

/// The authenticated user of a request (from `Authorization: Bearer …`).
pub struct Caller(pub User);

impl FromRequestParts<Arc<Cluster>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<Cluster>) -> ApiResult<Self> {
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| ApiError::new(ErrorClass::Unauthorized, "Need to log in first"))?;
        state.users.authenticate(token.trim()).cloned().map(Caller)
    }
}

/// Path parameters, percent-decoded; a bad one is a `decode_error`.
pub struct P<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for P<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> ApiResult<Self> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(t)| P(t))
            .map_err(|e| ApiError::new(ErrorClass::Decode, e.body_text()))
    }
}

/// Query parameters; a bad one is a `decode_error`.
pub struct Q<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Q<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> ApiResult<Self> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(t)| Q(t))
            .map_err(|e| ApiError::new(ErrorClass::Decode, e.body_text()))
    }
}

/// A JSON body (whatever the Content-Type, as qq always sends `application/json`); bad JSON is
/// a `decode_error`.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> ApiResult<Self> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::new(ErrorClass::Decode, e.body_text()))?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::new(ErrorClass::Decode, format!("Invalid JSON body: {e}")))
    }
}

/// Runs blocking file-system work on tokio's blocking pool.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::new(ErrorClass::Internal, format!("worker failed: {e}")))?
}
