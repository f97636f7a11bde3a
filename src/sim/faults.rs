//! Injected faults, for the gateway's tests: added latency, a share of 5xx answers or dropped
//! connections, and a full outage. Set at start by flags and at run time through the control
//! endpoint `/sim/faults` (outside `/v1`, so it answers during an outage too).

use std::sync::RwLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The fault settings in force.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultSettings {
    /// Added to every API request before it is handled, in milliseconds.
    pub latency_ms: u64,
    /// Share (0 to 1) of API requests answered 503 with a JSON error.
    pub error_rate: f64,
    /// Share (0 to 1) of API requests whose connection is closed without an answer.
    pub drop_rate: f64,
    /// Every API request's connection is closed without an answer.
    pub outage: bool,
}

/// A partial update of [`FaultSettings`] (`PATCH /sim/faults`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultPatch {
    latency_ms: Option<u64>,
    error_rate: Option<f64>,
    drop_rate: Option<f64>,
    outage: Option<bool>,
}

/// What happens to one API request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Handle it normally.
    Serve,
    /// Answer 503.
    Fail,
    /// Close the connection without an answer.
    Drop,
}

impl FaultSettings {
    /// Checks that the rates are shares between 0 and 1.
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("error_rate", self.error_rate),
            ("drop_rate", self.drop_rate),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("{name} must be between 0 and 1, not {v}"));
            }
        }
        Ok(())
    }

    /// Applies a partial update.
    pub fn apply(&mut self, p: FaultPatch) {
        self.latency_ms = p.latency_ms.unwrap_or(self.latency_ms);
        self.error_rate = p.error_rate.unwrap_or(self.error_rate);
        self.drop_rate = p.drop_rate.unwrap_or(self.drop_rate);
        self.outage = p.outage.unwrap_or(self.outage);
    }
}

/// The shared, switchable fault state.
#[derive(Debug, Default)]
pub struct Faults {
    settings: RwLock<FaultSettings>,
}

impl Faults {
    /// Faults starting with `settings`.
    pub fn new(settings: FaultSettings) -> Self {
        Self {
            settings: RwLock::new(settings),
        }
    }

    /// The settings in force.
    pub fn get(&self) -> FaultSettings {
        self.settings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the settings after validating them.
    pub fn set(&self, new: FaultSettings) -> Result<(), String> {
        new.validate()?;
        *self.settings.write().unwrap_or_else(|p| p.into_inner()) = new;
        Ok(())
    }

    /// Decides the fate of one API request: the latency to add first, then the verdict.
    pub fn decide(&self) -> (Duration, Verdict) {
        let s = self.get();
        let latency = Duration::from_millis(s.latency_ms);
        let verdict = if s.outage || (s.drop_rate > 0.0 && fastrand::f64() < s.drop_rate) {
            Verdict::Drop
        } else if s.error_rate > 0.0 && fastrand::f64() < s.error_rate {
            Verdict::Fail
        } else {
            Verdict::Serve
        };
        (latency, verdict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_of_zero_and_one_are_exact() {
        let f = Faults::default();
        assert_eq!(f.decide().1, Verdict::Serve);
        f.set(FaultSettings {
            error_rate: 1.0,
            ..Default::default()
        })
        .unwrap();
        assert!((0..100).all(|_| f.decide().1 == Verdict::Fail));
        f.set(FaultSettings {
            drop_rate: 1.0,
            error_rate: 1.0,
            ..Default::default()
        })
        .unwrap();
        assert!((0..100).all(|_| f.decide().1 == Verdict::Drop));
    }

    #[test]
    fn invalid_rates_are_refused_and_patch_merges() {
        let f = Faults::default();
        assert!(
            f.set(FaultSettings {
                error_rate: 1.5,
                ..Default::default()
            })
            .is_err()
        );
        let mut s = FaultSettings {
            latency_ms: 5,
            ..Default::default()
        };
        s.apply(serde_json::from_str(r#"{"outage": true}"#).unwrap());
        assert_eq!(
            s,
            FaultSettings {
                latency_ms: 5,
                outage: true,
                ..Default::default()
            }
        );
        assert!(serde_json::from_str::<FaultPatch>(r#"{"bogus": 1}"#).is_err());
    }
}
