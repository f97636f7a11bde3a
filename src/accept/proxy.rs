//! The PROXY protocol header (v1 text or v2 binary, as HAProxy, keepalived/IPVS front ends and
//! cloud load balancers send it) that a trusted load balancer puts before a relayed control
//! connection, naming the client. Exactly the header's bytes are read (never a byte of what
//! follows: the FTP session reads that), and the parsing is the `ppp` crate's.

use std::net::SocketAddr;
use std::time::Duration;

use ppp::{HeaderResult, v1, v2};
use tokio::io::{AsyncRead, AsyncReadExt};

/// How long a balancer may take to send its header after connecting. Balancers send it at
/// once, with the connection's first bytes.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// The v2 header's first 12 bytes.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v1 header, CRLF included (the protocol's own limit).
const V1_MAX: usize = 107;
/// The longest v2 header accepted: the addresses and a few TLVs (the protocol allows 64 KiB of
/// them, which no balancer sends before an FTP session).
const V2_MAX: usize = 4096;

/// Who a relayed connection is from, by its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A client at this address (and port).
    Client(SocketAddr),
    /// The balancer's own connection (`PROXY UNKNOWN`, v2 `LOCAL`, or an address family other
    /// than IP): a health check. The socket's peer stands for the client.
    Balancer,
}

/// Why a relayed connection was not served.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    /// The connection closed before a byte came: a TCP health check.
    #[error("closed before its PROXY protocol header (a TCP health check)")]
    Closed,
    /// No (complete) header in time.
    #[error("no PROXY protocol header within {} s", HEADER_TIMEOUT.as_secs())]
    Timeout,
    /// Something else than a header, or a broken one.
    #[error("invalid PROXY protocol header: {0}")]
    Invalid(String),
    /// Reading failed.
    #[error("reading the PROXY protocol header failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads the header at the start of `stream`, within `HEADER_TIMEOUT`.
pub async fn read_header<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Origin, HeaderError> {
    let header = tokio::time::timeout(HEADER_TIMEOUT, read_bytes(stream))
        .await
        .map_err(|_| HeaderError::Timeout)??;
    parse(&header)
}

/// The header's bytes: the first 12 tell which version it is (both are at least 15 bytes
/// long), then v2 says its length and v1 ends with CRLF.
async fn read_bytes<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Vec<u8>, HeaderError> {
    let mut header = vec![0; V2_SIGNATURE.len()];
    let first = stream.read(&mut header).await?;
    if first == 0 {
        return Err(HeaderError::Closed);
    }
    stream
        .read_exact(&mut header[first..])
        .await
        .map_err(eof_is_invalid)?;
    if header == V2_SIGNATURE {
        let mut rest = [0; 4];
        stream.read_exact(&mut rest).await.map_err(eof_is_invalid)?;
        let length = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        if V2_SIGNATURE.len() + rest.len() + length > V2_MAX {
            return Err(HeaderError::Invalid(format!(
                "a v2 header of {length} bytes of addresses and TLVs (at most {} are read)",
                V2_MAX - 16
            )));
        }
        header.extend_from_slice(&rest);
        let start = header.len();
        header.resize(start + length, 0);
        stream
            .read_exact(&mut header[start..])
            .await
            .map_err(eof_is_invalid)?;
        return Ok(header);
    }
    if !header.starts_with(b"PROXY ") {
        return Err(HeaderError::Invalid(format!(
            "the connection began with {:?}",
            String::from_utf8_lossy(&header)
        )));
    }
    if header.windows(2).any(|pair| pair == b"\r\n") {
        return Err(HeaderError::Invalid(format!(
            "a v1 header shorter than the shortest there is: {:?}",
            String::from_utf8_lossy(&header)
        )));
    }
    while !header.ends_with(b"\r\n") {
        if header.len() == V1_MAX {
            return Err(HeaderError::Invalid(format!(
                "no CRLF within the {V1_MAX} bytes of a v1 header"
            )));
        }
        header.push(stream.read_u8().await.map_err(eof_is_invalid)?);
    }
    Ok(header)
}

fn eof_is_invalid(e: std::io::Error) -> HeaderError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        HeaderError::Invalid("the connection closed inside the header".to_string())
    } else {
        HeaderError::Io(e)
    }
}

/// What a complete header's bytes say.
pub fn parse(header: &[u8]) -> Result<Origin, HeaderError> {
    let invalid = |e: &dyn std::fmt::Display| HeaderError::Invalid(e.to_string());
    match HeaderResult::parse(header) {
        HeaderResult::V1(Ok(h)) => Ok(match h.addresses {
            v1::Addresses::Tcp4(a) => {
                Origin::Client(SocketAddr::from((a.source_address, a.source_port)))
            }
            v1::Addresses::Tcp6(a) => {
                Origin::Client(SocketAddr::from((a.source_address, a.source_port)))
            }
            v1::Addresses::Unknown => Origin::Balancer,
        }),
        HeaderResult::V1(Err(e)) => Err(invalid(&e)),
        HeaderResult::V2(Ok(h)) => Ok(match (h.command, h.addresses) {
            (v2::Command::Local, _) => Origin::Balancer,
            (v2::Command::Proxy, v2::Addresses::IPv4(a)) => {
                Origin::Client(SocketAddr::from((a.source_address, a.source_port)))
            }
            (v2::Command::Proxy, v2::Addresses::IPv6(a)) => {
                Origin::Client(SocketAddr::from((a.source_address, a.source_port)))
            }
            (v2::Command::Proxy, v2::Addresses::Unspecified | v2::Addresses::Unix(_)) => {
                Origin::Balancer
            }
        }),
        HeaderResult::V2(Err(e)) => Err(invalid(&e)),
    }
}

#[cfg(test)]
mod tests;
