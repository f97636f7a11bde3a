//! The simulator's local users and groups, and the bearer tokens handed out at login.
//!
//! Users get auth ids from 500 in the order they were given, as a cluster's first local user
//! (`admin`) has 500. Every user is in the local group `Users` (513); administrators are also in
//! `Admins` (512). Tokens are random strings in Qumulo's `1:<…>` shape with a configurable
//! lifetime; there is no refresh, a client logs in again on 401.
//!
//! Long-lived access tokens (`/v1/auth/access-tokens/`) are `access-v1:<…>` strings an
//! administrator makes for a user: they act as that user until deleted, disabled or past the
//! expiration time they were given (none by default).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::error::{ApiError, ApiResult, ErrorClass};

mod access;

use access::AccessTokens;
pub use access::{ACCESS_TOKEN_PREFIX, AccessTokenChange};

/// Auth id of the local group every user is in.
pub const USERS_GROUP: u64 = 513;
/// Auth id of the local group of administrators.
pub const ADMINS_GROUP: u64 = 512;
/// Auth id given to the first user; the next ones count up from it.
pub const FIRST_USER_ID: u64 = 500;
/// The SID prefix of the simulated cluster's local domain; a local RID is appended.
const DOMAIN_SID: &str = "S-1-5-21-2821713221-1234567890-3141592653";

/// One local user of the simulated cluster.
#[derive(Debug, Clone)]
pub struct User {
    /// Auth id (RID), from 500 on.
    pub id: u64,
    /// Login name.
    pub name: String,
    /// Password checked at login (held only in memory).
    pub password: String,
    /// Administrators pass every permission check and may read cluster settings.
    pub admin: bool,
    /// Home directory reported by who-am-i, if the user has one.
    pub home: Option<String>,
}

impl User {
    /// Group auth ids this user is a member of.
    pub fn groups(&self) -> Vec<u64> {
        if self.admin {
            vec![ADMINS_GROUP, USERS_GROUP]
        } else {
            vec![USERS_GROUP]
        }
    }

    /// Qumulo's `api_user` object.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id.to_string(),
            "name": self.name,
            "primary_group": USERS_GROUP.to_string(),
            "sid": sid(self.id),
            "uid": "",
            "home_directory": self.home,
            "can_change_password": true,
        })
    }

    /// Qumulo's `api_identity` object for this user.
    pub fn identity(&self) -> Value {
        json!({"domain": "LOCAL", "auth_id": self.id.to_string(), "sid": sid(self.id), "name": self.name})
    }
}

/// The SID of a local user or group.
fn sid(rid: u64) -> String {
    format!("{DOMAIN_SID}-{rid}")
}

/// The local groups: `(auth id, name)`.
pub const GROUPS: [(u64, &str); 2] = [(ADMINS_GROUP, "Admins"), (USERS_GROUP, "Users")];

/// Qumulo's group object.
pub fn group_json(id: u64, name: &str) -> Value {
    json!({"id": id.to_string(), "name": name, "sid": sid(id), "gid": ""})
}

/// Qumulo's `api_identity` object for a local group.
pub fn group_identity(id: u64, name: &str) -> Value {
    json!({"domain": "LOCAL", "auth_id": id.to_string(), "sid": sid(id), "name": name})
}

/// The name of local group `id`, if it exists.
pub fn group_name(id: u64) -> Option<&'static str> {
    GROUPS.iter().find(|(g, _)| *g == id).map(|(_, n)| *n)
}

/// Users and the live sessions.
#[derive(Debug)]
pub struct Directory {
    users: Vec<User>,
    token_lifetime: Duration,
    /// token → (user id, expiry). A std mutex: held only for map look-ups, never across awaits.
    tokens: Mutex<HashMap<String, (u64, Instant)>>,
    /// Long-lived access tokens, in id order.
    access: Mutex<AccessTokens>,
    /// Logins accepted and refused so far (`GET /sim/logins`): shows how many password
    /// checks a client let through to the cluster.
    logins: [AtomicU64; 2],
}

