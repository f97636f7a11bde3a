//! Passive ports the kernel may hand out to outgoing connections.
//!
//! Ports of `ftp.passive-ports` inside the kernel's ephemeral range
//! (`net.ipv4.ip_local_port_range`, which Linux uses for IPv6 too) and not reserved
//! (`net.ipv4.ip_local_reserved_ports`) can be taken by any outgoing connection of the machine,
//! and stay taken through TIME_WAIT: a passive listener cannot bind them then, and with many
//! sessions waiting for data connections at once some get `425 No passive port free`. Said at
//! start and by `qftpd check-config`, like the open-file limit: a problem of the machine, not of
//! the file.

use std::ops::RangeInclusive;

/// The kernel's ephemeral port range.
const PORT_RANGE: &str = "/proc/sys/net/ipv4/ip_local_port_range";
/// The ports reserved from it (a comma-separated list of ports and ranges).
const RESERVED: &str = "/proc/sys/net/ipv4/ip_local_reserved_ports";

/// The sentence to say when ports of `passive` are ephemeral and not reserved on this machine;
/// `None` when none are, or when the kernel's settings cannot be read.
pub fn warning(passive: &RangeInclusive<u16>) -> Option<String> {
    let range = std::fs::read_to_string(PORT_RANGE).ok()?;
    let reserved = std::fs::read_to_string(RESERVED).unwrap_or_default();
    overlap_warning(passive, parse_range(&range)?, &parse_reserved(&reserved))
}

/// The warning for `passive` given the ephemeral range and the reserved ports.
fn overlap_warning(
    passive: &RangeInclusive<u16>,
    ephemeral: RangeInclusive<u16>,
    reserved: &[RangeInclusive<u16>],
) -> Option<String> {
    let exposed = passive
        .clone()
        .filter(|p| ephemeral.contains(p) && !reserved.iter().any(|r| r.contains(p)))
        .count();
    (exposed > 0).then(|| {
        format!(
            "{exposed} of the {} ports of ftp.passive-ports ({}-{}) are in the kernel's \
             ephemeral range ({}-{}, net.ipv4.ip_local_port_range) and not reserved: outgoing \
             connections of this machine can take them, and PASV/EPSV then get 425 when many \
             sessions wait for data connections at once; reserve them (sysctl \
             net.ipv4.ip_local_reserved_ports={}-{}) or move the range out",
            passive.clone().count(),
            passive.start(),
            passive.end(),
            ephemeral.start(),
            ephemeral.end(),
            passive.start(),
            passive.end(),
        )
    })
}

/// `ip_local_port_range`: two numbers.
fn parse_range(text: &str) -> Option<RangeInclusive<u16>> {
    let mut it = text.split_whitespace().map(str::parse::<u16>);
    let (low, high) = (it.next()?.ok()?, it.next()?.ok()?);
    Some(low..=high)
}

/// `ip_local_reserved_ports`: `8080,50000-50999` (empty when none); what does not parse is
/// skipped.
fn parse_reserved(text: &str) -> Vec<RangeInclusive<u16>> {
    text.trim()
        .split(',')
        .filter_map(|part| {
            let part = part.trim();
            match part.split_once('-') {
                Some((a, b)) => Some(a.trim().parse().ok()?..=b.trim().parse().ok()?),
                None => part.parse().ok().map(|p| p..=p),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passive_ports_in_the_unreserved_ephemeral_range_are_named() {
        let eph = parse_range("32768\t60999\n").unwrap();
        assert_eq!(eph, 32768..=60999);
        let w = overlap_warning(&(50000..=50999), eph.clone(), &[]).unwrap();
        assert!(
            w.starts_with("1000 of the 1000 ports of ftp.passive-ports (50000-50999)"),
            "{w}"
        );
        assert!(
            w.contains("net.ipv4.ip_local_reserved_ports=50000-50999"),
            "{w}"
        );
        // Reserved, partly or wholly.
        let reserved = parse_reserved("8080, 50000-50499\n");
        assert_eq!(reserved, vec![8080..=8080, 50000..=50499]);
        let w = overlap_warning(&(50000..=50999), eph.clone(), &reserved).unwrap();
        assert!(w.starts_with("500 of the 1000"), "{w}");
        let all = parse_reserved("50000-50999");
        assert_eq!(overlap_warning(&(50000..=50999), eph.clone(), &all), None);
        // Outside the range, or straddling its end.
        assert_eq!(overlap_warning(&(61000..=61999), eph.clone(), &[]), None);
        let w = overlap_warning(&(60990..=61009), eph, &[]).unwrap();
        assert!(w.starts_with("10 of the 20"), "{w}");
        assert_eq!(parse_reserved("\n"), vec![]);
        assert_eq!(parse_range("garbage"), None);
    }
}
