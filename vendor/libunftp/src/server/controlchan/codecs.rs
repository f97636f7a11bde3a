use super::{
    Reply,
    command::Command,
    error::{ControlChanError, ControlChanErrorKind},
    line_parser,
};

use bytes::BytesMut;
use std::io::Write;
use tokio_util::codec::{Decoder, Encoder};

// FTPCodec implements tokio's `Decoder` and `Encoder` traits for the control channel, that we'll
// use to decode FTP commands and encode their responses.
pub struct FtpCodec {
    // Stored index of the next index to examine for a '\n' character. This is used to optimize
    // searching. For example, if `decode` was called with `abc`, it would hold `3`, because that
    // is the next index to examine. The next time `decode` is called with `abcde\n`, we will only
    // look at `de\n` before returning.
    next_index: usize,
    // qftpd patch: true while the rest of an over-long line is being skipped.
    discarding: bool,
}

/// The longest command line accepted, not counting its CRLF. (qftpd patch)
pub const MAX_LINE_LEN: usize = 4096;

impl FtpCodec {
    pub fn new() -> Self {
        FtpCodec {
            next_index: 0,
            discarding: false,
        }
    }
}

// qftpd patch: a line that cannot be parsed is an item of its own (`Err`), answered by the control
// loop, instead of a decoder error, after which the framed stream ends and with it the session.
// A line longer than MAX_LINE_LEN is answered as soon as that is known and skipped up to its LF,
// so a client cannot make the buffer grow without bound.
impl Decoder for FtpCodec {
    type Item = Result<Command, ControlChanError>;
    type Error = ControlChanError;

    // Here we decode the incoming bytes into a meaningful command. We'll split on newlines, and
    // parse the resulting line using `Command::parse()`. This method will be called by tokio.
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Self::Item>, Self::Error> {
        loop {
            let newline = buf[self.next_index..].iter().position(|b| *b == b'\n').map(|offset| offset + self.next_index);
            if self.discarding {
                let Some(newline_index) = newline else {
                    buf.clear();
                    self.next_index = 0;
                    return Ok(None);
                };
                let _ = buf.split_to(newline_index + 1);
                self.next_index = 0;
                self.discarding = false;
                continue;
            }
            return Ok(match newline {
                Some(newline_index) => {
                    let line = buf.split_to(newline_index + 1);
                    self.next_index = 0;
                    // The line's length without its CRLF (or bare LF).
                    if line.len() - 1 - usize::from(line.ends_with(b"\r\n")) > MAX_LINE_LEN {
                        Some(Err(ControlChanErrorKind::CommandLineTooLong.into()))
                    } else {
                        Some(line_parser::parse(line).map_err(ControlChanError::from))
                    }
                }
                None if buf.len() > MAX_LINE_LEN + 1 => {
                    buf.clear();
                    self.next_index = 0;
                    self.discarding = true;
                    Some(Err(ControlChanErrorKind::CommandLineTooLong.into()))
                }
                None => {
                    self.next_index = buf.len();
                    None
                }
            });
        }
    }
}

impl Encoder<Reply> for FtpCodec {
    type Error = ControlChanError;

    // Here we encode the outgoing response
    fn encode(&mut self, reply: Reply, buf: &mut BytesMut) -> Result<(), Self::Error> {
        let mut buffer = vec![];
        match reply {
            Reply::None => {
                return Ok(());
            }
            Reply::CodeAndMsg { code, msg } => {
                // qftpd patch: text from data (a path, an error description) with CR or LF in
                // it would otherwise start a line of its own that a client reads as a reply.
                let msg = one_line(msg);
                if msg.is_empty() {
                    writeln!(buffer, "{}\r", code as u32)?;
                } else {
                    writeln!(buffer, "{} {}\r", code as u32, msg)?;
                }
            }
            Reply::MultiLine { code, mut lines } => {
                // qftpd patch: as above, so that no line but the last starts with the code.
                for line in lines.iter_mut() {
                    *line = one_line(std::mem::take(line));
                }
                // Get the last line since it needs to be preceded by the response code.
                let last_line = lines.pop().unwrap_or_default();

                // Lines starting with a digit should be indented
                for it in lines.iter_mut() {
                    if it.chars().next().is_some_and(|c| c.is_ascii_digit()) {
                        it.insert(0, ' ');
                    }
                }
                if lines.is_empty() {
                    writeln!(buffer, "{} {}\r", code as u32, last_line)?;
                } else {
                    write!(buffer, "{}-{}\r\n{} {}\r\n", code as u32, lines.join("\r\n"), code as u32, last_line)?;
                }
            }
        }
        buf.extend(&buffer);
        Ok(())
    }
}

// qftpd patch: CR and LF become '?'.
fn one_line(text: String) -> String {
    if text.contains(['\r', '\n']) { text.replace(['\r', '\n'], "?") } else { text }
}

#[cfg(test)]
mod tests {
    use super::super::ReplyCode;
    use super::*;

    #[test]
    fn encode_multiline_reply_with_blank_line_does_not_panic() {
        let mut codec = FtpCodec::new();
        let mut buf = BytesMut::new();
        let reply = Reply::new_multiline(ReplyCode::HelpMessage, vec!["Usage: foo", "", "Options:"]);

        codec.encode(reply, &mut buf).unwrap();

        assert_eq!(buf, "214-Usage: foo\r\n\r\n214 Options:\r\n".as_bytes());
    }
}
