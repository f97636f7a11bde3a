//! Contains code pertaining to the FTP *data* channel

use super::{
    chancomms::{ControlChanMsg, DataChanMsg},
    controlchan::{Reply, ReplyCode},
    tls::FtpsConfig,
};
use crate::server::session::SharedSession;
use crate::{
    auth::UserDetail,
    storage::{Error, ErrorKind, Metadata, StorageBackend},
};
use unftp_core::storage::{Listing, ListingFormat};

use crate::server::chancomms::DataChanCmd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::{
    path::{Path, PathBuf},
    sync::Arc,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::mpsc::{Receiver, Sender};
use tokio_rustls::TlsAcceptor;

use crate::metrics;

#[derive(Debug)]
struct DataCommandExecutor<Storage, User>
where
    Storage: StorageBackend<User>,
    Storage::Metadata: Metadata,
    User: UserDetail,
{
    pub user: Arc<Option<User>>,
    pub socket: TcpStream,
    pub control_msg_tx: Sender<ControlChanMsg>,
    pub storage: Arc<Storage>,
    pub cwd: PathBuf,
    pub ftps_mode: FtpsConfig,
    pub logger: slog::Logger,
    pub data_cmd_rx: Option<Receiver<DataChanCmd>>,
    pub data_abort_rx: Option<Receiver<()>>,
    // qftpd patch: how long to wait for the transfer command and for the TLS handshake.
    pub timeout: Duration,
    // qftpd patch: set when an upload's data connection reached its end (see `transfer`).
    pub input_ended: Arc<AtomicBool>,
    // qftpd patch: how the TLS handshake of the data connection is held.
    pub handshake: Handshake,
}

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

struct MeasuringWriter<W> {
    writer: W,
    command: &'static str,
}

struct MeasuringReader<R> {
    reader: R,
    command: &'static str,
    // qftpd patch: set at end of file.
    ended: Arc<AtomicBool>,
}

impl<W: AsyncWrite + Unpin> AsyncWrite for MeasuringWriter<W> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> std::task::Poll<Result<usize, std::io::Error>> {
        let this = self.get_mut();

        let result = Pin::new(&mut this.writer).poll_write(cx, buf);
        if let Poll::Ready(Ok(bytes_written)) = &result {
            metrics::inc_sent_bytes(*bytes_written, this.command);
        }

        result
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        Pin::new(&mut this.writer).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        Pin::new(&mut this.writer).poll_shutdown(cx)
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for MeasuringReader<R> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let (room, before) = (buf.remaining() > 0, buf.filled().len());
        let result = Pin::new(&mut this.reader).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &result {
            let bytes_read = buf.filled().len();
            metrics::inc_received_bytes(bytes_read, this.command);
            if room && bytes_read == before {
                this.ended.store(true, Ordering::Release);
            }
        }
        result
    }
}

impl<W> MeasuringWriter<W> {
    fn new(writer: W, command: &'static str) -> MeasuringWriter<W> {
        Self { writer, command }
    }
}

impl<R> MeasuringReader<R> {
    fn new(reader: R, command: &'static str, ended: Arc<AtomicBool>) -> MeasuringReader<R> {
        Self { reader, command, ended }
    }
}