impl Directory {
    /// A directory of `users` (ids already assigned) whose tokens live `token_lifetime`.
    pub fn new(users: Vec<User>, token_lifetime: Duration) -> Self {
        Self {
            users,
            token_lifetime,
            tokens: Mutex::new(HashMap::new()),
            access: Mutex::new(AccessTokens::default()),
            logins: [AtomicU64::new(0), AtomicU64::new(0)],
        }
    }

    /// How many logins were accepted and refused so far.
    pub fn login_counts(&self) -> (u64, u64) {
        let [accepted, refused] = &self.logins;
        (
            accepted.load(Ordering::Relaxed),
            refused.load(Ordering::Relaxed),
        )
    }

    /// All users, in id order.
    pub fn users(&self) -> &[User] {
        &self.users
    }

    /// The user with auth id `id`.
    pub fn by_id(&self, id: u64) -> Option<&User> {
        self.users.iter().find(|u| u.id == id)
    }

    /// The user called `name`.
    pub fn by_name(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.name == name)
    }

    /// Checks the password and hands out a fresh bearer token.
    pub fn login(&self, name: &str, password: &str) -> ApiResult<String> {
        let user = self.by_name(name).filter(|u| u.password == password);
        self.logins[usize::from(user.is_none())].fetch_add(1, Ordering::Relaxed);
        let user = user.ok_or_else(|| {
            ApiError::new(ErrorClass::LoginFailed, "Invalid username or password")
        })?;
        let token = format!("1:{}", random_token());
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        tokens.retain(|_, (_, exp)| *exp > now);
        tokens.insert(token.clone(), (user.id, now + self.token_lifetime));
        Ok(token)
    }

    /// The user a bearer token belongs to (a login's or an access token's), or 401 when it is
    /// unknown, expired or disabled.
    pub fn authenticate(&self, token: &str) -> ApiResult<&User> {
        if token.starts_with(ACCESS_TOKEN_PREFIX) {
            return self.authenticate_access(token);
        }
        let tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        match tokens.get(token) {
            Some((id, exp)) if *exp > Instant::now() => self
                .by_id(*id)
                .ok_or_else(|| ApiError::new(ErrorClass::Unauthorized, "Unknown user")),
            Some(_) => Err(ApiError::new(
                ErrorClass::Unauthorized,
                "Bearer token expired",
            )),
            None => Err(ApiError::new(
                ErrorClass::Unauthorized,
                "Invalid bearer token",
            )),
        }
    }

    /// Ends every session at once, as if all tokens had reached their lifetime.
    pub fn expire_all(&self) -> usize {
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        let n = tokens.len();
        tokens.clear();
        n
    }

    /// Finds a local user or group by any of the `api_identity` keys and returns its identity.
    pub fn find_identity(&self, query: &Value) -> ApiResult<Value> {
        let text = |k: &str| {
            query.get(k).and_then(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
        };
        let (auth_id, sid_q, name) = (text("auth_id"), text("sid"), text("name"));
        if auth_id.is_none() && sid_q.is_none() && name.is_none() {
            return Err(ApiError::new(
                ErrorClass::Decode,
                "identity needs one of auth_id, sid or name",
            ));
        }
        let matches = |id: u64, n: &str| {
            auth_id.as_deref().is_none_or(|a| a == id.to_string())
                && sid_q.as_deref().is_none_or(|s| s == sid(id))
                && name.as_deref().is_none_or(|q| q == n)
        };
        if let Some(u) = self.users.iter().find(|u| matches(u.id, &u.name)) {
            return Ok(u.identity());
        }
        if let Some((g, n)) = GROUPS.iter().find(|(g, n)| matches(*g, n)) {
            return Ok(group_identity(*g, n));
        }
        Err(ApiError::new(
            ErrorClass::NoSuchIdentity,
            format!("No identity matches {query}"),
        ))
    }
}

/// 32 random hex digits from the OS-seeded generator. Tokens guard a test simulator on
/// loopback; they need to be unguessable in practice, not cryptographically strong.
fn random_token() -> String {
    let mut rng = fastrand::Rng::new();
    format!("{:016x}{:016x}", rng.u64(..), rng.u64(..))
}

#[cfg(test)]
mod tests;
