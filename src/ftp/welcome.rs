//! The 230 reply names the cluster for every user, though only users who may read the
//! cluster settings (administrators) can read its name: [`Welcome`] learns it once, with the
//! gateway's own access token when it has one, else from such a user's login, and keeps it
//! in the [`ClusterName`] shared by every gateway of the cluster (it survives a reload).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::qumulo::{Client, Error, ErrorKind, Session};

/// The cluster's name and version, as the 230 reply names them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Named {
    cluster: String,
    version: String,
}

impl Named {
    fn welcome(&self) -> String {
        super::errors::welcome(Some(&self.cluster), Some(&self.version))
    }
}

/// What is known of one cluster's name, shared by every session of the gateways of that
/// cluster.
#[derive(Debug)]
pub struct ClusterName {
    /// The cluster's node URLs, sorted: the same set is the same cluster.
    urls: Vec<url::Url>,
    known: RwLock<Option<Named>>,
    /// Held while the name is read with the access token, so that logins waiting for it
    /// find it read once rather than each reading it.
    learning: tokio::sync::Mutex<()>,
    /// The cluster's version while its name is not known, and when it was read.
    version: RwLock<Option<(String, Instant)>>,
    /// Users the cluster refused its settings (the name) to, and when: not asked again for
    /// `ASK_AGAIN`, so that their logins cost no call that cannot succeed.
    refused: Mutex<HashMap<String, Instant>>,
}

/// How long a version read, or a user's refusal to read the name, is taken as still true.
const ASK_AGAIN: Duration = Duration::from_secs(600);
/// The most users whose refusal is remembered (beyond, the older half is forgotten).
const REFUSALS_KEPT: usize = 10_000;

impl ClusterName {
    fn get(&self) -> Option<Named> {
        self.known.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The version read last, if it is recent.
    fn version(&self) -> Option<String> {
        let version = self.version.read().unwrap_or_else(|p| p.into_inner());
        version
            .as_ref()
            .filter(|(_, at)| at.elapsed() < ASK_AGAIN)
            .map(|(v, _)| v.clone())
    }

    fn set_version(&self, version: &str) {
        *self.version.write().unwrap_or_else(|p| p.into_inner()) =
            Some((version.to_string(), Instant::now()));
    }

    /// Whether `user` was refused the name lately.
    fn refused_lately(&self, user: &str) -> bool {
        let refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        refused.get(user).is_some_and(|at| at.elapsed() < ASK_AGAIN)
    }

    fn refused_to(&self, user: &str) {
        let mut refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        if refused.len() >= REFUSALS_KEPT {
            let mut times: Vec<Instant> = refused.values().copied().collect();
            times.sort_unstable();
            let cut = times[times.len() / 2];
            refused.retain(|_, at| *at > cut);
        }
        refused.insert(user.to_string(), Instant::now());
    }

    /// Keeps `named`; says so when it is new or changed.
    fn set(&self, named: Named, from: &str) {
        let mut known = self.known.write().unwrap_or_else(|p| p.into_inner());
        if known.as_ref() != Some(&named) {
            tracing::info!(cluster = %named.cluster, version = %named.version, from, "the cluster's name, for the 230 reply");
            *known = Some(named);
        }
    }
}

/// The process's knowledge of cluster names, kept across reloads: a gateway built for the same
/// nodes as the one before finds the name already known.
#[derive(Debug, Default)]
pub struct ClusterNames(Mutex<Option<Arc<ClusterName>>>);

impl ClusterNames {
    /// The name of the cluster at `urls`: the one known so far when it is the same cluster,
    /// else a new, unknown one (which replaces it).
    pub fn of(&self, urls: &[url::Url]) -> Arc<ClusterName> {
        let mut sorted = urls.to_vec();
        sorted.sort();
        sorted.dedup();
        let mut current = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match current.as_ref() {
            Some(name) if name.urls == sorted => name.clone(),
            _ => {
                let name = Arc::new(ClusterName {
                    urls: sorted,
                    known: RwLock::new(None),
                    learning: tokio::sync::Mutex::new(()),
                    version: RwLock::new(None),
                    refused: Mutex::new(HashMap::new()),
                });
                *current = Some(name.clone());
                name
            }
        }
    }
}

/// A gateway's way to its users' 230 text.
#[derive(Debug)]
pub struct Welcome {
    name: Arc<ClusterName>,
    client: Client,
    /// The session of the gateway's access token (`qumulo.access-token`); `None` without one
    /// and once the cluster refused it.
    token: Mutex<Option<Arc<Session>>>,
}

/// How a failed read of the name is logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Occasion {
    /// At start or reload: a failure is worth a warning.
    Start,
    /// At a login, while the name is not known yet: the start already warned.
    Login,
}

impl Welcome {
    /// The welcome of a gateway of `client`'s cluster, whose name is (or will be) kept in
    /// `name`; `access_token` is the gateway's own token, if configured.
    pub fn new(name: Arc<ClusterName>, client: Client, access_token: Option<String>) -> Self {
        let token =
            access_token.map(|t| Arc::new(client.access_token_session("qumulo.access-token", t)));
        Self {
            name,
            client,
            token: Mutex::new(token),
        }
    }

