//! The PROXY protocol from load balancers (`ftp.proxy-protocol-from`): the header names the
//! client, and the client's address is the one of logins, bans, caps, STAT and the log; passive
//! data connections may come from the balancer; a balancer's connection without a header is
//! refused, and a header from anyone else is not taken.
//!
//! The balancer here is the test itself, on 127.0.0.1 (or 127.0.0.2, another loopback
//! address), sending the header a real one sends; `tests/scaleout.rs` puts HAProxy in front.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::control::{Control, connect_data, connect_from};
use common::{Gateway, Sim, pattern};
use ppp::v2::{Builder, Command, Protocol, Version};

const ADMIN: (&str, &str) = ("admin", "adminpw");
const ALICE: (&str, &str) = ("alice", "alicepw");
/// A second loopback address, for a peer that is neither the client nor a balancer.
const OTHER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// A gateway that takes PROXY headers from 127.0.0.1 only.
fn start(extra_ftp: &str) -> (Sim, Gateway) {
    let sim = Sim::start_default();
    let gw = Gateway::start(
        &sim,
        &format!(
            "proxy-protocol-from = [\"127.0.0.1\"]\npassive-host = \"127.0.0.1\"\n{extra_ftp}"
        ),
    );
    (sim, gw)
}

/// A control connection relayed for `client` with a v1 header; the greeting is read.
fn relayed_v1(gw: &Gateway, client: &str) -> Control {
    let mut c = open_relayed_v1(gw, client);
    c.reply().assert_code(220);
    c
}

/// A control connection relayed for `client` with a v1 header; nothing is read yet.
fn open_relayed_v1(gw: &Gateway, client: &str) -> Control {
    let client: SocketAddr = client.parse().unwrap();
    let family = if client.is_ipv4() { "TCP4" } else { "TCP6" };
    let (dst_ip, dst_port) = (gw.addr.ip(), gw.addr.port());
    let dst_ip = if client.is_ipv4() {
        dst_ip.to_string()
    } else {
        "::1".to_string()
    };
    let mut c = Control::open(gw.addr);
    c.send(
        format!(
            "PROXY {family} {} {dst_ip} {} {dst_port}\r\n",
            client.ip(),
            client.port()
        )
        .as_bytes(),
    );
    c
}

/// The bytes of a v2 header.
fn v2_header(command: Command, client: &str, gateway: SocketAddr) -> Vec<u8> {
    let client: SocketAddr = client.parse().unwrap();
    let gateway = if client.is_ipv4() {
        gateway
    } else {
        "[::1]:21".parse().unwrap()
    };
    Builder::with_addresses(Version::Two | command, Protocol::Stream, (client, gateway))
        .build()
        .unwrap()
}

/// A control connection relayed for `client` with a v2 header; the greeting is read.
fn relayed_v2(gw: &Gateway, client: &str) -> Control {
    let mut c = Control::open(gw.addr);
    c.send(&v2_header(Command::Proxy, client, gw.addr));
    c.reply().assert_code(220);
    c
}

/// STAT's line naming the client's address.
fn stat_client(c: &mut Control) -> String {
    let reply = c.cmd("STAT");
    reply.assert_code(211);
    reply
        .lines
        .iter()
        .find(|l| l.contains("client addr"))
        .unwrap_or_else(|| panic!("no client address in {reply:#?}"))
        .clone()
}

/// Relayed sessions (v1 and v2 headers, IPv4 and IPv6 clients) are their clients': STAT and
/// the log name the client, and their passive data connections, which come from the balancer,
/// carry real transfers both ways with PASV and EPSV.
#[test]
fn relayed_sessions_are_their_clients_and_transfer_through_the_balancer() {
    let (sim, gw) = start("");
    let file = pattern(3 << 20, 15);
    std::fs::write(sim.disk_path("/down.bin"), &file).unwrap();

    let mut c = relayed_v1(&gw, "192.0.2.10:40000");
    c.user_pass(ADMIN);
    assert!(stat_client(&mut c).contains("192.0.2.10:40000"));
    // PASV, and the data connection from the balancer's address (this test's).
    let addr = c.pasv();
    let mut data = connect_data(addr);
    c.cmd("RETR /down.bin").assert_code(150);
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    c.reply().assert_code(226);
    assert!(got == file, "the download differs ({} bytes)", got.len());
    c.cmd("QUIT").assert_code(221);

    let mut c = relayed_v2(&gw, "[2001:db8::7]:50123");
    c.user_pass(ADMIN);
    assert!(stat_client(&mut c).contains("[2001:db8::7]:50123"));
    let upload = pattern(2 << 20, 16);
    let addr = c.epsv(gw.addr.ip());
    let mut data = connect_data(addr);
    c.cmd("STOR /up.bin").assert_code(150);
    data.write_all(&upload).unwrap();
    drop(data);
    c.reply().assert_code(226);
    assert!(std::fs::read(sim.disk_path("/up.bin")).unwrap() == upload);
    c.cmd("QUIT").assert_code(221);

    let log = gw.log_where("both logins", |log| log.matches(" login ").count() >= 2);
    for (user, client) in [("admin", "192.0.2.10"), ("admin", "2001:db8::7")] {
        assert!(
            log.lines().any(|l| l.contains("login")
                && l.contains(&format!("user=\"{user}\""))
                && l.contains(&format!("client={client}"))),
            "no login of {user} from {client} in the log:\n{log}"
        );
    }
    assert!(
        gw.loud_lines().is_empty(),
        "warnings: {:#?}",
        gw.loud_lines()
    );
}

