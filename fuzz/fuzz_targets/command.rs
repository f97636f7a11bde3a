//! Arbitrary bytes on a control connection: libunftp's line codec and command parser (private
//! to libunftp, so reached through a real connection to a gateway in front of the
//! simulator), and behind them every command handler, logged in or not.
//!
//! The server must answer (when the client waits for each reply) and close the connection
//! after the client's end-of-file, and what it sent must be well-formed replies: CRLF-terminated lines, each reply a `ddd text` line or a
//! `ddd-` … `ddd ` block whose inner lines cannot pass for a reply, the first one the 220
//! greeting, and no more replies than the client sent lines (plus the greeting).

#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use qftpd::ftp::fuzzing::ControlProbe;

/// Commands that open data connections: the probe opens none, so a transfer after them would
/// wait for the data timeout. They are replaced by NOOP.
const DATA_CONNECTION: [&[u8]; 7] = [
    b"PASV", b"EPSV", b"SPSV", b"LPSV", b"PORT", b"EPRT", b"LPRT",
];

/// How long a session may take to answer everything and close.
const LIMIT: Duration = Duration::from_secs(20);

/// With `FUZZ_COMMAND_LOCKSTEP=1` in the environment every input is sent in lockstep (bit 1),
/// to explore past a hang that pipelined commands cause.
fn lockstep_only() -> bool {
    static LOCKSTEP: OnceLock<bool> = OnceLock::new();
    *LOCKSTEP.get_or_init(|| std::env::var_os("FUZZ_COMMAND_LOCKSTEP").is_some_and(|v| v == "1"))
}

fn probe() -> &'static ControlProbe {
    static PROBE: OnceLock<ControlProbe> = OnceLock::new();
    PROBE.get_or_init(|| {
        // The cluster's files, under fuzz/target (fuzz/run removes them after the run).
        let dir = format!(
            "{}/target/probe-{}",
            env!("CARGO_MANIFEST_DIR"),
            std::process::id()
        );
        ControlProbe::start(std::path::Path::new(&dir)).expect("the probe starts")
    })
}

// The input: a flags byte (bit 0: log in first as the probe's user, who is confined to its
// home; bit 1: send each line once the previous one is answered, instead of all at once),
// then the bytes to send.
fuzz_target!(|data: &[u8]| {
    let Some((&flags, data)) = data.split_first() else {
        return;
    };
    let mut input = Vec::with_capacity(data.len());
    for (i, line) in data.split(|b| *b == b'\n').enumerate() {
        if i > 0 {
            input.push(b'\n');
        }
        input.extend_from_slice(without_data_connection(line));
    }
    let login = flags & 1 == 1;
    let lockstep = flags & 2 == 2 || lockstep_only();
    if lockstep {
        // A Telnet command (IAC, 0xFF, then one or two bytes) at the start of a line is
        // skipped, and may take the line's LF with it: that line gets no reply to wait for.
        input.retain(|b| *b != 0xFF);
    }
    // The commands sent, USER and PASS included; `ABOR\r` is a command of its own (an urgent
    // ABOR whose LF was sent as TCP urgent data).
    let abor = input
        .windows(5)
        .filter(|w| w.eq_ignore_ascii_case(b"ABOR\r"))
        .count();
    let lines = input.iter().filter(|b| **b == b'\n').count() + 1 + 2 * usize::from(login) + abor;
    let out = probe()
        .exchange(login, lockstep, &input, LIMIT)
        .expect("a control connection");
    let Some(out) = out else {
        panic!("the session hung: no reply, or no end after the client's, within {LIMIT:?}");
    };
    check_replies(&out, lines);
});

fn without_data_connection(line: &[u8]) -> &[u8] {
    let trimmed = line.trim_ascii_start();
    let verb = trimmed
        .split(|b| b.is_ascii_whitespace())
        .next()
        .unwrap_or_default();
    if DATA_CONNECTION.iter().any(|c| c.eq_ignore_ascii_case(verb)) {
        b"NOOP\r"
    } else {
        line
    }
}

/// `sent`: how many commands were sent, at most.
fn check_replies(out: &[u8], sent: usize) {
    let text = String::from_utf8_lossy(out);
    let Some(body) = text.strip_suffix("\r\n") else {
        assert!(
            out.is_empty(),
            "the last line is not ended by CRLF: {text:?}"
        );
        return;
    };
    let mut replies = 0;
    let mut open: Option<&str> = None;
    for line in body.split("\r\n") {
        assert!(
            !line.contains(['\r', '\n']),
            "bare CR or LF: {line:?} in {text:?}"
        );
        if let Some(code) = open {
            if line.starts_with(code) && line[3..].starts_with(' ') {
                open = None;
            } else {
                let digit = line.starts_with(|c: char| c.is_ascii_digit());
                assert!(
                    !digit,
                    "an inner line looks like a reply: {line:?} in {text:?}"
                );
            }
            continue;
        }
        let b = line.as_bytes();
        let code_ok =
            b.len() >= 3 && (b'1'..=b'5').contains(&b[0]) && b[1..3].iter().all(u8::is_ascii_digit);
        assert!(code_ok, "a reply without a code: {line:?} in {text:?}");
        if replies == 0 {
            assert!(line.starts_with("220"), "no greeting: {text:?}");
        }
        replies += 1;
        match b.get(3) {
            None | Some(b' ') => {}
            Some(b'-') => open = Some(&line[..3]),
            Some(_) => panic!("code not followed by space or dash: {line:?} in {text:?}"),
        }
    }
    assert!(open.is_none(), "an unfinished multi-line reply: {text:?}");
    assert!(
        replies <= sent + 1,
        "{replies} replies to {sent} lines: {text:?}"
    );
}