impl<Storage, User> DataCommandExecutor<Storage, User>
where
    Storage: StorageBackend<User> + 'static,
    Storage::Metadata: Metadata,
    User: UserDetail + 'static,
{
    async fn execute(mut self, session_arc: SharedSession<Storage, User>) {
        let mut data_cmd_rx = self.data_cmd_rx.take().unwrap();
        let mut data_abort_rx = self.data_abort_rx.take().unwrap();
        let (logger, tx) = (self.logger.clone(), self.control_msg_tx.clone());
        // qftpd patch: ServerBuilder::data_connection_timeout.
        let mut timeout_delay = Box::pin(tokio::time::sleep(self.timeout));
        // qftpd patch: while this task runs it answers ABOR (see commands/abor.rs): before the
        // transfer command, during the transfer and after it. The session is not kept locked
        // during the transfer, so that the control channel goes on taking commands.
        let abort = tokio::select! {
            biased;
            Some(()) = data_abort_rx.recv() => {
                // A transfer command given already (maybe still on its way
                // here: it is sent from a task of its own) gets its 426.
                let transfer = data_cmd_rx.try_recv().is_ok() || session_arc.lock().await.data_cmd_tx.is_none();
                self.handle_incoming(DataChanMsg::Abort, 0).await;
                Some(transfer)
            },
            Some(command) = data_cmd_rx.recv() => {
                // qftpd patch: a REST offset applies to the one transfer command after it,
                // whatever its outcome (a refused one must not leave it to the next).
                let mut session = session_arc.lock().await;
                let start_pos = std::mem::take(&mut session.start_pos);
                // qftpd patch: the protection level (PROT) in force when the transfer command
                // runs is the data connection's, whatever it was when the connection came.
                self.ftps_mode = if session.data_tls { session.ftps_config.clone() } else { FtpsConfig::Off };
                drop(session);
                self.transfer(command, start_pos, &mut data_abort_rx).await
            },
            _ = &mut timeout_delay => {
                slog::warn!(logger, "Data channel connection timed out");
                None
            }
        };
        // qftpd patch: an ABOR sent (under the session lock) while the session was busy, which
        // the transfer did not see because it had ended. Answered while the session is still
        // busy, so that a QUIT waiting for the transfer comes after (see control_loop.rs).
        let late_abort = {
            let _session = session_arc.lock().await;
            data_abort_rx.close();
            data_abort_rx.try_recv().is_ok()
        };
        match abort {
            Some(transfer) => Self::answer_abor(&logger, &tx, transfer).await,
            None if late_abort => Self::answer_abor(&logger, &tx, false).await,
            None => {}
        }
        let mut session = session_arc.lock().await;
        session.data_busy = false;
    }

    // qftpd patch: runs the transfer `command` until it ends or an ABOR comes. On ABOR the
    // transfer is dropped, and with it its data connection, which closes; an upload's storage
    // back-end then gives the upload up. But an upload whose data connection has reached its
    // end has all its data (in stream mode that is the end of the file): it is no longer
    // aborted, and finishes with its own reply (RFC 959: no action once the transfer is
    // complete), so that no 426 is sent for a file that was stored after all. Returns
    // `Some(true)` when the transfer was aborted, `Some(false)` for an ABOR that came too late.
    async fn transfer(self, command: DataChanCmd, start_pos: u64, abort_rx: &mut Receiver<()>) -> Option<bool> {
        let (logger, ended) = (self.logger.clone(), self.input_ended.clone());
        let what = format!("{:?}", command);
        let transfer = self.handle_incoming(DataChanMsg::ExternalCommand(command), start_pos);
        tokio::pin!(transfer);
        tokio::select! {
            biased;
            () = &mut transfer => None,
            // None: the channel was replaced (a new PASV or PORT); the transfer goes on.
            Some(()) = abort_rx.recv() => {
                if ended.load(Ordering::Acquire) {
                    slog::info!(logger, "ABOR after all the data arrived: the transfer completes: {}", what);
                    transfer.await;
                    return Some(false);
                }
                slog::info!(logger, "ABOR: transfer aborted: {}", what);
                Some(true)
            }
        }
    }

    // qftpd patch: the replies to an ABOR this task took over: `426` for the transfer it cut
    // off, then `226` for the ABOR itself, in this order (RFC 959, section 4.1.3), after any
    // reply of the transfer.
    async fn answer_abor(logger: &slog::Logger, tx: &Sender<ControlChanMsg>, transfer: bool) {
        let mut replies = Vec::with_capacity(2);
        if transfer {
            replies.push(Reply::new(ReplyCode::ConnectionClosed, "Connection closed; transfer aborted"));
        }
        replies.push(Reply::new(ReplyCode::ClosingDataConnection, "Closed data channel"));
        for reply in replies {
            if let Err(err) = tx.send(ControlChanMsg::CommandChannelReply(reply)).await {
                slog::warn!(logger, "Could not answer ABOR: {:?}", err);
                return;
            }
        }
    }

    #[tracing_attributes::instrument]
    async fn handle_incoming(self, incoming: DataChanMsg, start_pos: u64) {
        match incoming {
            DataChanMsg::Abort => {
                slog::info!(self.logger, "Data channel abort received");
            }
            DataChanMsg::ExternalCommand(command) => {
                let p = command.path().unwrap_or_default();
                slog::debug!(self.logger, "Data channel command received: {:?}", command; "path" => p);
                self.execute_command(command, start_pos).await;
            }
        }
    }

    #[tracing_attributes::instrument]
    async fn execute_command(self, cmd: DataChanCmd, start_pos: u64) {
        match cmd {
            DataChanCmd::Retr { path } => {
                self.exec_retr(path, start_pos).await;
            }
            DataChanCmd::Stor { path } => {
                let preliminary = Reply::new(ReplyCode::FileStatusOkay, "Ready to receive data");
                self.exec_stor(path, Upload::From(start_pos), "STOR", preliminary).await;
            }
            DataChanCmd::Stou { path } => {
                // RFC 1123, 4.1.2.9: the preliminary reply names the file.
                let name = Path::new(&path).file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
                let preliminary = Reply::new_with_string(ReplyCode::FileStatusOkay, format!("FILE: {}", name));
                self.exec_stor(path, Upload::From(0), "STOU", preliminary).await;
            }
            DataChanCmd::Appe { path } => {
                self.exec_appe(path).await;
            }
            DataChanCmd::List { path, .. } => {
                self.exec_list(path, ListCommand::List).await;
            }
            DataChanCmd::Nlst { path } => {
                self.exec_list(path, ListCommand::Nlst).await;
            }
            DataChanCmd::Mlsd { path } => {
                self.exec_list(path, ListCommand::Mlsd).await;
            }
        }
    }

    #[tracing_attributes::instrument]
    async fn exec_retr(self, path: String, start_pos: u64) {
        let path = self.cwd.join(path);
        let tx: Sender<ControlChanMsg> = self.control_msg_tx.clone();
        let mut conn = DataConn::new(self.socket, self.ftps_mode, self.handshake, tx.clone(), Reply::new(ReplyCode::FileStatusOkay, "Sending data"));

        let start_time = Instant::now();
        let result = {
            let mut output = MeasuringWriter::new(&mut conn, "retr");
            self.storage
                .get_into((*self.user).as_ref().unwrap(), path.clone(), start_pos, &mut output)
                .await
        };
        // qftpd patch: the transfer failed before it used the data connection (the file
        // does not exist, is a directory, the offset is past its end): its error is the
        // reply, without a 150. A download that worked (even of an empty file) opens the
        // connection if it did not yet, and ends it with a TLS close_notify.
        let result = match conn.finish(result).await {
            Ok(Ok(bytes)) => {
                if let Err(err) = conn.shutdown().await {
                    slog::debug!(self.logger, "Closing the data connection after RETR of {:?} failed: {}", &path, err);
                }
                Ok(bytes)
            }
            Ok(Err(err)) => Err(err),
            Err(err) => return Self::data_connection_failed(&self.logger, &tx, "RETR", &path, err).await,
        };

        let duration = start_time.elapsed();
        match result {
            Ok(bytes_copied) => {
                slog::info!(
                    self.logger,
                    "Successful RETR {:?}; Duration {}; Bytes copied {}; Transfer speed {}; start_pos={}",
                    &path,
                    HumanDuration(duration),
                    HumanBytes(bytes_copied),
                    TransferSpeed(bytes_copied as f64 / duration.as_secs_f64()),
                    start_pos,
                );

                // only register transfer of a single file transfer
                if start_pos == 0 {
                    metrics::inc_transferred("retr", "success");
                }

                if let Err(err) = tx
                    .send(ControlChanMsg::SentData {
                        bytes: bytes_copied,
                        path: path.to_string_lossy().to_string(),
                    })
                    .await
                {
                    slog::error!(self.logger, "Could not notify control channel of successful RETR: {:?}", err);
                }
            }
            Err(err) => {
                let io_error_kind = err.get_io_error().map(|e| e.kind());

                if io_error_kind == Some(std::io::ErrorKind::BrokenPipe) {
                    slog::debug!(
                        self.logger,
                        "RETR transfer stopped by client (BrokenPipe). Path {:?}; Duration {}; start_pos {}",
                        &path,
                        HumanDuration(duration),
                        start_pos
                    );
                } else {
                    // qftpd patch: the storage back-end logs its transfers; info level here.
                    slog::info!(
                        self.logger,
                        "Error during RETR {:?} transfer after {}: {}; start_pos={}",
                        &path,
                        HumanDuration(duration),
                        ErrorText(&err),
                        start_pos
                    );
                }

                // only register transfer errors for a single file transfer once
                if start_pos == 0 {
                    categorize_and_register_error(&self.logger, &err, "retr");
                }

                if let Err(err) = tx.send(ControlChanMsg::StorageError(err)).await {
                    slog::warn!(self.logger, "Could not notify control channel of error with RETR: {:?}", err);
                }
            }
        }
    }

    // qftpd patch: STOR, STOU and APPE (`command`). The upload reads its data connection
    // through one half of it; once the storage back-end is done with it, the other half ends
    // it with a TLS close_notify (RFC 8446, 6.1), which clients such as Python's ftplib wait
    // for before they read the transfer's reply. An upload refused before it read anything
    // is answered without a 150, and nothing of its data is read.
    #[tracing_attributes::instrument]
    async fn exec_stor(self, path: String, upload: Upload, command: &'static str, preliminary: Reply) {
        let path = self.cwd.join(path);
        let tx = self.control_msg_tx.clone();
        let conn = DataConn::new(self.socket, self.ftps_mode, self.handshake, tx.clone(), preliminary);
        let status = conn.status.clone();
        let (input, mut closer) = tokio::io::split(conn);
        let input = MeasuringReader::new(input, "stor", self.input_ended.clone());

        let start_time = Instant::now();
        let user = (*self.user).as_ref().unwrap();
        let (put_result, start_pos) = match upload {
            Upload::From(start_pos) => (self.storage.put(user, input, path.clone(), start_pos).await, start_pos),
            Upload::Append => (self.storage.append(user, input, path.clone()).await, 0),
        };
        if let Some(err) = status.failure() {
            return Self::data_connection_failed(&self.logger, &tx, command, &path, err).await;
        }
        if put_result.is_ok() && !status.opened() {
            // An upload of nothing that never read its connection: it is opened now, so that
            // the client sees its 150 before the 226.
            if let Err(err) = closer.write(&[]).await {
                return Self::data_connection_failed(&self.logger, &tx, command, &path, err).await;
            }
        }
        if let Err(err) = closer.shutdown().await {
            slog::debug!(self.logger, "Closing the data connection after {} of {:?} failed: {}", command, &path, err);
        }
        let duration = start_time.elapsed();

        match put_result {
            Ok(bytes) => {
                slog::info!(
                    self.logger,
                    "Successful {} {:?}; Duration {}; Bytes copied {}; Transfer speed {}; start_pos={}",
                    command,
                    &path,
                    HumanDuration(duration),
                    HumanBytes(bytes),
                    TransferSpeed(bytes as f64 / duration.as_secs_f64()),
                    start_pos,
                );

                // only register transfer of a single file transfer
                if start_pos == 0 {
                    metrics::inc_transferred("stor", "success");
                }

                if let Err(err) = tx
                    .send(ControlChanMsg::WrittenData {
                        bytes,
                        path: path.to_string_lossy().to_string(),
                    })
                    .await
                {
                    // qftpd patch: the control loop is gone (the client closed the session, or
                    // the server stops): nothing to report to, and nothing went wrong here.
                    slog::info!(self.logger, "The session ended before the reply to {} of {:?} could be sent: {:?}", command, &path, err);
                }
            }
            Err(err) => {
                slog::info!(self.logger, "Error during {} of {:?} after {}: {}", command, &path, HumanDuration(duration), ErrorText(&err));

                // only register transfer errors for a single file transfer once
                if start_pos == 0 {
                    categorize_and_register_error(&self.logger, &err, "stor");
                }

                if let Err(err) = tx.send(ControlChanMsg::StorageError(err)).await {
                    // qftpd patch: as above; an upload the client broke off by closing the
                    // session ends here.
                    slog::info!(self.logger, "The session ended before the reply to {} of {:?} could be sent: {:?}", command, &path, err);
                }
            }
        }
    }

    // qftpd patch: APPE goes through the storage back-end's `append` (see exec_stor).
    #[tracing_attributes::instrument]
    async fn exec_appe(self, path: String) {
        let preliminary = Reply::new(ReplyCode::FileStatusOkay, "Ready to receive data");
        self.exec_stor(path, Upload::Append, "APPE", preliminary).await;
    }

    // qftpd patch: LIST, NLST and MLSD. A listing the storage back-end streams is sent as it
    // is read (see `send_listing`); one the back-end refuses (a missing directory) is answered
    // with its error, without a 150.
    #[tracing_attributes::instrument]
    async fn exec_list(self, path: Option<String>, command: ListCommand) {
        let argument = path.clone();
        let path = self.resolve_path(path);
        let tx = self.control_msg_tx.clone();
        let user = (*self.user).as_ref().unwrap();
        let mut conn = DataConn::new(
            self.socket,
            self.ftps_mode.clone(),
            self.handshake,
            tx.clone(),
            Reply::new(ReplyCode::FileStatusOkay, "Sending directory list"),
        );
        let start_time = Instant::now();

        let format = match command {
            ListCommand::List => ListingFormat::List,
            ListCommand::Nlst => ListingFormat::Nlst,
            ListCommand::Mlsd => ListingFormat::Mlsd,
        };
        let listing = match self.storage.listing(user, path.clone(), format, argument.as_deref()).await {
            Some(listing) => listing,
            // A back-end that does not stream: the whole listing, as one reader.
            None => match command {
                ListCommand::List => self.storage.list_fmt(user, path.clone()).await.map(|c| Box::new(c) as Listing),
                ListCommand::Nlst => self
                    .storage
                    .nlst(user, path.clone())
                    .await
                    .map(|c| Box::new(c) as Listing)
                    .map_err(|e| Error::new(ErrorKind::PermanentDirectoryNotAvailable, e)),
                ListCommand::Mlsd => self.storage.list(user, path.clone()).await.map(|files| {
                    let mut buffer = String::new();
                    for file_info in files {
                        let filename = file_info
                            .path
                            .as_path()
                            .components()
                            .next_back()
                            .map(|component| component.as_os_str().to_string_lossy())
                            .unwrap_or("unknown".into());
                        let facts_str = crate::server::controlchan::commands::mlst::format_facts(&file_info.metadata);
                        // qftpd patch: a CR or LF in a name would start a new listing line.
                        let filename = filename.replace(['\r', '\n'], "?");
                        buffer.push_str(&format!("{} {}\r\n", facts_str, filename));
                    }
                    Box::new(std::io::Cursor::new(buffer.into_bytes())) as Listing
                }),
            },
        };
        Self::send_listing(&self.logger, &tx, command, &path, listing, &mut conn, start_time).await
    }

    // qftpd patch: sends a listing and answers the command: 226 when all of it was sent, the
    // back-end's error (451 for a failure midway) when the listing failed, 426 when the data
    // connection failed. A back-end error before the first byte is answered like any storage
    // error, without a 150.
    async fn send_listing(
        logger: &slog::Logger,
        tx: &Sender<ControlChanMsg>,
        command: ListCommand,
        path: &PathBuf,
        listing: Result<Listing, Error>,
        conn: &mut DataConn,
        start_time: Instant,
    ) {
        let mut input = match listing {
            Ok(input) => input,
            Err(err) => {
                slog::info!(logger, "{} of {:?} refused: {}", command.as_str(), path, ErrorText(&err));
                categorize_and_register_error(logger, &err, command.as_lower_str());
                if let Err(err) = tx.send(ControlChanMsg::StorageError(err)).await {
                    slog::error!(logger, "Could not notify control channel of error with {}: {:?}", command.as_str(), err);
                }
                return;
            }
        };
        let mut output = MeasuringWriter::new(&mut *conn, command.as_lower_str());
        let mut buf = vec![0u8; 64 * 1024];
        let mut bytes = 0u64;
        let outcome = loop {
            let n = match input.read(&mut buf).await {
                Ok(0) => break Ok(()),
                Ok(n) => n,
                Err(e) => break Err(ControlChanMsg::StorageError(Error::new(ErrorKind::LocalError, e))),
            };
            if let Err(e) = output.write_all(&buf[..n]).await {
                slog::warn!(logger, "{} of {:?}: the data connection failed: {}", command.as_str(), path, e);
                break Err(ControlChanMsg::ConnectionReset);
            }
            bytes += n as u64;
        };
        drop(output);
        let outcome = match conn.finish(Ok::<(), Error>(())).await {
            Err(err) => return Self::data_connection_failed(logger, tx, command.as_str(), path, err).await,
            Ok(_) => outcome,
        };
        let outcome = match (outcome, conn.shutdown().await) {
            (Ok(()), Err(e)) => {
                slog::warn!(logger, "{} of {:?}: closing the data connection failed: {}", command.as_str(), path, e);
                Err(ControlChanMsg::ConnectionReset)
            }
            (outcome, _) => outcome,
        };
        let duration = start_time.elapsed();
        let msg = match outcome {
            Ok(()) => {
                slog::info!(
                    logger,
                    "Successful {} {:?}; Duration {}; Bytes copied {}",
                    command.as_str(),
                    path,
                    HumanDuration(duration),
                    HumanBytes(bytes)
                );
                metrics::inc_transferred(command.as_lower_str(), "success");
                ControlChanMsg::DirectorySuccessfullyListed
            }
            Err(msg) => {
                slog::warn!(
                    logger,
                    "{} of {:?} failed after {} and {} bytes: {:?}",
                    command.as_str(),
                    path,
                    HumanDuration(duration),
                    bytes,
                    msg
                );
                msg
            }
        };
        if let Err(err) = tx.send(msg).await {
            slog::error!(logger, "Could not notify control channel of the end of {}: {:?}", command.as_str(), err);
        }
    }

    // qftpd patch: the data connection could not be opened (its TLS handshake failed, or the
    // control channel is gone): the transfer command, answered 150 or not, gets 425 and the
    // session goes on.
    async fn data_connection_failed(logger: &slog::Logger, tx: &Sender<ControlChanMsg>, command: &str, path: &Path, err: std::io::Error) {
        slog::warn!(logger, "{} of {:?}: opening the data connection failed: {}", command, path, err);
        // qftpd patch: 425 whatever the cause, a TLS session that was not resumed too (vsftpd
        // answers that 522, but after a 150 RFC 959 allows only 226, 250, 425, 426 and 451).
        let reply = Reply::new_with_string(ReplyCode::CantOpenDataConnection, format!("Could not open the data connection: {}", err));
        if let Err(err) = tx.send(ControlChanMsg::CommandChannelReply(reply)).await {
            slog::warn!(logger, "Could not notify control channel of the failed data connection: {:?}", err);
        }
    }
    fn resolve_path(&self, path: Option<String>) -> PathBuf {
        match path {
            Some(path) => {
                if path == "." {
                    self.cwd.clone()
                } else {
                    self.cwd.join(path)
                }
            }
            None => self.cwd.clone(),
        }
    }
}

