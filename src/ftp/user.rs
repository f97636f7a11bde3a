//! The logged-in FTP user: its cluster session and where its view of the cluster starts.

use std::sync::Arc;

use unftp_core::auth::UserDetail;

use crate::qumulo::Session;

/// An FTP user, logged in on the cluster.
#[derive(Debug)]
pub struct User {
    /// Login name.
    pub name: String,
    /// Auth id on the cluster (for the `perm` fact).
    pub uid: u64,
    /// The cluster session every operation runs in.
    pub session: Arc<Session>,
    /// Cluster path the user's `/` maps to: `/`, or the home directory when chrooted.
    pub root: String,
    /// The home's canonical cluster path, when chrooted (see `confine`).
    pub home: super::confine::Home,
    /// The 230 reply text.
    pub welcome: String,
    /// The client's address, for the log.
    pub client: std::net::IpAddr,
}

impl std::fmt::Display for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

impl UserDetail for User {
    fn welcome(&self) -> Option<String> {
        Some(self.welcome.clone())
    }
}
