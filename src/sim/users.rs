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

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::error::{ApiError, ApiResult, ErrorClass};

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

/// The access tokens and the id of the next one.
#[derive(Debug, Default)]
struct AccessTokens {
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

    fn authenticate_access(&self, bearer: &str) -> ApiResult<&User> {
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

/// 32 random hex digits from the OS-seeded generator. Tokens guard a test simulator on
/// loopback; they need to be unguessable in practice, not cryptographically strong.
fn random_token() -> String {
    let mut rng = fastrand::Rng::new();
    format!("{:016x}{:016x}", rng.u64(..), rng.u64(..))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(lifetime: Duration) -> Directory {
        let user = |id, name: &str, admin| User {
            id,
            name: name.into(),
            password: format!("{name}pw"),
            admin,
            home: None,
        };
        Directory::new(
            vec![user(500, "admin", true), user(501, "alice", false)],
            lifetime,
        )
    }

    #[test]
    fn login_checks_password_and_token_authenticates() {
        let d = dir(Duration::from_secs(60));
        assert_eq!(
            d.login("alice", "wrong").unwrap_err().class,
            ErrorClass::LoginFailed
        );
        assert_eq!(
            d.login("nobody", "x").unwrap_err().class,
            ErrorClass::LoginFailed
        );
        let t = d.login("alice", "alicepw").unwrap();
        assert!(t.starts_with("1:"));
        assert_eq!(
            d.login_counts(),
            (1, 2),
            "accepted and refused logins are counted"
        );
        assert_eq!(d.authenticate(&t).unwrap().name, "alice");
        assert_eq!(d.expire_all(), 1);
        assert_eq!(
            d.authenticate(&t).unwrap_err().class,
            ErrorClass::Unauthorized
        );
    }

    #[test]
    fn zero_lifetime_tokens_are_expired() {
        let d = dir(Duration::ZERO);
        let t = d.login("admin", "adminpw").unwrap();
        assert_eq!(
            d.authenticate(&t).unwrap_err().class,
            ErrorClass::Unauthorized
        );
    }

    #[test]
    fn identity_find_by_name_sid_and_id() {
        let d = dir(Duration::from_secs(60));
        let alice = d.find_identity(&json!({"name": "alice"})).unwrap();
        assert_eq!(alice["auth_id"], "501");
        let by_sid = d.find_identity(&json!({"sid": alice["sid"]})).unwrap();
        assert_eq!(by_sid["name"], "alice");
        assert_eq!(
            d.find_identity(&json!({"auth_id": 513})).unwrap()["name"],
            "Users"
        );
        assert_eq!(
            d.find_identity(&json!({"name": "zed"})).unwrap_err().class,
            ErrorClass::NoSuchIdentity
        );
    }
}