// qftpd patch: the data connection of one transfer, opened when the transfer first reads or
// writes it: the transfer command's preliminary reply (`150`) goes out through the control
// channel, then, with PROT P, the TLS handshake runs (clients start it once they have the
// 150). A transfer that fails before it uses the connection (the file does not exist, the
// directory cannot be listed, the upload's target cannot be created) is answered with its
// error alone, RFC 959 allowing no other reply after a 150 than 226, 250, 425, 426 or 451,
// and nothing is read from or written to the connection. Closing a connection that was
// never opened sends nothing; closing an open one with TLS sends a close_notify first.
struct DataConn {
    // Behind a mutex only so that the connection is `Sync`, as storage back-ends want their
    // readers and writers; it is never contended (`get_mut`).
    state: std::sync::Mutex<ConnState>,
    status: Arc<ConnStatus>,
}

type DataStream = Box<dyn DataIo + Send + Sync + Unpin>;
type Opening = Pin<Box<dyn std::future::Future<Output = std::io::Result<DataStream>> + Send>>;

trait DataIo: AsyncRead + AsyncWrite {}

impl<T: AsyncRead + AsyncWrite> DataIo for T {}

// Not yet used (its opening future only runs when polled), open, or failed to open (the
// error is in `ConnStatus`).
enum ConnState {
    Opening(Opening),
    Open(DataStream),
    Failed,
}

