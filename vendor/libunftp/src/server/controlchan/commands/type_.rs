//! The RFC 959 Representation Type (`TYPE`) command
//
// The argument specifies the representation type as described
// in the Section on Data Representation and Storage.  Several
// types take a second parameter.  The first parameter is
// denoted by a single Telnet character, as is the second
// Format parameter for ASCII and EBCDIC; the second parameter
// for local byte is a decimal integer to indicate Bytesize.
// The parameters are separated by a <SP> (Space, ASCII code
// 32).
//
// The following codes are assigned for type:
//
//           \    /
// A - ASCII |    | N - Non-print
//           |-><-| T - Telnet format effectors
// E - EBCDIC|    | C - Carriage Control (ASA)
//           /    \
// I - Image
//
// L <byte size> - Local byte Byte size
//
//
// The default representation type is ASCII Non-print.  If the
// Format parameter is changed, and later just the first
// argument is changed, Format then returns to the Non-print
// default.

use crate::{
    auth::UserDetail,
    server::controlchan::{
        Reply, ReplyCode,
        error::ControlChanError,
        handler::{CommandContext, CommandHandler},
    },
    storage::{Metadata, StorageBackend},
};
use async_trait::async_trait;

// qftpd patch: the argument is checked: ASCII Non-print (`A`, `A N`), Image (`I`) and Local
// byte size 8 (`L 8`) are accepted and all transfer bytes as they are (the gateway has no text
// conversion, like most servers); other types get 504, a missing argument 501.
#[derive(Debug)]
pub struct Type {
    param: String,
}

impl Type {
    pub fn new(param: String) -> Self {
        Type { param }
    }
}

#[async_trait]
impl<Storage, User> CommandHandler<Storage, User> for Type
where
    User: UserDetail + 'static,
    Storage: StorageBackend<User> + 'static,
    Storage::Metadata: Metadata,
{
    #[tracing_attributes::instrument]
    async fn handle(&self, _args: CommandContext<Storage, User>) -> Result<Reply, ControlChanError> {
        let words: Vec<String> = self.param.split_whitespace().map(|w| w.to_ascii_uppercase()).collect();
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        match words.as_slice() {
            [] => Ok(Reply::new(ReplyCode::ParameterSyntaxError, "TYPE needs an argument (A, I or L 8)")),
            ["A"] | ["A", "N"] => Ok(Reply::new(ReplyCode::CommandOkay, "Type set to A")),
            ["I"] => Ok(Reply::new(ReplyCode::CommandOkay, "Type set to I")),
            ["L", "8"] | ["L8"] => Ok(Reply::new(ReplyCode::CommandOkay, "Type set to L 8")),
            _ => Ok(Reply::new_with_string(
                ReplyCode::CommandNotImplementedForParameter,
                format!("TYPE {} not implemented", self.param.trim().replace(['\r', '\n'], " ")),
            )),
        }
    }
}