/// Failed logins ban the client the header names, not the balancer: other clients through the
/// same balancer log in; the per-address cap counts clients too.
#[test]
fn bans_and_caps_count_the_client_not_the_balancer() {
    let (_sim, gw) = start(
        "max-connections-per-ip = 2\nfailed-logins.max-per-address = 3\nfailed-logins.delay-ms = 1",
    );
    for _ in 0..3 {
        let mut c = relayed_v1(&gw, "192.0.2.66:1000");
        c.cmd("USER admin").assert_code(331);
        c.cmd("PASS wrong").assert_code(530);
    }
    open_relayed_v1(&gw, "192.0.2.66:1001")
        .reply()
        .assert_says(421, "Too many failed logins from your address");
    let mut other = relayed_v2(&gw, "192.0.2.67:1000");
    other.user_pass(ADMIN);
    other.assert_in_step();
    let log = gw.log_where("the ban", |log| log.contains("address banned"));
    assert!(
        log.lines()
            .any(|l| l.contains("address banned") && l.contains("client=192.0.2.66")),
        "{log}"
    );

    // Two connections of one client at most; another client still gets in.
    let _one = relayed_v1(&gw, "198.51.100.1:1");
    let _two = relayed_v1(&gw, "198.51.100.1:2");
    open_relayed_v1(&gw, "198.51.100.1:3")
        .reply()
        .assert_says(421, "Too many connections from your address");
    let mut elsewhere = relayed_v1(&gw, "198.51.100.2:1");
    elsewhere.user_pass(ALICE);
}

/// From a balancer's address the header is required: anything else is refused with 421 and
/// closed; a connection that closes before a byte (a TCP health check) is not worth a warning;
/// the balancer's own LOCAL and UNKNOWN connections are served as the balancer's.
#[test]
fn a_balancer_connection_without_a_valid_header_is_refused() {
    let (_sim, gw) = start("");
    for bad in [
        &b"USER admin\r\n"[..],
        b"PROXY TCP4 192.0.2.1 10.0.0.1 1 21 and more\r\n",
        b"PROXY TCP4 999.0.2.1 10.0.0.1 1 21\r\n",
    ] {
        let mut c = Control::open(gw.addr);
        c.send(bad);
        c.reply()
            .assert_says(421, "the load balancer sent no valid PROXY protocol header");
        assert!(c.replies_until_closed().is_empty());
    }
    for _ in 0..3 {
        drop(TcpStream::connect(gw.addr).unwrap());
    }
    let mut local = Control::open(gw.addr);
    local.send(&v2_header(Command::Local, "10.0.0.1:1", gw.addr));
    local.reply().assert_code(220);
    local.user_pass(ADMIN);
    assert!(stat_client(&mut local).contains("127.0.0.1"));
    let mut unknown = Control::open(gw.addr);
    unknown.send(b"PROXY UNKNOWN\r\n");
    unknown.reply().assert_code(220);
    unknown.cmd("QUIT").assert_code(221);

    let log = gw.log_where("three refusals", |log| {
        log.matches("PROXY protocol header").count() >= 3
    });
    let loud = gw.loud_lines();
    assert_eq!(
        loud.len(),
        3,
        "one warning per refused connection: {loud:#?}"
    );
    assert!(
        loud.iter().all(
            |l| l.contains("balancer=127.0.0.1") && l.contains("invalid PROXY protocol header")
        ),
        "{loud:#?}\n{log}"
    );
}

/// A header from an address that is not a balancer's is an unknown command: the session stays
/// the socket peer's, and a forged v2 header (whose bytes hold QUIT) ends the session.
#[test]
fn a_header_from_anyone_else_is_not_taken() {
    let sim = Sim::start_default();
    let gw = Gateway::start(&sim, "proxy-protocol-from = [\"192.0.2.0/24\"]");
    let mut c = Control::connect(gw.addr);
    let reply = c.cmd("PROXY TCP4 203.0.113.9 127.0.0.1 1 21");
    assert!(reply.code >= 500, "{reply:#?}");
    c.user_pass(ADMIN);
    assert!(stat_client(&mut c).contains("127.0.0.1"));
    c.cmd("QUIT").assert_code(221);

    let mut forged = Control::connect(gw.addr);
    forged.send(&v2_header(Command::Proxy, "203.0.113.9:1", gw.addr));
    let replies = forged.replies_until_closed();
    assert_eq!(replies.last().map(|r| r.code), Some(221), "{replies:#?}");

    let log = gw.log_where("the login", |log| log.contains(" login "));
    assert!(!log.contains("203.0.113.9"), "{log}");
    assert!(
        log.lines()
            .any(|l| l.contains(" login ") && l.contains("client=127.0.0.1")),
        "{log}"
    );
}

/// In a relayed session, a data connection from neither the client nor a balancer is refused,
/// and the transfer waiting for it gets 425 at once.
#[test]
fn a_relayed_session_refuses_data_from_elsewhere_with_a_425_at_once() {
    let (sim, gw) = start("data-timeout = 30");
    std::fs::write(sim.disk_path("/f"), b"not for strangers").unwrap();
    let mut c = relayed_v1(&gw, "192.0.2.10:40000");
    c.user_pass(ADMIN);
    let addr = c.pasv();
    let mut stranger = connect_from(OTHER, addr);
    let asked = Instant::now();
    c.cmd("RETR /f").assert_says(
        425,
        "Data connection refused: it did not come from the client's address",
    );
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );
    let mut byte = [0u8; 1];
    assert!(matches!(stranger.read(&mut byte), Ok(0) | Err(_)));
    c.assert_in_step();
}