    /// Whether the gateway has an access token (not refused so far).
    pub fn has_token(&self) -> bool {
        self.session().is_some()
    }

    /// At start and at reload: reads the name with the access token, even when it is known
    /// (the cluster may have been renamed). Without a token, the name known stays.
    pub async fn refresh(&self) {
        self.learn_with_token(Occasion::Start).await;
    }

    /// The 230 text of a user logged in with `session`. Reads nothing when the name is known;
    /// otherwise reads it with the access token, or else with the user's own session (which
    /// teaches it to every later login when the user may read it). A user the cluster refused
    /// it to is not asked again for 10 minutes, and the version alone is kept as long, so that
    /// those logins cost the cluster the login and who-am-i only.
    pub async fn text(&self, session: &Session) -> String {
        if let Some(named) = self.name.get() {
            return named.welcome();
        }
        if let Some(named) = self.learn_with_token(Occasion::Login).await {
            return named.welcome();
        }
        // The user's own session: its settings, unless it was refused them lately (only some
        // users may read them); the version, unless it was read lately.
        let user = session.username();
        let ask_name = !self.name.refused_lately(user);
        let known_version = self.name.version();
        let (settings, version) = tokio::join!(
            async {
                match ask_name {
                    true => Some(session.cluster_settings().await),
                    false => None,
                }
            },
            async {
                match known_version {
                    Some(v) => Ok(v),
                    None => session.version().await.map(|v| v.revision_id),
                }
            },
        );
        match (settings, version) {
            (Some(Ok(s)), Ok(v)) => {
                let named = Named {
                    cluster: s.cluster_name,
                    version: v,
                };
                self.name.set(named.clone(), user);
                named.welcome()
            }
            (settings, Ok(v)) => {
                if let Some(Err(e)) = settings
                    && matches!(e.kind(), ErrorKind::Denied | ErrorKind::Unauthorized)
                {
                    self.name.refused_to(user);
                }
                self.name.set_version(&v);
                super::errors::welcome(None, Some(&v))
            }
            (_, Err(_)) => super::errors::welcome(None, None),
        }
    }

    fn session(&self) -> Option<Arc<Session>> {
        self.token.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Reads the name with the access token (one read at a time; at a login, none when
    /// another read found it meanwhile). `None` without a token or when the read failed.
    async fn learn_with_token(&self, occasion: Occasion) -> Option<Named> {
        self.session()?;
        let _one_at_a_time = self.name.learning.lock().await;
        if occasion == Occasion::Login
            && let Some(named) = self.name.get()
        {
            return Some(named);
        }
        // Refused while this waited?
        let session = self.session()?;
        let (settings, version) = tokio::join!(session.cluster_settings(), self.client.version());
        match (settings, version) {
            (Ok(s), Ok(v)) => {
                let named = Named {
                    cluster: s.cluster_name,
                    version: v.revision_id,
                };
                self.name.set(named.clone(), "qumulo.access-token");
                Some(named)
            }
            (Err(e), _) if matches!(e.kind(), ErrorKind::Unauthorized | ErrorKind::Denied) => {
                self.refused(&e);
                None
            }
            (Err(e), _) | (_, Err(e)) => {
                if occasion == Occasion::Start {
                    tracing::warn!(error = %e, "cannot read the cluster's name with qumulo.access-token yet; trying again at the next login");
                } else {
                    tracing::debug!(error = %e, "cannot read the cluster's name with qumulo.access-token");
                }
                None
            }
        }
    }

    /// Drops a token the cluster refused, saying why once.
    fn refused(&self, e: &Error) {
        let dropped = self.token.lock().unwrap_or_else(|p| p.into_inner()).take();
        if dropped.is_some() {
            let known = self.name.get().is_some();
            tracing::warn!(error = %e, "the cluster refused qumulo.access-token: going on without it ({})",
                if known { "the cluster's name known so far stays" } else { "the cluster's name is learnt from the login of a user who may read it" });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_nodes_in_any_order_are_the_same_cluster() {
        let url = |s: &str| url::Url::parse(s).unwrap();
        let (a, b, c) = (
            url("https://a:8000"),
            url("https://b:8000"),
            url("https://c:8000"),
        );
        let names = ClusterNames::default();
        let first = names.of(&[a.clone(), b.clone()]);
        first.set(
            Named {
                cluster: "x".into(),
                version: "v".into(),
            },
            "test",
        );
        let again = names.of(&[b.clone(), a.clone(), b.clone()]);
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(again.get().unwrap().welcome(), "Welcome to qftpd on x (v)");
        let other = names.of(&[a, c]);
        assert!(other.get().is_none(), "another cluster starts unnamed");
        assert!(!Arc::ptr_eq(&names.of(&[b]), &first));
    }
}