// Whether a transfer's data connection was opened, or failed to open, for the data task to
// see after the storage back-end took the connection.
#[derive(Default)]
struct ConnStatus {
    opened: AtomicBool,
    failure: std::sync::Mutex<Option<(std::io::ErrorKind, String)>>,
}

impl ConnStatus {
    fn opened(&self) -> bool {
        self.opened.load(Ordering::Acquire)
    }

    fn failure(&self) -> Option<std::io::Error> {
        let failure = self.failure.lock().unwrap_or_else(|e| e.into_inner());
        failure.as_ref().map(|(kind, text)| std::io::Error::new(*kind, text.clone()))
    }
}

impl DataConn {
    fn new(socket: TcpStream, ftps_mode: FtpsConfig, handshake: Handshake, tx: Sender<ControlChanMsg>, preliminary: Reply) -> Self {
        let open = async move {
            tx.send(ControlChanMsg::CommandChannelReply(preliminary))
                .await
                .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the control connection is closed"))?;
            let stream: DataStream = match ftps_mode {
                FtpsConfig::On { tls_config } => Box::new(
                    tls_handshake(socket, tls_config, handshake).await?,
                ),
                _ => Box::new(socket),
            };
            Ok(stream)
        };
        DataConn {
            state: std::sync::Mutex::new(ConnState::Opening(Box::pin(open))),
            status: Arc::default(),
        }
    }

