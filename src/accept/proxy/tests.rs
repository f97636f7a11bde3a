use super::*;
use ppp::v2::{Builder, Command, Protocol, Version};

/// Reads a header from `bytes` and returns what it said and the bytes left after it.
async fn read(bytes: &[u8]) -> (Result<Origin, HeaderError>, Vec<u8>) {
    let mut rest = bytes;
    let origin = read_header(&mut rest).await;
    (origin, rest.to_vec())
}

fn v2(command: Command, addresses: (&str, &str)) -> Vec<u8> {
    let pair: (SocketAddr, SocketAddr) =
        (addresses.0.parse().unwrap(), addresses.1.parse().unwrap());
    Builder::with_addresses(Version::Two | command, Protocol::Stream, pair)
        .write_tlv(ppp::v2::Type::UniqueId, b"abc")
        .unwrap()
        .build()
        .unwrap()
}

#[tokio::test]
async fn v1_headers_name_the_client_and_nothing_after_them_is_read() {
    let (origin, rest) = read(b"PROXY TCP4 192.0.2.10 10.0.0.2 40000 21\r\nUSER a\r\n").await;
    assert_eq!(
        origin.unwrap(),
        Origin::Client("192.0.2.10:40000".parse().unwrap())
    );
    assert_eq!(rest, b"USER a\r\n");

    let (origin, rest) = read(b"PROXY TCP6 2001:db8::7 2001:db8::1 40001 21\r\n").await;
    assert_eq!(
        origin.unwrap(),
        Origin::Client("[2001:db8::7]:40001".parse().unwrap())
    );
    assert!(rest.is_empty());

    // The shortest header there is (15 bytes), with nothing after it: no read waits for more.
    let (origin, _) = read(b"PROXY UNKNOWN\r\n").await;
    assert_eq!(origin.unwrap(), Origin::Balancer);
}

#[tokio::test]
async fn v2_headers_name_the_client_local_ones_the_balancer() {
    let mut bytes = v2(Command::Proxy, ("198.51.100.4:50123", "10.0.0.2:21"));
    bytes.extend_from_slice(b"USER a\r\n");
    let (origin, rest) = read(&bytes).await;
    assert_eq!(
        origin.unwrap(),
        Origin::Client("198.51.100.4:50123".parse().unwrap())
    );
    assert_eq!(rest, b"USER a\r\n");

    let bytes = v2(Command::Proxy, ("[2001:db8::9]:1024", "[2001:db8::1]:21"));
    let (origin, rest) = read(&bytes).await;
    assert_eq!(
        origin.unwrap(),
        Origin::Client("[2001:db8::9]:1024".parse().unwrap())
    );
    assert!(rest.is_empty());

    let (origin, _) = read(&v2(Command::Local, ("10.0.0.1:1", "10.0.0.2:21"))).await;
    assert_eq!(origin.unwrap(), Origin::Balancer);
}

#[tokio::test]
async fn what_is_not_a_header_is_refused_without_reading_past_it() {
    let (origin, rest) = read(b"USER anonymous\r\nPASS x\r\n").await;
    assert!(
        matches!(origin, Err(HeaderError::Invalid(ref e)) if e.contains("USER anonymo\"")),
        "{origin:?}"
    );
    assert_eq!(rest, b"us\r\nPASS x\r\n", "12 bytes read, no more");

    let (origin, _) = read(b"").await;
    assert!(matches!(origin, Err(HeaderError::Closed)), "{origin:?}");

    // A v1 line that never ends within the protocol's 107 bytes.
    let long = format!("PROXY TCP4 {}\r\n", "1".repeat(200));
    let (origin, rest) = read(long.as_bytes()).await;
    assert!(
        matches!(origin, Err(HeaderError::Invalid(ref e)) if e.contains("107")),
        "{origin:?}"
    );
    assert_eq!(rest.len(), long.len() - 107);

    // A line that ends within the first 12 bytes: nothing after it is read.
    let (origin, rest) = read(b"PROXY X\r\nUSER a\r\n").await;
    assert!(
        matches!(origin, Err(HeaderError::Invalid(ref e)) if e.contains("shorter")),
        "{origin:?}"
    );
    assert_eq!(rest, b"R a\r\n");

    let (origin, _) = read(b"PROXY TCP4 300.0.0.1 10.0.0.2 1 21\r\n").await;
    assert!(matches!(origin, Err(HeaderError::Invalid(_))), "{origin:?}");

    let (origin, _) = read(b"PROXY TCP4 192.0.2.1 10.0").await;
    assert!(
        matches!(origin, Err(HeaderError::Invalid(ref e)) if e.contains("closed inside")),
        "{origin:?}"
    );

    // A v2 header announcing more than is read.
    let mut big = V2_SIGNATURE.to_vec();
    big.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
    let (origin, _) = read(&big).await;
    assert!(
        matches!(origin, Err(HeaderError::Invalid(ref e)) if e.contains("65535")),
        "{origin:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_header_that_does_not_come_times_out() {
    let (_keep, mut quiet) = tokio::io::duplex(64);
    let started = tokio::time::Instant::now();
    assert!(matches!(
        read_header(&mut quiet).await,
        Err(HeaderError::Timeout)
    ));
    assert_eq!(started.elapsed(), HEADER_TIMEOUT);
}
