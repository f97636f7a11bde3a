//! What the client lets others see of its work, without knowing who watches: every request
//! attempt (how long, answered or not), every failed call by [`ErrorKind`], and each node's
//! health. The service's metrics implement [`Observer`]; the client only calls it.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use url::Url;

use super::error::ErrorKind;

/// Told of the client's requests as they end. Calls must be quick: they run on the request's
/// own path.
pub trait Observer: Send + Sync + std::fmt::Debug {
    /// One attempt of a request ended after `elapsed`, answered with `status`, or not answered
    /// (`None`: no connection, reset, timeout).
    fn attempt(&self, elapsed: Duration, status: Option<u16>);
    /// A call failed with an error of `kind` (once per call, after its retries).
    fn failed(&self, kind: ErrorKind);
}

/// The observer of a client and its clones, set once after the client is built; until then
/// nothing is reported.
#[derive(Debug, Default)]
pub(super) struct Watch(OnceLock<Arc<dyn Observer>>);

impl Watch {
    /// Reports to `observer` from now on; `false` when an observer is set already.
    pub(super) fn set(&self, observer: Arc<dyn Observer>) -> bool {
        self.0.set(observer).is_ok()
    }

    pub(super) fn attempt(&self, elapsed: Duration, status: Option<u16>) {
        if let Some(o) = self.0.get() {
            o.attempt(elapsed, status);
        }
    }

    pub(super) fn failed(&self, kind: ErrorKind) {
        if let Some(o) = self.0.get() {
            o.failed(kind);
        }
    }
}

/// One node as the client last saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeHealth {
    /// The node's base URL.
    pub url: Url,
    /// Whether its last request (or probe) reached it.
    pub up: bool,
    /// How long ago that was; `None` when nothing was sent to it yet.
    pub seen: Option<Duration>,
}