    fn poll_open(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<&mut DataStream>> {
        let state = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        if let ConnState::Opening(open) = state {
            match ready!(open.as_mut().poll(cx)) {
                Ok(stream) => {
                    self.status.opened.store(true, Ordering::Release);
                    *state = ConnState::Open(stream);
                }
                Err(err) => {
                    *self.status.failure.lock().unwrap_or_else(|e| e.into_inner()) = Some((err.kind(), err.to_string()));
                    *state = ConnState::Failed;
                    return Poll::Ready(Err(err));
                }
            }
        }
        match state {
            ConnState::Open(stream) => Poll::Ready(Ok(stream)),
            _ => Poll::Ready(Err(self.status.failure().unwrap_or_else(|| std::io::Error::other("the data connection failed to open")))),
        }
    }

    // The transfer's `result` as the data task answers it: `Err` when the connection failed
    // to open (answered 425); otherwise the result, and a transfer that worked without using
    // the connection (an empty file or listing) opens it now, so that its 150 comes first.
    async fn finish<T>(&mut self, result: Result<T, Error>) -> std::io::Result<Result<T, Error>> {
        if let Some(err) = self.status.failure() {
            return Err(err);
        }
        if result.is_ok() && !self.status.opened() {
            std::future::poll_fn(|cx| self.poll_open(cx).map_ok(|_| ())).await?;
        }
        Ok(result)
    }
}

impl AsyncRead for DataConn {
    // A TLS data connection whose client closes it without a close_notify ends the upload
    // like one with it, as vsftpd (`strict_ssl_read_eof=NO`) and ProFTPD take it: clients
    // such as Python's `ssl` sockets closed without `unwrap()` do so, and the stream mode of
    // FTP has no other end of file.
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let stream = ready!(self.get_mut().poll_open(cx))?;
        match ready!(Pin::new(stream).poll_read(cx, buf)) {
            Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => Poll::Ready(Ok(())),
            result => Poll::Ready(result),
        }
    }
}

