//! The RFC 2428 Passive (`EPSV`) command
//
// The EPSV command requests that a server listen on a data port and
// wait for a connection. The EPSV command takes an optional argument.
// The response to this command includes only the TCP port number of the
// listening connection.

use crate::{
    auth::UserDetail,
    server::{
        chancomms::SwitchboardSender,
        controlchan::{
            Reply, ReplyCode,
            error::ControlChanError,
            handler::{CommandContext, CommandHandler},
        },
    },
    storage::{Metadata, StorageBackend},
};
use async_trait::async_trait;

use super::passive_common::{self, LegacyReplyProducer};

#[derive(Debug)]
pub struct Epsv {
    // qftpd patch: the network protocol the client asked for (`EPSV 1`, `EPSV 2`).
    protocol: Option<String>,
}

impl Epsv {
    pub fn new(protocol: Option<String>) -> Self {
        Epsv { protocol }
    }
}

/// The network protocol number (RFC 2428: 1 for IPv4, 2 for IPv6) of the control connection's
/// local address; an IPv4-mapped IPv6 address is IPv4. (qftpd patch)
fn protocol_of(addr: std::net::SocketAddr) -> u8 {
    match addr.ip().to_canonical() {
        std::net::IpAddr::V4(_) => 1,
        std::net::IpAddr::V6(_) => 2,
    }
}

/// `EPSV ALL` (RFC 2428 section 4): from now on the client uses only EPSV, and PASV, PORT and
/// EPRT are refused with `503`. (qftpd patch)
#[derive(Debug)]
pub struct EpsvAll;

#[async_trait]
impl<Storage, User> CommandHandler<Storage, User> for EpsvAll
where
    User: UserDetail + 'static,
    Storage: StorageBackend<User> + 'static,
    Storage::Metadata: Metadata,
{
    #[tracing_attributes::instrument]
    async fn handle(&self, args: CommandContext<Storage, User>) -> Result<Reply, ControlChanError> {
        args.session.lock().await.epsv_all = true;
        Ok(Reply::new(ReplyCode::CommandOkay, "EPSV ALL ok: only EPSV from now on"))
    }
}

#[async_trait]
impl<Storage, User> LegacyReplyProducer<Storage, User> for Epsv
where
    User: UserDetail + 'static,
    Storage: StorageBackend<User> + 'static,
{
    async fn build_reply(&self, _args: &CommandContext<Storage, User>, port: u16) -> Result<Reply, ControlChanError> {
        Ok(make_epsv_reply(port))
    }
}

#[async_trait]
impl<Storage, User> CommandHandler<Storage, User> for Epsv
where
    User: UserDetail + 'static,
    Storage: StorageBackend<User> + 'static,
    Storage::Metadata: Metadata,
{
    #[tracing_attributes::instrument]
    async fn handle(&self, args: CommandContext<Storage, User>) -> Result<Reply, ControlChanError> {
        // qftpd patch: RFC 2428 section 3: a protocol other than the control connection's is
        // answered 522 with the one this connection supports.
        if let Some(protocol) = &self.protocol {
            let ours = protocol_of(args.local_addr);
            match protocol.parse::<u8>() {
                Ok(n) if n == ours => {}
                Ok(1 | 2) => {
                    return Ok(Reply::new_with_string(
                        ReplyCode::NetworkProtocolNotSupported,
                        format!("Network protocol not supported, use ({})", ours),
                    ));
                }
                _ if protocol.bytes().all(|b| b.is_ascii_digit()) => {
                    return Ok(Reply::new(ReplyCode::NetworkProtocolNotSupported, "Network protocol not supported, use (1,2)"));
                }
                _ => return Ok(Reply::new(ReplyCode::ParameterSyntaxError, "EPSV takes a network protocol number or ALL")),
            }
        }
        let sender: Option<SwitchboardSender<Storage, User>> = args.tx_prebound_loop.clone();
        match sender {
            Some(_) => Ok(Reply::new(ReplyCode::CommandNotImplemented, "EPSV not supported in this mode")),
            None => passive_common::handle_legacy_mode(self, args).await,
        }
    }
}

pub fn make_epsv_reply(port: u16) -> Reply {
    Reply::new_with_string(ReplyCode::EnteringExtendedPassiveMode, format!("Entering Extended Passive Mode (|||{}|)", port))
}
