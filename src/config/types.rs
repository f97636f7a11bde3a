//! The configuration's own value types and their TOML forms: node URLs, certificate
//! fingerprints, TLS versions, time zones, port ranges and networks.

use serde::{Deserialize, Deserializer, Serialize};
use url::Url;

/// A TLS protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TlsVersion {
    /// TLS 1.2.
    #[serde(rename = "1.2")]
    V1_2,
    /// TLS 1.3.
    #[serde(rename = "1.3")]
    V1_3,
}

/// One or more node URLs: `url = "https://a:8000"` or `url = ["https://a:8000", "https://b:8000"]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeUrls(pub Vec<Url>);

impl NodeUrls {
    /// One node.
    pub fn one(url: Url) -> Self {
        Self(vec![url])
    }
}

impl std::fmt::Display for NodeUrls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text: Vec<&str> = self.0.iter().map(Url::as_str).collect();
        f.write_str(&text.join(", "))
    }
}

impl Serialize for NodeUrls {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => one.serialize(s),
            many => many.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for NodeUrls {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged, expecting = "a URL or a list of URLs")]
        enum OneOrMany {
            One(Url),
            Many(Vec<Url>),
        }
        let urls = match OneOrMany::deserialize(d)? {
            OneOrMany::One(u) => vec![u],
            OneOrMany::Many(v) if v.is_empty() => {
                return Err(serde::de::Error::custom("the list of node URLs is empty"));
            }
            OneOrMany::Many(v) => v,
        };
        Ok(Self(urls))
    }
}

/// A SHA-256 certificate fingerprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// Parses 64 hex digits, optionally separated by colons (as `openssl x509 -fingerprint
    /// -sha256` prints them) and optionally prefixed by `sha256:`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad =
            || format!("{text:?} is not a SHA-256 fingerprint (64 hex digits, colons allowed)");
        let t = text.trim();
        let t = t
            .strip_prefix("sha256:")
            .or_else(|| t.strip_prefix("SHA256:"))
            .unwrap_or(t);
        let hex: String = t.chars().filter(|c| *c != ':').collect();
        if hex.len() != 64 || !hex.is_ascii() {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Self(out))
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hex: Vec<String> = self.0.iter().map(|b| format!("{b:02X}")).collect();
        f.write_str(&hex.join(":"))
    }
}

impl Serialize for Fingerprint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Fingerprint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

pub(super) fn tz_ser<S: serde::Serializer>(tz: &chrono_tz::Tz, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(tz.name())
}

pub(super) fn tz_de<'de, D: Deserializer<'de>>(d: D) -> Result<chrono_tz::Tz, D::Error> {
    let name = String::deserialize(d)?;
    name.parse().map_err(|_| {
        serde::de::Error::custom(format!(
            "{name:?} is not an IANA time zone (e.g. Europe/Berlin)"
        ))
    })
}

pub(super) mod port_range {
    use std::ops::RangeInclusive;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(r: &RangeInclusive<u16>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}-{}", r.start(), r.end()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<RangeInclusive<u16>, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).map_err(serde::de::Error::custom)
    }

    pub fn parse(text: &str) -> Result<RangeInclusive<u16>, String> {
        let bad =
            || format!("{text:?} is not a port range LOW-HIGH with 1024 <= LOW <= HIGH <= 65535");
        let (lo, hi) = text.split_once('-').ok_or_else(bad)?;
        let (lo, hi): (u16, u16) = (
            lo.trim().parse().map_err(|_| bad())?,
            hi.trim().parse().map_err(|_| bad())?,
        );
        if lo < 1024 || lo > hi {
            return Err(bad());
        }
        Ok(lo..=hi)
    }
}

/// A list of networks: each an address (`192.0.2.7`, `2001:db8::1`: that address alone) or a
/// CIDR (`10.0.0.0/8`). A CIDR with host bits set (`10.0.0.1/8`) is refused: it is a typo for
/// either the address or the network.
pub mod networks {
    use ipnet::IpNet;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Parses one network, with the reason when it is not one.
    pub fn parse(text: &str) -> Result<IpNet, String> {
        if let Ok(ip) = text.parse::<std::net::IpAddr>() {
            return Ok(IpNet::from(ip));
        }
        let net: IpNet = text.parse().map_err(|_| {
            format!("{text:?} is neither an IP address nor a CIDR such as 10.0.0.0/8")
        })?;
        if net.trunc() != net {
            return Err(format!(
                "{text:?} has host bits set: write the network ({}) or the address alone ({})",
                net.trunc(),
                net.addr()
            ));
        }
        Ok(net)
    }

    /// Serializes as the list of strings.
    pub fn serialize<S: Serializer>(nets: &[IpNet], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(nets.iter().map(ToString::to_string))
    }

    /// Deserializes from a list of strings.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|text| parse(text).map_err(serde::de::Error::custom))
            .collect()
    }
}