impl AsyncWrite for DataConn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let stream = ready!(self.get_mut().poll_open(cx))?;
        Pin::new(stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut().state.get_mut().unwrap_or_else(|e| e.into_inner()) {
            ConnState::Open(stream) => Pin::new(stream).poll_flush(cx),
            _ => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut().state.get_mut().unwrap_or_else(|e| e.into_inner()) {
            ConnState::Open(stream) => Pin::new(stream).poll_shutdown(cx),
            _ => Poll::Ready(Ok(())),
        }
    }
}

// qftpd patch: the TLS configuration of data connections: the control connection's, without
// TLS 1.3 session tickets. A client that only uploads never reads a data connection, so the
// tickets the server sends after the handshake stay unread in its socket, and closing a socket
// with unread data makes its kernel send a reset instead of a FIN; the reset overtakes the end
// of the upload still queued for the server, which then fails the upload ("connection reset by
// peer") after whatever it had read so far. Data connections resume the control connection's
// session with the tickets the client got on the control connection.
// qftpd patch: with `resume_only`, the data connections resume the control connection's TLS
// session and make none of their own (see SessionPolicy::require_tls_session_reuse).
fn data_tls_config(config: &Arc<rustls::ServerConfig>, resume_only: bool) -> Arc<rustls::ServerConfig> {
    if resume_only {
        return Arc::new(crate::server::tls::resume_only_config(config));
    }
    if config.send_tls13_tickets == 0 {
        return config.clone();
    }
    let mut data = (**config).clone();
    data.send_tls13_tickets = 0;
    Arc::new(data)
}

