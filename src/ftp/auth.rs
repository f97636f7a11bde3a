//! FTP login as a Qumulo login. The authenticator logs in on the cluster and leaves the new
//! session in a slot that the user-detail provider of the same connection takes it from
//! (libunftp passes only the user name between the two). One pair is built per connection.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use unftp_core::auth::{
    AuthenticationError, Authenticator, Credentials, Principal, UserDetailError, UserDetailProvider,
};

use super::guard::Ban;
use super::user::User;
use crate::config::FailedLoginsConfig;
use crate::qumulo::{Client, ErrorKind, Session};

/// Where the authenticator leaves the user for the provider.
pub type Slot = Arc<Mutex<Option<User>>>;

/// Checks FTP logins against the cluster.
#[derive(Debug)]
pub struct QumuloAuthenticator {
    /// The shared cluster client.
    pub client: Client,
    /// Confine users to their home directories.
    pub chroot: bool,
    /// Filled on success.
    pub slot: Slot,
    /// Failed logins of every connection.
    pub activity: Arc<crate::server::Activity>,
    /// When failed logins delay and ban.
    pub limits: FailedLoginsConfig,
}

#[async_trait]
impl Authenticator for QumuloAuthenticator {
    async fn authenticate(
        &self,
        username: &str,
        creds: &Credentials,
    ) -> Result<Principal, AuthenticationError> {
        let client_ip = creds.source_ip;
        let guard = &self.activity.logins;
        if let Err(ban) = guard.check(client_ip, username) {
            tracing::warn!(user = username, client = %client_ip, ?ban, "login refused: banned after too many failed logins");
            return Err(AuthenticationError::new(match ban {
                Ban::Address => {
                    "Login refused: too many failed logins from your address; try again later"
                }
                Ban::User => "Login refused: too many failed logins for this user; try again later",
            }));
        }
        let Some(password) = creds.password.as_deref() else {
            return Err(AuthenticationError::BadPassword);
        };
        let session = match self.client.login(username, password).await {
            Ok(s) => s,
            Err(e) if e.kind() == ErrorKind::BadCredentials => {
                let (delay, ban) = guard.failed(client_ip, username, &self.limits);
                tracing::warn!(user = username, client = %client_ip, "login failed: wrong user name or password");
                if let Some(ban) = ban {
                    tracing::warn!(user = username, client = %client_ip, ?ban, ban_secs = self.limits.ban_time, "banned after too many failed logins");
                }
                tokio::time::sleep(delay).await;
                return Err(AuthenticationError::BadPassword);
            }
            Err(e) => {
                tracing::error!(user = username, client = %client_ip, error = %e, "login could not be checked: cluster failure");
                return Err(AuthenticationError::Unavailable(
                    "Login failed: the Qumulo cluster cannot be reached; try again later"
                        .to_string(),
                ));
            }
        };
        guard.succeeded(username);
        let user = self.user(username, session, client_ip).await?;
        tracing::info!(user = username, client = %client_ip, root = %user.root, "login");
        *self.slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(user);
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
        let (me, settings, version) = tokio::join!(
            session.who_am_i(),
            session.cluster_settings(),
            session.version()
        );
        let me = me.map_err(|e| {
            tracing::error!(user = username, client = %client_ip, error = %e, "who-am-i failed after login");
            AuthenticationError::Unavailable(
                "Login failed: the Qumulo cluster did not say who the user is; try again later"
                    .to_string(),
            )
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
                    return Err(AuthenticationError::new(format!(
                        "Login refused: {username} has no home directory on the cluster (ftp.chroot-users is on)"
                    )));
                }
            }
        } else {
            "/".to_string()
        };
        let welcome = match (settings, version) {
            (Ok(s), Ok(v)) => format!("Welcome to qftpd on {} ({})", s.cluster_name, v.revision_id),
            (Err(_), Ok(v)) => format!("Welcome to qftpd ({})", v.revision_id),
            (_, Err(_)) => "Welcome to qftpd".to_string(),
        };
        Ok(User {
            name: me.name,
            uid: me.id,
            session: Arc::new(session),
            root,
            welcome,
            client: client_ip,
        })
    }
}

/// Hands the user logged in by [`QumuloAuthenticator`] to libunftp.
#[derive(Debug)]
pub struct SessionProvider {
    /// Shared with the authenticator of the same connection.
    pub slot: Slot,
}

#[async_trait]
impl UserDetailProvider for SessionProvider {
    type User = User;

    async fn provide_user_detail(&self, principal: &Principal) -> Result<User, UserDetailError> {
        self.slot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| UserDetailError::UserNotFound {
                username: principal.username.clone(),
            })
    }
}
