//! FTP login as a Qumulo login. The authenticator logs in on the cluster and leaves the new
//! session in a hand-off that the user-detail provider of the same connection takes it from
//! (libunftp passes only the user name between the two). One pair is built per connection.
//! The 230 text comes from [`Welcome`]; every text a client sees is in [`super::errors`].

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use unftp_core::auth::{
    AuthenticationError, Authenticator, Credentials, Principal, UserDetailError, UserDetailProvider,
};

use super::errors::{LOGIN_NOT_CHECKED, LOGIN_WHO_UNKNOWN, login_no_home, login_refused};
use super::logins::LoginRefusal;
use super::user::User;
use super::welcome::Welcome;
use crate::config::FailedLoginsConfig;
use crate::qumulo::{Client, ErrorKind, Session};
use crate::state::{LoginResult, Stats};

/// Where the authenticator leaves the user it logged in for the provider to take.
pub type Handoff = Arc<Mutex<Option<User>>>;

/// Whether a connection's login succeeded, for the accept loop's backstop of the login
/// deadline.
#[derive(Debug, Clone, Default)]
pub struct LoggedIn(Arc<std::sync::atomic::AtomicBool>);

impl LoggedIn {
    /// Whether a user logged in on the connection.
    pub fn get(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Checks FTP logins against the cluster.
#[derive(Debug)]
pub struct QumuloAuthenticator {
    /// The shared cluster client.
    pub client: Client,
    /// Confine users to their home directories.
    pub chroot: bool,
    /// Filled on success.
    pub handoff: Handoff,
    /// Failed logins of every connection.
    pub memory: Arc<super::LoginMemory>,
    /// When failed logins delay, slow and ban.
    pub limits: FailedLoginsConfig,
    /// The 230 text.
    pub welcome: Arc<Welcome>,
    /// Set once a login of this connection succeeded.
    pub logged_in: LoggedIn,
    /// Where logins are counted by result.
    pub stats: Arc<Stats>,
}

#[async_trait]
impl Authenticator for QumuloAuthenticator {
    async fn authenticate(
        &self,
        username: &str,
        creds: &Credentials,
    ) -> Result<Principal, AuthenticationError> {
        let client_ip = creds.source_ip;
        let Some(password) = creds.password.as_deref() else {
            return Err(AuthenticationError::BadPassword);
        };
        // Counts against the address until the cluster answers; waits when the user name is
        // under attack.
        let attempt = match self
            .memory
            .failed
            .begin(client_ip, username, &self.limits)
            .await
        {
            Ok(attempt) => attempt,
            Err(refusal) => {
                let reason = match refusal {
                    LoginRefusal::Banned => "banned after too many failed logins from the address",
                    LoginRefusal::AddressBusy => "too many logins at once from the address",
                    LoginRefusal::UserBusy => {
                        "too many logins for this user name from addresses that have been failing"
                    }
                };
                if refusal == LoginRefusal::AddressBusy {
                    tracing::warn!(user = username, client = %client_ip, "login refused without asking the cluster: {reason}");
                } else {
                    // The ban, or the slowing of the user name, was logged when it began; a
                    // client retrying is not worth a line each.
                    tracing::debug!(user = username, client = %client_ip, "login refused without asking the cluster: {reason}");
                }
                self.stats.tally.login(LoginResult::Refused);
                // 421 (RFC 959: service not available, closing control connection): this
                // connection cannot log in now, and a client may try again later.
                return Err(AuthenticationError::Unavailable(
                    login_refused(refusal).to_string(),
                ));
            }
        };
        let session = match self.client.login(username, password).await {
            Ok(s) => s,
            Err(e) if e.kind() == ErrorKind::BadCredentials => {
                let penalty = attempt.failed();
                self.stats.tally.login(LoginResult::Failure);
                // The address is in the text too: fail2ban's filters read the message alone.
                tracing::warn!(user = username, client = %client_ip, "login failed: wrong user name or password from {client_ip}");
                if penalty.banned {
                    tracing::warn!(user = username, client = %client_ip, ban_secs = self.limits.ban_time, "address banned after too many failed logins from {client_ip}");
                }
                if penalty.user_slowed {
                    tracing::warn!(
                        user = username,
                        failures = self.limits.max_per_user,
                        "logins for this user name are slowed from now on: too many failed logins from any address; each waits up to 8 s, and addresses that have been failing take turns (421 when the turn is over a minute away)"
                    );
                }
                tokio::time::sleep(penalty.delay).await;
                return Err(AuthenticationError::BadPassword);
            }
            Err(e) => {
                // Not a failure: `attempt` gives its place back uncounted.
                drop(attempt);
                self.stats.tally.login(LoginResult::Unavailable);
                tracing::error!(user = username, client = %client_ip, error = %e, "login could not be checked: cluster failure");
                return Err(AuthenticationError::Unavailable(
                    LOGIN_NOT_CHECKED.to_string(),
                ));
            }
        };
        attempt.succeeded();
        let user = self
            .user(username, session, client_ip)
            .await
            .inspect_err(|e| {
                let result = match e {
                    AuthenticationError::Unavailable(_) => LoginResult::Unavailable,
                    _ => LoginResult::Refused,
                };
                self.stats.tally.login(result);
            })?;
        self.stats.tally.login(LoginResult::Success);
        tracing::info!(user = username, client = %client_ip, root = %user.root, "login");
        *self.handoff.lock().unwrap_or_else(|p| p.into_inner()) = Some(user);
        self.logged_in
            .0
            .store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(Principal {
            username: username.to_string(),
        })
    }
}

impl QumuloAuthenticator {
    /// Reads who the user is and what to greet it with, with its own token.
    async fn user(
        &self,
        username: &str,
        session: Session,
        client_ip: IpAddr,
    ) -> Result<User, AuthenticationError> {
        let (me, welcome) = tokio::join!(session.who_am_i(), self.welcome.text(&session));
        let me = me.map_err(|e| {
            tracing::error!(user = username, client = %client_ip, error = %e, "who-am-i failed after login");
            AuthenticationError::Unavailable(LOGIN_WHO_UNKNOWN.to_string())
        })?;
        let root = if self.chroot {
            match me
                .home_directory
                .as_deref()
                .map(str::trim)
                .filter(|h| h.starts_with('/'))
            {
                Some(home) if home.trim_end_matches('/').is_empty() => "/".to_string(),
                Some(home) => home.trim_end_matches('/').to_string(),
                None => {
                    tracing::warn!(user = username, client = %client_ip, "login refused: no home directory to confine the user to");
                    return Err(AuthenticationError::new(login_no_home(username)));
                }
            }
        } else {
            "/".to_string()
        };
        Ok(User {
            name: me.name,
            uid: me.id,
            session: Arc::new(session),
            root,
            home: Default::default(),
            welcome,
            client: client_ip,
        })
    }
}

/// Hands the user logged in by [`QumuloAuthenticator`] to libunftp.
#[derive(Debug)]
pub struct SessionProvider {
    /// Shared with the authenticator of the same connection.
    pub handoff: Handoff,
}

#[async_trait]
impl UserDetailProvider for SessionProvider {
    type User = User;

    async fn provide_user_detail(&self, principal: &Principal) -> Result<User, UserDetailError> {
        self.handoff
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| UserDetailError::UserNotFound {
                username: principal.username.clone(),
            })
    }
}
