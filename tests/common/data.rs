//! Deterministic test data (patterns small and large, verified piece by piece) and digests.

use std::io::Read;
use std::path::Path;

/// Lower-case hex of `data`.
pub fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes of a hex string.
pub fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

/// `len` deterministic pseudo-random bytes (xorshift), different for each `seed`.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Block size of [`BigPattern`].
pub const BIG_BLOCK: usize = 1 << 20;

/// A long deterministic stream: 1 MiB blocks, each a distinct rotation of one pseudo-random
/// block stamped with its index, so a lost, repeated or reordered block shows. Never held in
/// memory beyond one block.
pub struct BigPattern {
    base: Vec<u8>,
    block: Vec<u8>,
    current: Option<u64>,
}

impl Default for BigPattern {
    fn default() -> Self {
        BigPattern {
            base: pattern(BIG_BLOCK, 42),
            block: vec![0u8; BIG_BLOCK],
            current: None,
        }
    }
}

impl BigPattern {
    /// Block `i` of the stream.
    pub fn block(&mut self, i: u64) -> &[u8] {
        if self.current != Some(i) {
            self.current = Some(i);
            let rot = (i as usize).wrapping_mul(4099) % BIG_BLOCK;
            self.block[..BIG_BLOCK - rot].copy_from_slice(&self.base[rot..]);
            self.block[BIG_BLOCK - rot..].copy_from_slice(&self.base[..rot]);
            self.block[..8].copy_from_slice(&i.to_le_bytes());
        }
        &self.block
    }

    /// Writes the first `len` bytes of the stream to `path`.
    pub fn write_file(path: &Path, len: u64) {
        use std::io::Write as _;
        let mut file = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
        let mut stream = BigPattern::default();
        let mut left = len;
        let mut i = 0;
        while left > 0 {
            let n = left.min(BIG_BLOCK as u64) as usize;
            file.write_all(&stream.block(i)[..n]).expect("write");
            left -= n as u64;
            i += 1;
        }
        file.flush().expect("flush");
    }
}

/// Compares a byte stream, piece by piece, with the first `len` bytes of [`BigPattern`].
pub struct PatternVerifier {
    stream: BigPattern,
    len: u64,
    /// Bytes fed so far.
    pub pos: u64,
    /// The first offset whose byte differs (or lies beyond `len`).
    pub first_mismatch: Option<u64>,
}

impl PatternVerifier {
    /// A verifier of the first `len` bytes.
    pub fn new(len: u64) -> Self {
        PatternVerifier {
            stream: BigPattern::default(),
            len,
            pos: 0,
            first_mismatch: None,
        }
    }

    /// Checks the next piece of the stream.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let idx = self.pos / BIG_BLOCK as u64;
            let off = (self.pos % BIG_BLOCK as u64) as usize;
            let n = data.len().min(BIG_BLOCK - off);
            if self.first_mismatch.is_none() {
                let avail = self.len.saturating_sub(self.pos).min(n as u64) as usize;
                let expected = &self.stream.block(idx)[off..off + avail];
                if expected != &data[..avail] || avail < n {
                    let at = expected
                        .iter()
                        .zip(&data[..avail])
                        .position(|(a, b)| a != b)
                        .unwrap_or(avail);
                    self.first_mismatch = Some(self.pos + at as u64);
                }
            }
            self.pos += n as u64;
            data = &data[n..];
        }
    }

    /// Feeds everything `reader` yields.
    pub fn feed_reader(&mut self, reader: &mut impl Read) {
        let mut buf = vec![0u8; BIG_BLOCK];
        loop {
            let n = reader.read(&mut buf).expect("read stream");
            if n == 0 {
                break;
            }
            self.feed(&buf[..n]);
        }
    }

    /// Asserts the stream was exactly the first `len` bytes.
    pub fn assert_complete(&self, what: &str) {
        assert_eq!(
            self.first_mismatch, None,
            "{what}: first offset where the data differs from the source"
        );
        assert_eq!(self.pos, self.len, "{what}: bytes");
    }
}

/// Lower-case hex SHA-256 of the file at `path`, read in pieces.
pub fn sha256_file(path: &Path) -> String {
    use sha2::Digest as _;
    let mut file =
        std::fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    hex(&hasher.finalize())
}
