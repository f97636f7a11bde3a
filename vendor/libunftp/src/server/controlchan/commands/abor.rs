//! The RFC 959 Abort (`ABOR`) command
//
// This command tells the server to abort the previous FTP
// service command and any associated transfer of data. The
// abort command may require "special action", as discussed in
// the Section on FTP Commands, to force recognition by the
// server.  No action is to be taken if the previous command
// has been completed (including data transfer).  The control
// connection is not to be closed by the server, but the data
// connection must be closed.

use crate::server::chancomms::ControlChanMsg;
use crate::server::controlchan::{
    Reply, ReplyCode,
    error::ControlChanError,
    handler::{CommandContext, CommandHandler},
};
use async_trait::async_trait;
use unftp_core::auth::UserDetail;
use unftp_core::storage::{Metadata, StorageBackend};

#[derive(Debug)]
pub struct Abor;

#[async_trait]
impl<Storage, User> CommandHandler<Storage, User> for Abor
where
    Storage: StorageBackend<User> + 'static,
    Storage::Metadata: Metadata,
    User: UserDetail + 'static,
{
    #[tracing_attributes::instrument]
    async fn handle(&self, args: CommandContext<Storage, User>) -> Result<Reply, ControlChanError> {
        let mut session = args.session.lock().await;
        let logger = args.logger;
        // qftpd patch: a passive listener still waiting is closed (RFC 959: ABOR closes the
        // data connection), and its port is free.
        session.passive_listener = None;
        match session.data_abort_tx.take() {
            // qftpd patch: a running data task (data_busy) answers the ABOR itself, after the
            // reply of the transfer it stops (426, then 226: RFC 959 wants them in this order,
            // which two independent senders could not keep). The signal is sent under the
            // session lock, under which the data task also ends, so it is never lost.
            Some(tx) if session.data_busy && tx.try_send(()).is_ok() => Ok(Reply::none()),
            Some(_) => {
                // qftpd patch: no data connection yet. One that comes later is not used; a
                // transfer command waiting for it is aborted: 426, then 226.
                let waiting = session.data_cmd_tx.is_none() && session.data_cmd_rx.is_some();
                session.data_abort_rx = None;
                session.data_cmd_tx = None;
                session.data_cmd_rx = None;
                if !waiting {
                    return Ok(Reply::new(ReplyCode::ClosingDataConnection, "Closed data channel"));
                }
                let tx = args.tx_control_chan.clone();
                tokio::spawn(async move {
                    for reply in [
                        Reply::new(ReplyCode::ConnectionClosed, "Connection closed; transfer aborted"),
                        Reply::new(ReplyCode::ClosingDataConnection, "Closed data channel"),
                    ] {
                        if let Err(err) = tx.send(ControlChanMsg::CommandChannelReply(reply)).await {
                            slog::warn!(logger, "abort failed: {}", err);
                            return;
                        }
                    }
                });
                Ok(Reply::none())
            }
            None => Ok(Reply::new(ReplyCode::ClosingDataConnection, "Data channel already closed")),
        }
    }
}