// qftpd patch: a storage error with the reason its source gives, for the log.
struct ErrorText<'a>(&'a Error);

impl fmt::Display for ErrorText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match std::error::Error::source(self.0) {
            Some(source) => write!(f, "{} ({})", self.0, source),
            None => write!(f, "{}", self.0),
        }
    }
}

// qftpd patch: how a data connection's TLS handshake is held (SessionPolicy): its time limit,
// and whether it must resume the control connection's TLS session.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Handshake {
    pub timeout: Duration,
    pub resume: bool,
}

// qftpd patch: the server side of the data connection's TLS handshake, within its time limit.
// TLS 1.3 session tickets are not sent on data connections (see `data_tls_config`). When the
// session must be resumed, a full handshake is refused (answered 425, the reason named).
async fn tls_handshake(
    socket: TcpStream,
    tls_config: Arc<rustls::ServerConfig>,
    handshake: Handshake,
) -> std::io::Result<tokio_rustls::server::TlsStream<TcpStream>> {
    let acceptor: TlsAcceptor = data_tls_config(&tls_config, handshake.resume).into();
    match tokio::time::timeout(handshake.timeout, acceptor.accept(socket)).await {
        Ok(Ok(stream)) if handshake.resume && stream.get_ref().1.handshake_kind() != Some(rustls::HandshakeKind::Resumed) => Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "TLS session reuse required: the data connection must resume the TLS session of the control connection",
        )),
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(err)) => Err(std::io::Error::new(err.kind(), format!("TLS handshake failed: {}", err))),
        Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out")),
    }
}

/// Starts processing for the data connection. This will spawn a new async task that will wait for
/// a command from the control channel after which it will start to process the specified socket
/// that is connected to the client.
///
/// logger: logger set up with needed context for use by the data channel.
/// session_arc: the user session that is also shared with the control channel.
/// socket: the data socket we'll be working with.
#[tracing_attributes::instrument]
pub async fn spawn_processing<Storage, User>(logger: slog::Logger, session_arc: SharedSession<Storage, User>, mut socket: TcpStream)
where
    Storage: StorageBackend<User> + 'static,
    Storage::Metadata: Metadata,
    User: UserDetail + 'static,
{
    // We introduce a block scope here to keep the lock on the session minimal. We basically copy the needed info
    // out and then unlock.

    let command_executor = {
        let mut session = session_arc.lock().await;

        match socket.peer_addr() {
            Ok(datachan_addr) => {
                let controlchan_ip = session.source.ip();
                // qftpd patch: an IPv4 client on a dual-stack control socket is ::ffff:a.b.c.d
                // there, while an active-mode data connection to it is a.b.c.d; a passive one
                // may come from a load balancer the embedder trusts (Server::service_for).
                if !session.data_peers().allow(datachan_addr.ip()) {
                    if let Err(err) = socket.shutdown().await {
                        slog::error!(
                            logger,
                            "Couldn't close datachannel for IP ({}) that does not match the IP({}) of the control channel: {:?}",
                            datachan_addr.ip(),
                            controlchan_ip,
                            err
                        )
                    } else {
                        slog::warn!(
                            logger,
                            "Closing datachannel for IP ({}) that does not match the IP({}) of the control channel.",
                            datachan_addr.ip(),
                            controlchan_ip
                        )
                    }
                    return;
                }
            }
            Err(err) => {
                slog::error!(logger, "Couldn't determine data channel address: {:?}", err);
                return;
            }
        }

        let username = session.username.as_ref().cloned().unwrap_or_else(|| String::from("unknown"));
        let logger = logger.new(slog::o!("username" => username));
        let control_msg_tx: Sender<ControlChanMsg> = match session.control_msg_tx {
            Some(ref tx) => tx.clone(),
            None => {
                slog::error!(logger, "Control loop message sender expected to be set up. Aborting data loop.");
                return;
            }
        };
        let data_cmd_rx = match session.data_cmd_rx.take() {
            Some(rx) => rx,
            None => {
                slog::error!(logger, "Data loop command receiver expected to be set up. Aborting data loop.");
                return;
            }
        };
        let data_abort_rx = match session.data_abort_rx.take() {
            Some(rx) => rx,
            None => {
                slog::error!(logger, "Data loop abort receiver expected to be set up. Aborting data loop.");
                return;
            }
        };
        let ftps_mode = if session.data_tls { session.ftps_config.clone() } else { FtpsConfig::Off };
        let command_executor = DataCommandExecutor {
            user: session.user.clone(),
            socket,
            control_msg_tx,
            storage: Arc::clone(&session.storage),
            cwd: session.cwd.clone(),
            ftps_mode,
            logger,
            data_abort_rx: Some(data_abort_rx),
            data_cmd_rx: Some(data_cmd_rx),
            timeout: session.data_command_timeout(),
            input_ended: Arc::default(),
            handshake: Handshake {
                timeout: session.session_policy.tls_handshake_timeout.unwrap_or(session.data_command_timeout()),
                resume: session.session_policy.require_tls_session_reuse,
            },
        };

        // The control channel need to know if the data channel is busy so that it doesn't time out
        // while the session is still in progress.
        session.data_busy = true;

        command_executor
    };

    tokio::spawn(command_executor.execute(session_arc));
}

