//! The production Qumulo REST API client. It knows nothing of FTP: the FTP adapters in
//! [`crate::ftp`] translate between the two. It must not import [`crate::sim`].
//!
//! - [`Client`]: one per process; holds the pooled HTTPS client and the cluster's nodes.
//! - [`Session`]: one per logged-in user; holds the bearer token and logs in again on 401.
//! - `api`: the JSON shapes of the endpoints used, parsed into typed values.
//! - `http`: URL building, sending and logging, and the mapping of answers to errors.
//! - `retry`: which node each attempt goes to, and the one rule of what is tried again.
//! - `nodes`: round-robin over the nodes, and which ones are down (with a growing backoff).
//! - `tls`: trusting the cluster (system roots and a CA file, or a pinned fingerprint).
//! - `transfer`: the streamed bodies of data reads (resumed when they break) and writes.
//! - [`Error`]: every failure, classified by [`Error::kind`] in one place.
//! - [`Observer`]: what the client reports of its requests and nodes to whoever watches.

mod api;
mod client;
mod error;
mod http;
mod nodes;
mod observe;
mod pages;
mod retry;
mod session;
mod tls;
mod transfer;

pub use api::{
    Acl, ApiUser, AttrPatch, ClusterSettings, FileAttr, FileType, IdDetails, Identity, Page,
    Version,
};
pub use client::{Client, ClientConfig};
pub use error::{Error, ErrorKind};
pub use observe::{NodeHealth, Observer};
pub use pages::Pages;
pub use session::Session;
pub use transfer::Download;
