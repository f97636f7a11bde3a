//! Long-lived access tokens, as the SDK's `access_tokens` module uses them:
//! `POST /v1/auth/access-tokens/` (`{"user": api_identity, "expiration_time"?}` →
//! `{"id", "bearer_token"}`), `GET` of the list (paged, `?user=` to filter) and of one token,
//! `PATCH` (`expiration_time`, `enabled`) and `DELETE`. Only administrators may use them.

use axum::Json;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Caller, JsonBody, P, Q, State};
use crate::sim::error::{ApiError, ApiResult, ErrorClass};
use crate::sim::users::{AccessTokenChange, User};

/// Where the list starts over (the SDK follows `paging.next`).
const URI: &str = "/v1/auth/access-tokens/";
/// Entries per page when the client names no limit.
const DEFAULT_LIMIT: usize = 1000;

fn admin_only(user: &User) -> ApiResult<()> {
    if user.admin {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorClass::Forbidden,
            format!("{} may not manage access tokens", user.name),
        ))
    }
}

fn time(text: &str) -> ApiResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            ApiError::new(
                ErrorClass::Decode,
                format!("expiration_time {text:?} is not an RFC 3339 time: {e}"),
            )
        })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Create {
    user: Value,
    #[serde(default)]
    expiration_time: Option<String>,
}

pub(super) async fn create(
    state: State,
    Caller(caller): Caller,
    JsonBody(body): JsonBody<Create>,
) -> ApiResult<Json<Value>> {
    admin_only(&caller)?;
    let expires = body.expiration_time.as_deref().map(time).transpose()?;
    let token = state
        .users
        .create_access_token(&caller, &body.user, expires)?;
    tracing::info!(creator = %caller.name, id = %token["id"], "simulator access token created");
    Ok(Json(token))
}

#[derive(Deserialize)]
pub(super) struct ListQuery {
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    after: Option<u64>,
}

pub(super) async fn list(
    state: State,
    Caller(caller): Caller,
    Q(query): Q<ListQuery>,
) -> ApiResult<Json<Value>> {
    admin_only(&caller)?;
    let identity = query.user.as_deref().map(identity_spec).transpose()?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    let (entries, last) =
        state
            .users
            .access_tokens(identity.as_ref(), query.after.unwrap_or(0), limit)?;
    let next = last.map(|after| {
        let user = query
            .user
            .as_deref()
            .map(|u| {
                format!(
                    "&user={}",
                    percent_encoding::utf8_percent_encode(u, percent_encoding::NON_ALPHANUMERIC)
                )
            })
            .unwrap_or_default();
        format!("{URI}?after={after}&limit={limit}{user}")
    });
    Ok(Json(json!({"entries": entries, "paging": {"next": next}})))
}

pub(super) async fn get_one(
    state: State,
    Caller(caller): Caller,
    P(id): P<String>,
) -> ApiResult<Json<Value>> {
    admin_only(&caller)?;
    state.users.access_token(&id).map(Json)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Modify {
    #[serde(default)]
    expiration_time: Option<String>,
    #[serde(default)]
    enabled: Option<bool>,
}

pub(super) async fn modify(
    state: State,
    Caller(caller): Caller,
    P(id): P<String>,
    JsonBody(body): JsonBody<Modify>,
) -> ApiResult<Json<Value>> {
    admin_only(&caller)?;
    let change = AccessTokenChange {
        expires: body.expiration_time.as_deref().map(time).transpose()?,
        enabled: body.enabled,
    };
    state.users.modify_access_token(&id, &change).map(Json)
}

pub(super) async fn delete(
    state: State,
    Caller(caller): Caller,
    P(id): P<String>,
) -> ApiResult<StatusCode> {
    admin_only(&caller)?;
    state.users.delete_access_token(&id)?;
    tracing::info!(by = %caller.name, %id, "simulator access token deleted");
    Ok(StatusCode::OK)
}

/// The `api_identity` of an identity as the SDK writes it in `?user=` (`str(Identity)`): a
/// name, a SID, or `TYPE:VALUE` (`auth_id:501`, `local:alice`, `name:alice`, `sid:S-…`).
fn identity_spec(spec: &str) -> ApiResult<Value> {
    let bad = || {
        ApiError::new(
            ErrorClass::Decode,
            format!("{spec:?} is not an identity (a name, a SID or TYPE:VALUE)"),
        )
    };
    match spec.split_once(':') {
        None if spec.is_empty() => Err(bad()),
        None if spec.to_ascii_uppercase().starts_with("S-1-") => Ok(json!({"sid": spec})),
        None => Ok(json!({"name": spec})),
        Some((kind, value)) => match kind.trim().to_ascii_lowercase().as_str() {
            "auth_id" => Ok(json!({"auth_id": value.trim()})),
            "sid" => Ok(json!({"sid": value.trim()})),
            "name" | "local" => Ok(json!({"name": value.trim()})),
            _ => Err(bad()),
        },
    }
}
