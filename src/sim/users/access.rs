//! Long-lived access tokens (`/v1/auth/access-tokens/`): `access-v1:<…>` strings an
//! administrator makes for a user, acting as that user until deleted, disabled or expired.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::{Directory, User, random_token};
use crate::sim::error::{ApiError, ApiResult, ErrorClass};

/// The access tokens and the id of the next one.
#[derive(Debug, Default)]
pub(super) struct AccessTokens {
    last_id: u64,
    tokens: Vec<AccessToken>,
}

/// A long-lived access token.
#[derive(Debug, Clone)]
struct AccessToken {
    id: u64,
    bearer: String,
    /// The user it acts as.
    user: u64,
    /// The administrator who made it.
    creator: u64,
    created: DateTime<Utc>,
    expires: Option<DateTime<Utc>>,
    enabled: bool,
}

/// The prefix of every access token's bearer string.
pub const ACCESS_TOKEN_PREFIX: &str = "access-v1:";

/// A change to an access token (`PATCH /v1/auth/access-tokens/{id}`).
#[derive(Debug, Default)]
pub struct AccessTokenChange {
    /// New expiration time.
    pub expires: Option<DateTime<Utc>>,
    /// Enable or disable it.
    pub enabled: Option<bool>,
}

impl Directory {
    pub(super) fn authenticate_access(&self, bearer: &str) -> ApiResult<&User> {
        let refused = |why: &str| ApiError::new(ErrorClass::Unauthorized, why.to_string());
        let access = self.access.lock().unwrap_or_else(|p| p.into_inner());
        let token = access
            .tokens
            .iter()
            .find(|t| t.bearer == bearer)
            .ok_or_else(|| refused("Invalid bearer token"))?;
        if !token.enabled {
            return Err(refused("Access token is disabled"));
        }
        if token.expires.is_some_and(|e| e <= Utc::now()) {
            return Err(refused("Access token expired"));
        }
        self.by_id(token.user)
            .ok_or_else(|| refused("Unknown user"))
    }

    /// Makes a long-lived access token for the user `identity` names (an `api_identity`),
    /// on behalf of `creator`; returns `{"id", "bearer_token"}`.
    pub fn create_access_token(
        &self,
        creator: &User,
        identity: &Value,
        expires: Option<DateTime<Utc>>,
    ) -> ApiResult<Value> {
        let user = self.user_of(identity)?;
        let mut access = self.access.lock().unwrap_or_else(|p| p.into_inner());
        access.last_id += 1;
        let token = AccessToken {
            id: access.last_id,
            bearer: format!("{ACCESS_TOKEN_PREFIX}{}{}", random_token(), random_token()),
            user,
            creator: creator.id,
            created: Utc::now(),
            expires,
            enabled: true,
        };
        let reply = json!({"id": token.id.to_string(), "bearer_token": token.bearer});
        access.tokens.push(token);
        Ok(reply)
    }

    /// The metadata of access token `id`.
    pub fn access_token(&self, id: &str) -> ApiResult<Value> {
        let access = self.access.lock().unwrap_or_else(|p| p.into_inner());
        let token = find_access(&access.tokens, id)?;
        Ok(self.access_json(token))
    }

    /// Up to `limit` access tokens with ids above `after`, of the user `identity` names when
    /// given; and whether more follow.
    pub fn access_tokens(
        &self,
        identity: Option<&Value>,
        after: u64,
        limit: usize,
    ) -> ApiResult<(Vec<Value>, Option<u64>)> {
        let user = identity.map(|i| self.user_of(i)).transpose()?;
        let access = self.access.lock().unwrap_or_else(|p| p.into_inner());
        let mut matching = access
            .tokens
            .iter()
            .filter(|t| t.id > after && user.is_none_or(|u| t.user == u));
        let page: Vec<&AccessToken> = matching.by_ref().take(limit.max(1)).collect();
        let more = matching.next().is_some();
        let last = page.last().map(|t| t.id);
        let entries = page.into_iter().map(|t| self.access_json(t)).collect();
        Ok((entries, last.filter(|_| more)))
    }

    /// Changes access token `id`; returns its metadata.
    pub fn modify_access_token(&self, id: &str, change: &AccessTokenChange) -> ApiResult<Value> {
        let mut access = self.access.lock().unwrap_or_else(|p| p.into_inner());
        let wanted = parse_access_id(id)?;
        let token = access
            .tokens
            .iter_mut()
            .find(|t| t.id == wanted)
            .ok_or_else(|| no_access_token(id))?;
        if let Some(e) = change.expires {
            token.expires = Some(e);
        }
        if let Some(enabled) = change.enabled {
            token.enabled = enabled;
        }
        let token = token.clone();
        Ok(self.access_json(&token))
    }

    /// Deletes access token `id`: its bearer string is refused from now on.
    pub fn delete_access_token(&self, id: &str) -> ApiResult<()> {
        let mut access = self.access.lock().unwrap_or_else(|p| p.into_inner());
        let wanted = parse_access_id(id)?;
        let before = access.tokens.len();
        access.tokens.retain(|t| t.id != wanted);
        if access.tokens.len() == before {
            return Err(no_access_token(id));
        }
        Ok(())
    }

    /// The auth id of the local user an `api_identity` names (access tokens are for users,
    /// not groups).
    fn user_of(&self, identity: &Value) -> ApiResult<u64> {
        let found = self.find_identity(identity)?;
        found["auth_id"]
            .as_str()
            .and_then(|a| a.parse::<u64>().ok())
            .filter(|id| self.by_id(*id).is_some())
            .ok_or_else(|| {
                ApiError::new(
                    ErrorClass::Decode,
                    format!("{identity} is not a user: access tokens are only for users"),
                )
            })
    }

    /// Qumulo's `AccessTokenMetadata`.
    fn access_json(&self, token: &AccessToken) -> Value {
        let identity = |id: u64| self.by_id(id).map_or(Value::Null, User::identity);
        let time = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Nanos, true);
        json!({
            "id": token.id.to_string(),
            "user": identity(token.user),
            "creator": identity(token.creator),
            "creation_time": time(token.created),
            "expiration_time": token.expires.map(time),
            "enabled": token.enabled,
        })
    }
}

fn parse_access_id(id: &str) -> ApiResult<u64> {
    id.parse().map_err(|_| no_access_token(id))
}

fn no_access_token(id: &str) -> ApiError {
    ApiError::new(
        ErrorClass::NotFound,
        format!("No access token with id {id}"),
    )
}

fn find_access<'a>(tokens: &'a [AccessToken], id: &str) -> ApiResult<&'a AccessToken> {
    let wanted = parse_access_id(id)?;
    tokens
        .iter()
        .find(|t| t.id == wanted)
        .ok_or_else(|| no_access_token(id))
}
