//! The PROXY protocol header a load balancer sends before a relayed control connection.
//!
//! Whatever the bytes, reading the header never panics and never reads past the header: a v1
//! header ends at its first CRLF (107 bytes at most), a v2 header after the length its 15th
//! and 16th bytes say; the first 12 bytes are read in one go (no header is shorter). A header that was read parses to the same origin on its own, and the bytes after
//! it are left for the FTP session.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use qftpd::accept::fuzzing::{HeaderError, parse, read_header};

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime")
});

const V2_SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";

/// How long the header at the start of `data` is, by the protocol's framing alone (not
/// whether it is valid), when that can be told from `data`.
fn framed_length(data: &[u8]) -> Option<usize> {
    if data.starts_with(V2_SIGNATURE) && data.len() >= 16 {
        return Some(16 + usize::from(u16::from_be_bytes([data[14], data[15]])));
    }
    if data.starts_with(b"PROXY ") {
        return data.windows(2).position(|w| w == b"\r\n").map(|i| i + 2);
    }
    None
}

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    let got = RUNTIME.block_on(read_header(&mut rest));
    let consumed = data.len() - rest.len();
    assert!(consumed <= 4096, "{consumed} bytes read");
    match got {
        Ok(origin) => {
            let header = &data[..consumed];
            assert_eq!(Some(consumed), framed_length(data), "read {header:?}");
            assert_eq!(parse(header).ok(), Some(origin), "{header:?}");
            // The same header before other bytes: the same origin, and those bytes untouched.
            let mut more = header.to_vec();
            more.extend_from_slice(b"USER x\r\n");
            let mut after = more.as_slice();
            let again = RUNTIME.block_on(read_header(&mut after));
            assert_eq!(again.ok(), Some(origin));
            assert_eq!(after, b"USER x\r\n");
        }
        Err(HeaderError::Closed) => assert!(data.is_empty()),
        Err(HeaderError::Timeout) => panic!("a slice never keeps the reader waiting"),
        Err(HeaderError::Invalid(_) | HeaderError::Io(_)) => {
            // The first 12 bytes are read whatever they are: no valid header is shorter (15).
            if let Some(length) = framed_length(data) {
                let most = length.max(12);
                assert!(
                    consumed <= most,
                    "{consumed} bytes read of a {length}-byte header"
                );
            } else if data.starts_with(V2_SIGNATURE) {
                assert!(
                    consumed <= 16,
                    "{consumed} bytes read of a v2 header's 16-byte start"
                );
            } else if data.starts_with(b"PROXY ") {
                assert!(
                    consumed <= 107,
                    "{consumed} bytes of a v1 header without CRLF"
                );
            } else {
                assert!(consumed <= 12, "{consumed} bytes read of no header");
            }
        }
    }
});