use std::time::Duration;

struct HumanDuration(Duration);

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total_secs = self.0.as_secs();

        let hours = total_secs / 3600;
        let minutes = (total_secs % 3600) / 60;
        let seconds = total_secs % 60;
        let millis = self.0.subsec_millis();

        if hours > 0 {
            write!(f, "{}h {}m {}s {}ms", hours, minutes, seconds, millis)
        } else if minutes > 0 {
            write!(f, "{}m {}s {}ms", minutes, seconds, millis)
        } else if seconds > 0 {
            write!(f, "{}s {}ms", seconds, millis)
        } else {
            write!(f, "{}ms", millis)
        }
    }
}

struct HumanBytes(u64);

impl fmt::Display for HumanBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const KIB: u64 = 1024;
        const MIB: u64 = KIB * 1024;
        const GIB: u64 = MIB * 1024;
        const TIB: u64 = GIB * 1024;

        if self.0 >= TIB {
            write!(f, "{:.2} TiB", (self.0 as f64) / (TIB as f64))
        } else if self.0 >= GIB {
            write!(f, "{:.2} GiB", (self.0 as f64) / (GIB as f64))
        } else if self.0 >= MIB {
            write!(f, "{:.2} MiB", (self.0 as f64) / (MIB as f64))
        } else if self.0 >= KIB {
            write!(f, "{:.2} KiB", (self.0 as f64) / (KIB as f64))
        } else {
            write!(f, "{} B", self.0)
        }
    }
}

struct TransferSpeed(f64);

impl fmt::Display for TransferSpeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kb_per_second = self.0 / 1024.0;
        if kb_per_second < 1.0 {
            return write!(f, "{:.2} B/s", self.0);
        }

        let mb_per_second = kb_per_second / 1024.0;
        if mb_per_second < 1.0 {
            return write!(f, "{:.2} KB/s", kb_per_second);
        }

        let gb_per_second = mb_per_second / 1024.0;
        if gb_per_second < 1.0 {
            return write!(f, "{:.2} MB/s", mb_per_second);
        }

        write!(f, "{:.2} GB/s", gb_per_second)
    }
}

// Collapse the StorageError kind into a client-error, server-error or unknown-error.
// The PermissionDenied is seperated because it depends on specifics whether it is a server or client error
// Unknown errors should not happen but need to be handled
fn categorize_and_register_error(logger: &slog::Logger, err: &Error, command: &'static str) {
    match err.kind() {
        ErrorKind::PermanentFileNotAvailable => metrics::inc_transferred(command, "client-error"),
        ErrorKind::TransientFileNotAvailable | ErrorKind::LocalError => metrics::inc_transferred(command, "server-error"),
        ErrorKind::PermissionDenied => metrics::inc_transferred(command, "permission-error"),
        ErrorKind::ConnectionClosed => {
            if let Some(io_error) = err.get_io_error() {
                match io_error.kind() {
                    std::io::ErrorKind::ConnectionReset => metrics::inc_transferred(command, "client-interrupted"),
                    std::io::ErrorKind::BrokenPipe => {
                        // Clients like Cyberduck appear to close the connection prematurely for chunked downloading, generating many "errors"
                        if command != "retr" {
                            metrics::inc_transferred(command, "client-interrupted");
                        }
                    }
                    std::io::ErrorKind::ConnectionAborted => metrics::inc_transferred(command, "network-error"), // Could be a network issue
                    _ => {
                        slog::debug!(logger, "Unmapped ConnectionClosed io error: {:?}", io_error);
                        metrics::inc_transferred(command, "server-error")
                    }
                }
            }
        }
        _ => {
            slog::debug!(logger, "Unmapped error: {:?}", err);
            metrics::inc_transferred(command, "unknown-error")
        }
    }
}

#[derive(Debug)]
enum ListCommand {
    List,
    Nlst,
    Mlsd,
}

impl ListCommand {
    fn as_str(&self) -> &'static str {
        match self {
            ListCommand::List => "LIST",
            ListCommand::Nlst => "NLST",
            ListCommand::Mlsd => "MLSD",
        }
    }
    fn as_lower_str(&self) -> &'static str {
        match self {
            ListCommand::List => "list",
            ListCommand::Nlst => "nlst",
            ListCommand::Mlsd => "mlsd",
        }
    }
}

// qftpd patch: where an upload writes: from an offset (STOR, REST+STOR, STOU), or at the end
// of the file (APPE, through the storage back-end's `append`).
#[derive(Debug, Clone, Copy)]
enum Upload {
    From(u64),
    Append,
}
