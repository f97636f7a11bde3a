//! The FTP side: thin libunftp adapters over the Qumulo client.
//!
//! - [`Gateway`]: built once from the configuration; makes one libunftp `Server` per
//!   accepted connection (libunftp cannot take a listening socket, so the accept loop in
//!   [`crate::server`] is ours).
//! - `auth`: FTP login as a Qumulo login; `user`: the logged-in user.
//! - `storage`: the storage back-end; `listing`: LIST lines and MLSx facts; `path`: FTP to
//!   cluster paths; `errors`: cluster failures to FTP replies; `site`: SITE CHMOD.

mod auth;
mod errors;
mod listing;
mod path;
mod site;
mod storage;
mod user;

use std::net::Ipv4Addr;
use std::ops::RangeInclusive;
use std::sync::Arc;

use libunftp::options::PassiveHost;
use libunftp::{Server, ServerBuilder, ServerError};

pub use storage::QumuloStorage;
pub use user::User;

use crate::config::Config;
use crate::qumulo::{Client, ClientConfig};

/// How long a REST connection may take to establish.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// How long the cluster may stay silent during one request.
const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Everything needed to serve FTP sessions, built once per configuration.
#[derive(Debug)]
pub struct Gateway {
    client: Client,
    shared: Arc<storage::Shared>,
    greeting: &'static str,
    passive_ports: RangeInclusive<u16>,
    passive_host: PassiveHost,
    chroot: bool,
}

impl Gateway {
    /// Builds the gateway (and its one cluster client) from a configuration; transfers are
    /// counted in `activity`.
    pub fn new(
        config: &Config,
        activity: Arc<crate::server::Activity>,
    ) -> Result<Self, crate::qumulo::Error> {
        let client = Client::new(&ClientConfig {
            url: config.qumulo.url.clone(),
            ca_file: config.qumulo.ca_file.clone(),
            accept_invalid_certs: config.qumulo.accept_invalid_certs,
            connect_timeout: CONNECT_TIMEOUT,
            read_timeout: READ_TIMEOUT,
        })?;
        let passive_host = match config.ftp.passive_host.as_deref() {
            None => PassiveHost::FromConnection,
            Some(h) => h
                .parse::<Ipv4Addr>()
                .map_or_else(|_| PassiveHost::Dns(h.to_string()), PassiveHost::Ip),
        };
        Ok(Self {
            client,
            shared: Arc::new(storage::Shared {
                timezone: config.ftp.timezone,
                names: listing::NameCache::default(),
                activity,
            }),
            // libunftp wants a 'static greeting; one small string per loaded configuration.
            greeting: Box::leak(config.ftp.greeting.clone().into_boxed_str()),
            passive_ports: config.ftp.passive_ports.clone(),
            passive_host,
            chroot: config.ftp.chroot_users,
        })
    }

    /// The cluster client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// A libunftp server for one connection; the session ends (after a transfer in progress)
    /// when `stop` completes.
    pub fn server(
        &self,
        stop: impl std::future::Future<Output = ()> + Send + Sync + 'static,
    ) -> Result<Server<QumuloStorage, User>, ServerError> {
        let slot = auth::Slot::default();
        let shared = self.shared.clone();
        let authenticator = auth::QumuloAuthenticator {
            client: self.client.clone(),
            chroot: self.chroot,
            slot: slot.clone(),
        };
        let provider = Arc::new(auth::SessionProvider { slot });
        ServerBuilder::with_user_detail_provider(
            Box::new(move || QumuloStorage::new(shared.clone())),
            provider,
        )
        .authenticator(Arc::new(authenticator))
        .site_command("CHMOD", site::Chmod)
        .greeting(self.greeting)
        .passive_ports(self.passive_ports.clone())
        .passive_host(self.passive_host.clone())
        .shutdown_indicator(async move {
            stop.await;
            libunftp::options::Shutdown::new()
        })
        .build()
    }
}
