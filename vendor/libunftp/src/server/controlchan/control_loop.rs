use crate::server::switchboard::SocketAddrPair;
use crate::{
    auth::{AuthenticationPipeline, UserDetail},
    metrics::MetricsMiddleware,
    notification::{DataListener, PresenceListener},
    options::ActivePassiveMode,
    server::{
        Event, Session, SessionState,
        chancomms::{ControlChanMsg, SwitchboardMessage, SwitchboardSender},
        controlchan::{
            Reply, ReplyCode,
            active_passive::ActivePassiveEnforcerMiddleware,
            auth::AuthMiddleware,
            codecs::FtpCodec,
            command::Command,
            commands,
            error::ControlChanError,
            error::ControlChanErrorKind,
            ftps::{FtpsControlChanEnforcerMiddleware, FtpsDataChanEnforcerMiddleware},
            handler::{CommandContext, CommandHandler},
            log::LoggingMiddleware,
            middleware::ControlChanMiddleware,
            notify::EventDispatcherMiddleware,
        },
        failed_logins::FailedLoginsCache,
        ftpserver::options::{FtpsRequired, PassiveHost, SiteCommandHandler, SiteMd5},
        session::SharedSession,
        shutdown,
        tls::FtpsConfig,
    },
    storage::{ErrorKind, Metadata, StorageBackend},
};
use async_trait::async_trait;
use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use rustls::ServerConnection;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::{collections::HashMap, net::SocketAddr, ops::RangeInclusive, sync::Arc, time::Duration};
use tokio::io::ReadBuf;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
    sync::{
        Mutex,
        mpsc::{Receiver, Sender, channel},
    },
    task::JoinHandle,
};
use tokio_util::codec::{Decoder, Encoder, Framed};

// qftpd patch: the log target of the session limits' messages (login and TLS handshake
// timeouts), so that an embedder can keep them while it silences the rest of the control loop.
const LIMITS_TAG: &str = "libunftp::limits";

trait AsyncReadAsyncWriteSendUnpin: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> AsyncReadAsyncWriteSendUnpin for T {}

#[derive(Debug, Clone)]
pub struct Config<Storage, User>
where
    Storage: StorageBackend<User>,
    User: UserDetail,
{
    pub storage: Storage,
    pub greeting: &'static str,
    pub auth_pipeline: Arc<AuthenticationPipeline<User>>,
    pub passive_ports: RangeInclusive<u16>,
    pub passive_host: PassiveHost,
    pub ftps_config: FtpsConfig,
    pub collect_metrics: bool,
    pub idle_session_timeout: Duration,
    pub data_connection_timeout: Option<Duration>,
    // qftpd patch: ServerBuilder::session_policy.
    pub session_policy: crate::options::SessionPolicy,
    pub logger: slog::Logger,
    pub ftps_required_control_chan: FtpsRequired,
    pub ftps_required_data_chan: FtpsRequired,
    pub site_md5: SiteMd5,
    pub site_handlers: Arc<HashMap<String, Arc<dyn SiteCommandHandler<Storage, User>>>>,
    pub data_listener: Arc<dyn DataListener>,
    pub presence_listener: Arc<dyn PresenceListener>,
    pub active_passive_mode: ActivePassiveMode,
    pub binder: Arc<std::sync::Mutex<Option<Box<dyn crate::options::Binder>>>>,
}

// qftpd patch: how long a session whose transfer a stop waited for may take to send QUIT after
// the transfer ended, before it gets 421. Clients send it as soon as they have read the
// transfer's reply, but that comes after the end of the data, which may still be in socket
// and load balancer buffers (megabytes: seconds for a slow client).
const DRAIN_QUIT_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Does TCP processing when an FTP client connects
#[tracing_attributes::instrument]
pub(crate) async fn spawn<Storage, User>(
    config: Config<Storage, User>,
    // qftpd patch: shared with the embedder (see Server::service); other callers pass their
    // TcpStream.
    tcp_stream: impl Into<Arc<TcpStream>> + std::fmt::Debug,
    control_connection: Option<SocketAddrPair>,
    // qftpd patch: see Server::service_for.
    peer: Option<crate::options::ControlPeer>,
    switchboard_msg_tx: Option<SwitchboardSender<Storage, User>>,
    mut shutdown: shutdown::Listener,
    failed_logins: Option<Arc<FailedLoginsCache>>,
) -> Result<JoinHandle<()>, ControlChanError>
where
    User: UserDetail + 'static,
    Storage: StorageBackend<User> + 'static,
    Storage::Metadata: Metadata,
{
    let Config {
        storage,
        auth_pipeline,
        passive_ports,
        passive_host,
        ftps_config,
        ftps_required_control_chan,
        ftps_required_data_chan,
        collect_metrics,
        idle_session_timeout,
        data_connection_timeout,
        session_policy,
        logger,
        site_md5: sitemd5,
        site_handlers,
        data_listener,
        presence_listener,
        active_passive_mode,
        binder,
        ..
    } = config;

    // qftpd patch: SessionPolicy::require_tls_session_reuse: the TLS sessions of this session's
    // connections are remembered for this session alone.
    let ftps_config = match ftps_config {
        FtpsConfig::On { tls_config } if session_policy.require_tls_session_reuse => FtpsConfig::On {
            tls_config: crate::server::tls::session_bound_config(&tls_config)?,
        },
        other => other,
    };
    let tls_configured = matches!(ftps_config, FtpsConfig::On { .. });
    let storage_features = storage.supported_features();
    let (control_msg_tx, mut control_msg_rx): (Sender<ControlChanMsg>, Receiver<ControlChanMsg>) = channel(1);
    let tcp_stream: Arc<TcpStream> = tcp_stream.into();
    let local_addr = tcp_stream.local_addr()?;
    // qftpd patch: the client's address, when the embedder knows it better (Server::service_for).
    let (client, data_from) = match peer {
        Some(peer) => (peer.client, peer.data_from.map(crate::server::session::DataFrom)),
        None => (tcp_stream.peer_addr()?, None),
    };
    let mut session: Session<Storage, User> = Session::new(Arc::new(storage), client)
        .ftps(ftps_config.clone())
        .metrics(collect_metrics)
        .control_msg_tx(control_msg_tx.clone())
        .control_connection(control_connection)
        .failed_logins(failed_logins);
    if let Some(b) = binder.lock().unwrap().take() {
        session = session.binder(b);
    }
    // qftpd patch: see ServerBuilder::data_connection_timeout.
    session.data_connection_timeout = data_connection_timeout;
    session.session_policy = session_policy;
    session.data_from = data_from;

    let mut logger = logger.new(
        slog::o!("trace-id" => format!("{}", session.trace_id), "source" => format!("{}", session.control_connection.map(|p| p.source).unwrap_or(session.source))),
    );

    let shared_session: SharedSession<Storage, User> = Arc::new(Mutex::new(session));

    let event_chain = PrimaryEventHandler {
        logger: logger.clone(),
        session: shared_session.clone(),
        auth_pipeline: auth_pipeline.clone(),
        tls_configured,
        passive_ports,
        passive_host,
        tx_control_chan: control_msg_tx,
        local_addr,
        storage_features,
        tx_proxy_loop: switchboard_msg_tx.clone(),
        sitemd5,
        site_handlers,
    };

    let event_chain = EventDispatcherMiddleware::new(data_listener, presence_listener, event_chain);

    let event_chain = ActivePassiveEnforcerMiddleware {
        mode: active_passive_mode,
        next: event_chain,
    };

    let event_chain = AuthMiddleware {
        session: shared_session.clone(),
        next: event_chain,
    };

    let event_chain = FtpsControlChanEnforcerMiddleware {
        session: shared_session.clone(),
        ftps_requirement: ftps_required_control_chan,
        next: event_chain,
    };

    let event_chain = FtpsDataChanEnforcerMiddleware {
        session: shared_session.clone(),
        ftps_requirement: ftps_required_data_chan,
        next: event_chain,
    };

    let event_chain = LoggingMiddleware {
        logger: logger.clone(),
        sequence_nr: 0,
        next: event_chain,
    };

    let mut event_chain = MetricsMiddleware {
        collect_metrics,
        next: event_chain,
    };

    let codec = ControlCodec::new();
    // qftpd patch: see ControlStream.
    let control_stream: Box<dyn AsyncReadAsyncWriteSendUnpin> = Box::new(ControlStream(tcp_stream));
    let cmd_and_reply_stream: Framed<Box<dyn AsyncReadAsyncWriteSendUnpin>, ControlCodec> = codec.framed(control_stream);
    let (mut reply_sink, mut command_source) = cmd_and_reply_stream.split();

    reply_sink.send(Reply::new(ReplyCode::ServiceReady, config.greeting)).await?;
    reply_sink.flush().await?;

    let jh = tokio::spawn(async move {
        // The control channel event loop
        slog::info!(logger, "Starting control loop");
        // qftpd patch: after the shutdown signal, a session with a data transfer in progress
        // lets it finish; the session then (or at once, when idle) gets 421 and is closed.
        let mut draining = false;
        // qftpd patch: when the transfer a stop waited for had ended and its reply gone out: the
        // client then has DRAIN_QUIT_WAIT to send QUIT (answered 221), any other command or
        // silence gets 421.
        let mut drained_at: Option<tokio::time::Instant> = None;
        // qftpd patch: a QUIT that waits for the data transfer in progress to end (RFC 959:
        // the transfer's reply, then 221). No command is read meanwhile.
        let mut quit: Option<Event> = None;
        // qftpd patch: a command whose reply is still to come as an internal message; no
        // command is read until it has been sent (RFC 959: replies in command order).
        let mut pending: Option<Pending> = None;
        // qftpd patch: SessionPolicy::login_timeout: the connection is closed when no user has
        // logged in by then, whatever it sent meanwhile.
        let login_deadline = session_policy.login_timeout.map(|limit| tokio::time::Instant::now() + limit);
        let mut login_timer = Box::pin(tokio::time::sleep_until(login_deadline.unwrap_or_else(tokio::time::Instant::now)));
        let mut login_watch = login_deadline.is_some();
        loop {
            let incoming = {
                #[allow(unused_assignments)]
                let mut incoming = None;
                let wait = if draining || quit.is_some() || matches!(pending, Some(Pending::Abor { .. })) {
                    std::time::Duration::from_millis(100)
                } else {
                    idle_session_timeout
                };
                let mut timeout_delay = Box::pin(tokio::time::sleep(wait));
                tokio::select! {
                    cmd = command_source.next(), if quit.is_none() && pending.is_none() => {
                        match cmd {
                            // qftpd patch: a line that did not parse is an item too (see FtpCodec).
                            Some(cmd_result) => incoming = Some(cmd_result.and_then(|parsed| parsed).map(Event::Command)),
                            None => {
                                slog::info!(logger, "Control connection was closed.");
                                incoming = Some(Ok(Event::InternalMsg(ControlChanMsg::ExitControlLoop)))
                            }
                        }
                    },
                    Some(msg) = control_msg_rx.recv() => {
                        incoming = Some(Ok(Event::InternalMsg(msg)));
                    },
                    _ = &mut timeout_delay => {
                        let busy = shared_session.lock().await.data_busy;
                        if quit.is_some() {
                            // qftpd patch: the QUIT goes on once the transfer has ended and
                            // its reply has gone out.
                            if !busy && control_msg_rx.is_empty() {
                                incoming = quit.take().map(Ok);
                            }
                        } else if let Some(Pending::Abor { answered, since }) = pending
                            && !draining
                            && since.elapsed() < idle_session_timeout
                        {
                            // qftpd patch: the ABOR is answered once its 226 has gone out and
                            // the data task, which may answer it, has ended.
                            if answered && !busy && control_msg_rx.is_empty() {
                                pending = None;
                            }
                            incoming = None;
                        } else { match (draining, busy) {
                            (_, true) => incoming = None,
                            // qftpd patch: the transfer's reply (226, 426, 451), sent by the data
                            // task before it ended, goes out before the 421.
                            (true, false) if !control_msg_rx.is_empty() => incoming = None,
                            (true, false) if drained_at.get_or_insert_with(tokio::time::Instant::now).elapsed() < DRAIN_QUIT_WAIT => incoming = None,
                            (true, false) => {
                                let _ = reply_sink.send(Reply::new(ReplyCode::ServiceNotAvailable, "Service shutting down, closing the control connection")).await;
                                let _ = reply_sink.flush().await;
                                incoming = Some(Ok(Event::InternalMsg(ControlChanMsg::ExitControlLoop)))
                            }
                            (false, false) => incoming = Some(Err(ControlChanError::new(ControlChanErrorKind::ControlChannelTimeout))),
                        } };
                    },
                    _ = &mut login_timer, if login_watch => {
                        login_watch = false;
                        if shared_session.lock().await.state != SessionState::WaitCmd {
                            slog::info!(logger, #LIMITS_TAG, "Closing control connection: no login within {:?}", session_policy.login_timeout.unwrap_or_default());
                            let _ = reply_sink.send(Reply::new(ReplyCode::ServiceNotAvailable, "Login timeout")).await;
                            let _ = reply_sink.flush().await;
                            incoming = Some(Ok(Event::InternalMsg(ControlChanMsg::ExitControlLoop)))
                        }
                    },
                    _ = shutdown.listen(), if !draining => {
                        draining = true;
                        // qftpd patch: a transfer that has just ended may still have its reply
                        // in the queue: it goes out first, then the 421 (above).
                        if shared_session.lock().await.data_busy || !control_msg_rx.is_empty() {
                            slog::info!(logger, "Shutdown signal: letting the data transfer in progress finish");
                        } else {
                            slog::info!(logger, "Closing open control connection because of shutdown signal");
                            let _ = reply_sink.send(Reply::new(ReplyCode::ServiceNotAvailable, "Service shutting down, closing the control connection")).await;
                            let _ = reply_sink.flush().await;
                            incoming = Some(Ok(Event::InternalMsg(ControlChanMsg::ExitControlLoop)))
                        }
                    }
                }
                incoming
            };
            // qftpd patch: a command after the transfer a stop waited for (but QUIT) gets 421.
            let incoming = match incoming {
                Some(Ok(Event::Command(ref command))) if draining && !matches!(command, Command::Quit) && !shared_session.lock().await.data_busy => {
                    let _ = reply_sink.send(Reply::new(ReplyCode::ServiceNotAvailable, "Service shutting down, closing the control connection")).await;
                    let _ = reply_sink.flush().await;
                    Some(Ok(Event::InternalMsg(ControlChanMsg::ExitControlLoop)))
                }
                other => other,
            };
            match incoming {
                None => {} // Loop again
                Some(Ok(Event::InternalMsg(ControlChanMsg::ExitControlLoop))) => {
                    let _ = event_chain.handle(Event::InternalMsg(ControlChanMsg::ExitControlLoop)).await;
                    if let Some(tx) = switchboard_msg_tx
                        && let Err(err) = tx.send(SwitchboardMessage::CloseDataPortCommand(shared_session.clone())).await
                    {
                        slog::warn!(logger, "Could not send CloseDataPortCommand to channel: {}", err);
                        return;
                    };
                    slog::debug!(logger, "Exiting control loop");
                    return;
                }
                Some(Ok(event)) => {
                    // qftpd patch: QUIT while a transfer command's data task runs waits for it.
                    if let Event::Command(Command::Quit) = event
                        && quit.is_none()
                        && let session = shared_session.lock().await
                        && session.data_busy
                        && session.data_cmd_tx.is_none()
                    {
                        slog::info!(logger, "QUIT: waiting for the data transfer in progress to end");
                        quit = Some(event);
                        continue;
                    }
                    if let Event::InternalMsg(ControlChanMsg::SecureControlChannel) = event {
                        slog::info!(logger, "Upgrading control channel to TLS");

                        // Get back the original TCP Stream
                        let codec_io = reply_sink.reunite(command_source).unwrap();
                        let io = codec_io.into_inner();

                        // Wrap in TLS Stream
                        let acceptor: tokio_rustls::TlsAcceptor = match ftps_config.clone() {
                            FtpsConfig::On { tls_config } => tls_config.into(),
                            _ => panic!("Could not create TLS acceptor. Illegal program state"),
                        };
                        // qftpd patch: the handshake must finish within
                        // SessionPolicy::tls_handshake_timeout, and before the login deadline.
                        let handshake = acceptor.accept(io);
                        let logged_in = shared_session.lock().await.state == SessionState::WaitCmd;
                        let login_left = login_deadline.filter(|_| login_watch && !logged_in).map(|at| at.saturating_duration_since(tokio::time::Instant::now()));
                        let limit = match (session_policy.tls_handshake_timeout, login_left) {
                            (Some(a), Some(b)) => Some(a.min(b)),
                            (a, b) => a.or(b),
                        };
                        let accepted = match limit {
                            Some(limit) => match tokio::time::timeout(limit, handshake).await {
                                Ok(accepted) => accepted,
                                Err(_) => {
                                    slog::info!(logger, #LIMITS_TAG, "Closing control connection: the TLS handshake did not finish within {:?}", limit);
                                    return;
                                }
                            },
                            None => handshake.await,
                        };
                        let io: Box<dyn AsyncReadAsyncWriteSendUnpin> = match accepted {
                            Ok(stream) => {
                                let s: &ServerConnection = stream.get_ref().1;
                                if let Some(certs) = s.peer_certificates() {
                                    let mut session = shared_session.lock().await;
                                    session.cert_chain = Some(certs.iter().map(|c| unftp_core::auth::ClientCert(c.as_ref().to_vec())).collect());
                                }
                                Box::new(stream)
                            }
                            Err(err) => {
                                slog::warn!(logger, "Closing control channel. Could not upgrade to TLS: {}", err);
                                return;
                            }
                        };

                        // Wrap in codec again and get sink + source
                        let codec = ControlCodec::new();
                        let cmd_and_reply_stream = codec.framed(io);
                        let (sink, src) = cmd_and_reply_stream.split();
                        reply_sink = sink;
                        command_source = src;
                    }

                    if let Event::Command(Command::User { username }) = &event {
                        let s: String = String::from_utf8_lossy(username).into();
                        logger = logger.new(slog::o!("username" => s));
                    }

                    // TODO: Handle Event::InternalMsg(InternalMsg::PlaintextControlChannel)

                    // qftpd patch: see `Pending`.
                    let command = match &event {
                        Event::Command(command) => Some(command.clone()),
                        Event::InternalMsg(_) => None,
                    };
                    let handle_result = match event_chain.handle(event).await {
                        Err(e) => Err(e),
                        Ok(reply) => {
                            // qftpd patch: a 421 reply ends the session (RFC 959: "service not
                            // available, closing control connection").
                            let closing = matches!(&reply, Reply::CodeAndMsg { code: ReplyCode::ServiceNotAvailable, .. });
                            match &command {
                                Some(command) => pending = Pending::after(command, &reply),
                                None => match &mut pending {
                                    Some(Pending::Reply) => pending = None,
                                    Some(Pending::Abor { answered, .. }) => {
                                        *answered |= matches!(&reply, Reply::CodeAndMsg { code: ReplyCode::ClosingDataConnection, .. })
                                    }
                                    None => {}
                                },
                            }
                            reply_sink.send(reply).await.map(|()| closing)
                        }
                    };

                    match handle_result {
                        Err(chan_err) => {
                            slog::warn!(logger, "Event handler chain error: {:?}. Closing control connection", chan_err);
                            return;
                        }
                        Ok(true) => {
                            slog::info!(logger, "Closing control connection after a 421 reply");
                            return;
                        }
                        Ok(false) => {}
                    }
                }
                Some(Err(e)) => {
                    let (reply, close_connection) = handle_control_channel_error(logger.clone(), e);
                    let result = reply_sink.send(reply).await;
                    if result.is_err() {
                        slog::warn!(logger, "Could not send error reply to client");
                        return;
                    }
                    if close_connection {
                        return;
                    }
                }
            }
        }
    });

    Ok(jh)
}

// qftpd patch: the control connection's codec: FtpCodec, and what clients put in front of an
// urgent ABOR (RFC 959, section 4.1.3). They send Telnet IP and Synch (`IAC IP IAC DM`) first,
// or only the ABOR line, and the last byte of it as TCP urgent data, which a socket without
// SO_OOBINLINE takes out of the stream: BSD-derived clients leave `IAC IP DM ABOR\r\n`, Python's
// ftplib `ABOR\r` without its LF. Telnet commands at the start of a line are skipped (RFC 854),
// and `ABOR\r` not followed by LF is ABOR (an LF that comes later is skipped).
struct ControlCodec {
    inner: FtpCodec,
    /// An urgent ABOR was taken without its LF: an LF that follows belongs to it.
    skip_lf: bool,
}

impl ControlCodec {
    fn new() -> Self {
        ControlCodec {
            inner: FtpCodec::new(),
            skip_lf: false,
        }
    }
}

impl Decoder for ControlCodec {
    type Item = <FtpCodec as Decoder>::Item;
    type Error = ControlChanError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Self::Item>, Self::Error> {
        if self.skip_lf && !buf.is_empty() {
            self.skip_lf = false;
            if buf[0] == b'\n' {
                let _ = buf.split_to(1);
            }
        }
        let Some(telnet) = telnet_prefix(buf) else { return Ok(None) };
        let _ = buf.split_to(telnet);
        if buf.len() >= 5 && buf[..5].eq_ignore_ascii_case(b"ABOR\r") && buf.get(5) != Some(&b'\n') {
            let _ = buf.split_to(5);
            self.skip_lf = true;
            self.inner = FtpCodec::new();
            return Ok(Some(Ok(Command::Abor)));
        }
        self.inner.decode(buf)
    }
}

impl Encoder<Reply> for ControlCodec {
    type Error = ControlChanError;

    fn encode(&mut self, reply: Reply, buf: &mut BytesMut) -> Result<(), Self::Error> {
        self.inner.encode(reply, buf)
    }
}

// qftpd patch: the control connection as the control loop reads it. Tokio's TcpStream takes a
// short read for a drained socket and waits for new data, but a read also stops short at TCP's
// urgent mark (the Synch of an urgent ABOR), with the ABOR line queued behind it, and no new
// data comes while the client waits for the reply. Through `try_read` the socket is taken as
// drained only when a read would block. The socket is shared (`Arc`): the embedder may hold it
// too (Server::service), and reads and writes need only `&TcpStream`.
struct ControlStream(Arc<TcpStream>);

impl AsyncRead for ControlStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        loop {
            ready!(self.0.poll_read_ready(cx))?;
            match self.0.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(err) => return Poll::Ready(Err(err)),
            }
        }
    }
}

impl AsyncWrite for ControlStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            match self.0.try_write(buf) {
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => continue,
                result => return Poll::Ready(result),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(socket2::SockRef::from(&*self.0).shutdown(std::net::Shutdown::Write))
    }
}

// qftpd patch: the length of the Telnet commands at the start of `line` (RFC 854): `IAC` and a
// command, `IAC WILL|WONT|DO|DONT` and an option, and a lone Data Mark (left of a Synch whose
// `IAC` went out of band). `None` while a sequence is incomplete. `IAC IAC` is a data byte.
fn telnet_prefix(line: &[u8]) -> Option<usize> {
    const IAC: u8 = 255;
    const DM: u8 = 242;
    let mut at = 0;
    loop {
        match line[at..] {
            [IAC] | [IAC, 251..=254] => return None,
            [IAC, 251..=254, _, ..] => at += 3,
            [IAC, 240..=250, ..] => at += 2,
            [DM, ..] => at += 1,
            _ => return Some(at),
        }
    }
}

// qftpd patch: a command answered by an internal message (ControlChanMsg) the control loop gets
// later, often from a task of its own. The control loop reads no further command until that
// reply has gone out, so that pipelined commands are answered in order (RFC 959, section 4.2),
// and a QUIT after them comes last. The idle timeout and the shutdown still end the wait.
// Transfer commands (RETR, STOR, APPE, STOU, LIST, NLST, MLSD) are among them until their
// data task answers `150` (or refuses them before, see datachan.rs, `DataConn`); commands
// (ABOR, STAT, NOOP...) are then read during the transfer.
#[derive(Clone, Copy, Debug)]
enum Pending {
    /// One internal message, the command's reply, is to come.
    Reply,
    /// ABOR taken over by the data task, or of a transfer command still waiting for its data
    /// connection: its replies (the transfer's, maybe `426`, then `226`) come as internal
    /// messages; done once a `226` has been sent, the data task has ended and the queue is
    /// empty.
    Abor { answered: bool, since: std::time::Instant },
}

impl Pending {
    /// What is to come after `command` was answered `reply` by its handler. Each command here
    /// sends exactly one internal message whenever its handler answers `Reply::none()`
    /// (`commands/*.rs`); `AUTH TLS`, answered `234`, sends `SecureControlChannel`, and the TLS
    /// handshake must not find its first bytes taken as commands.
    fn after(command: &Command, reply: &Reply) -> Option<Pending> {
        let none = matches!(reply, Reply::None);
        match command {
            Command::Abor if none => Some(Pending::Abor {
                answered: false,
                since: std::time::Instant::now(),
            }),
            Command::Pass { .. }
            | Command::Cwd { .. }
            | Command::Dele { .. }
            | Command::Rmd { .. }
            | Command::Mkd { .. }
            | Command::Rnfr { .. }
            | Command::Rnto { .. }
            | Command::Size { .. }
            | Command::Mdtm { .. }
            | Command::Mfmt { .. }
            | Command::Md5 { .. }
            | Command::Stat { path: Some(_) }
            | Command::Mlst { .. }
            | Command::Retr { .. }
            | Command::Stor { .. }
            | Command::Appe { .. }
            | Command::Stou
            | Command::List { .. }
            | Command::Nlst { .. }
            | Command::Mlsd { .. }
                if none =>
            {
                Some(Pending::Reply)
            }
            Command::Auth { .. } if matches!(reply, Reply::CodeAndMsg { code: ReplyCode::AuthOkayNoDataNeeded, .. }) => Some(Pending::Reply),
            _ => None,
        }
    }
}

// gets the reply to be sent to the client and tells if the connection should be closed.
fn handle_control_channel_error(logger: slog::Logger, error: ControlChanError) -> (Reply, bool) {
    slog::warn!(logger, "Control channel error: {:?}", error);
    match error.kind() {
        ControlChanErrorKind::UnknownCommand { .. } => (Reply::new(ReplyCode::CommandSyntaxError, "Command not implemented"), false),
        // qftpd patch: hostile or broken lines are answered and the session goes on (the codec
        // skips them); none of them is ever turned into a different, lossy, command.
        ControlChanErrorKind::Utf8Error => (Reply::new(ReplyCode::CommandSyntaxError, "Invalid UTF-8 in command"), false),
        ControlChanErrorKind::ArgumentUtf8Error => (Reply::new(ReplyCode::ParameterSyntaxError, "Invalid UTF-8 in argument"), false),
        ControlChanErrorKind::NulByte => (Reply::new(ReplyCode::ParameterSyntaxError, "NUL byte in command line"), false),
        ControlChanErrorKind::CommandLineTooLong => (Reply::new(ReplyCode::CommandSyntaxError, "Command line too long"), false),
        ControlChanErrorKind::InvalidCommand => (Reply::new(ReplyCode::ParameterSyntaxError, "Invalid Parameter"), false),
        // qftpd patch: 421, as RFC 959 wants for a connection the server closes.
        ControlChanErrorKind::ControlChannelTimeout => (
            Reply::new(ReplyCode::ServiceNotAvailable, "Session timed out. Closing control connection"),
            true,
        ),
        _ => (Reply::new(ReplyCode::LocalError, "Unknown internal server error, please try again later"), true),
    }
}

#[derive(Debug)]
struct PrimaryEventHandler<Storage, User>
where
    User: UserDetail + 'static,
    Storage: StorageBackend<User> + 'static,
    Storage::Metadata: Metadata,
{
    logger: slog::Logger,
    session: SharedSession<Storage, User>,
    auth_pipeline: Arc<AuthenticationPipeline<User>>,
    tls_configured: bool,
    passive_ports: RangeInclusive<u16>,
    passive_host: PassiveHost,
    tx_control_chan: Sender<ControlChanMsg>,
    local_addr: SocketAddr,
    storage_features: u32,
    tx_proxy_loop: Option<SwitchboardSender<Storage, User>>,
    sitemd5: SiteMd5,
    site_handlers: Arc<HashMap<String, Arc<dyn SiteCommandHandler<Storage, User>>>>,
}

impl<Storage, User> PrimaryEventHandler<Storage, User>
where
    User: UserDetail + 'static,
    Storage: StorageBackend<User> + 'static,
    Storage::Metadata: Metadata,
{
    #[tracing_attributes::instrument]
    async fn handle_internal_msg(&self, msg: ControlChanMsg) -> Result<Reply, ControlChanError> {
        use self::ControlChanMsg::*;
        use SessionState::*;

        match msg {
            NotFound => Ok(Reply::new(ReplyCode::FileError, "File not found")),
            PermissionDenied => Ok(Reply::new(ReplyCode::FileError, "Permision denied")),
            SentData { .. } => {
                let mut session = self.session.lock().await;
                session.start_pos = 0;
                Ok(Reply::new(ReplyCode::ClosingDataConnection, "Successfully sent"))
            }
            WriteFailed => Ok(Reply::new(ReplyCode::TransientFileError, "Failed to write file")),
            ConnectionReset => Ok(Reply::new(ReplyCode::ConnectionClosed, "Datachannel unexpectedly closed")),
            WrittenData { .. } => {
                let mut session = self.session.lock().await;
                session.start_pos = 0;
                Ok(Reply::new(ReplyCode::ClosingDataConnection, "File successfully written"))
            }
            DataConnectionClosedAfterStor => Ok(Reply::new(ReplyCode::FileActionOkay, "unFTP holds your data for you")),
            DirectorySuccessfullyListed => Ok(Reply::new(ReplyCode::ClosingDataConnection, "Listed the directory")),
            DirectoryListFailure => Ok(Reply::new(ReplyCode::ClosingDataConnection, "Failed to list the directory")),
            CwdSuccess => Ok(Reply::new(ReplyCode::FileActionOkay, "Successfully changed working directory")),
            DelFileSuccess { .. } | RmDirSuccess { .. } => Ok(Reply::new(ReplyCode::FileActionOkay, "Successfully removed")),
            DelFail => Ok(Reply::new(ReplyCode::TransientFileError, "Failed to delete the file")),
            ExitControlLoop => Ok(Reply::none()),
            SecureControlChannel => {
                let mut session = self.session.lock().await;
                session.cmd_tls = true;
                Ok(Reply::none())
            }
            PlaintextControlChannel => {
                let mut session = self.session.lock().await;
                session.cmd_tls = false;
                Ok(Reply::none())
            }
            // qftpd patch: RFC 959's `257 "PATH" created`, with quotes in the path doubled.
            MkDirSuccess { path } => Ok(Reply::new_with_string(
                ReplyCode::DirCreated,
                format!("\"{}\" created", one_line(&path).replace('"', "\"\"")),
            )),
            MkdirFail => Ok(Reply::new(ReplyCode::FileError, "Failed to create directory")),
            RenameSuccess { .. } => Ok(Reply::new(ReplyCode::FileActionOkay, "Renamed")),
            AuthSuccess { .. } => {
                let mut session = self.session.lock().await;
                session.state = WaitCmd;
                // qftpd patch: the user detail may provide the 230 text.
                let text = (*session.user)
                    .as_ref()
                    .and_then(|user| user.welcome())
                    .unwrap_or_else(|| "User logged in, proceed".to_string());
                Ok(Reply::new_with_string(ReplyCode::UserLoggedIn, one_line(&text)))
            }
            AuthFailed => {
                let mut session = self.session.lock().await;
                session.state = New; // According to RFC 959, a PASS command MUST precede a USER command
                Ok(Reply::new(ReplyCode::NotLoggedIn, "Authentication failed"))
            }
            AuthUnavailable(reason) => {
                let mut session = self.session.lock().await;
                session.state = New;
                Ok(Reply::new_with_string(ReplyCode::NotLoggedIn, one_line(&reason)))
            }
            // qftpd patch: see `AuthServiceUnavailable`; the control loop closes the
            // connection after a 421 reply.
            AuthServiceUnavailable(reason) => {
                let mut session = self.session.lock().await;
                session.state = New;
                Ok(Reply::new_with_string(ReplyCode::ServiceNotAvailable, one_line(&reason)))
            }
            StorageError(error_type) => {
                let (code, default) = match error_type.kind() {
                    ErrorKind::ExceededStorageAllocationError => (ReplyCode::ExceededStorageAllocation, "Exceeded storage allocation"),
                    ErrorKind::FileNameNotAllowedError => (ReplyCode::BadFileName, "File name not allowed"),
                    ErrorKind::InsufficientStorageSpaceError => (ReplyCode::OutOfSpace, "Insufficient storage space"),
                    ErrorKind::LocalError => (ReplyCode::LocalError, "Local error"),
                    ErrorKind::PageTypeUnknown => (ReplyCode::PageTypeUnknown, "Page type unknown"),
                    ErrorKind::TransientFileNotAvailable => (ReplyCode::TransientFileError, "File not found"),
                    ErrorKind::PermanentFileNotAvailable => (ReplyCode::FileError, "File not found"),
                    ErrorKind::PermanentDirectoryNotAvailable => (ReplyCode::FileError, "Directory not found"),
                    ErrorKind::PermanentDirectoryNotEmpty => (ReplyCode::FileError, "Directory not empty"),
                    ErrorKind::PermissionDenied => (ReplyCode::FileError, "Permission denied"),
                    ErrorKind::CommandNotImplemented => (ReplyCode::CommandNotImplemented, "Command not implemented"),
                    ErrorKind::InvalidRestParameter => (ReplyCode::InvalidRestParameter, "Invalid REST parameter"),
                    ErrorKind::ConnectionClosed => (ReplyCode::ConnectionClosed, "Connection closed"),
                    // qftpd patch: see `ErrorKind::ArgumentNotAllowed`.
                    ErrorKind::ArgumentNotAllowed => (ReplyCode::ParameterSyntaxError, "Argument not allowed"),
                };
                // qftpd patch: reply with the back-end's own description of the failure (for
                // example why the file system refused), on one line, when it gave one.
                let text = std::error::Error::source(&error_type)
                    .map(|source| one_line(&source.to_string()))
                    .filter(|text| !text.is_empty())
                    .unwrap_or_else(|| default.to_string());
                Ok(Reply::new_with_string(code, text))
            }
            CommandChannelReply(reply) => Ok(reply),
        }
    }

    #[tracing_attributes::instrument]
    async fn handle_command(&self, cmd: Command) -> Result<Reply, ControlChanError> {
        let args = CommandContext {
            parsed_command: cmd.clone(),
            session: self.session.clone(),
            auth_pipeline: self.auth_pipeline.clone(),
            tls_configured: self.tls_configured,
            passive_ports: self.passive_ports.clone(),
            passive_host: self.passive_host.clone(),
            tx_control_chan: self.tx_control_chan.clone(),
            local_addr: self.local_addr,
            storage_features: self.storage_features,
            tx_prebound_loop: self.tx_proxy_loop.clone(),
            logger: self.logger.clone(),
            sitemd5: self.sitemd5,
            site_handlers: self.site_handlers.clone(),
        };

        let handler: Box<dyn CommandHandler<Storage, User>> = match cmd {
            Command::User { username } => Box::new(commands::User::new(username)),
            Command::Pass { password } => Box::new(commands::Pass::new(password)),
            Command::Syst => Box::new(commands::Syst),
            Command::Stat { path } => Box::new(commands::Stat::new(path)),
            Command::Acct { .. } => Box::new(commands::Acct),
            Command::Type { param } => Box::new(commands::Type::new(param)),
            Command::Stru { structure } => Box::new(commands::Stru::new(structure)),
            Command::Mode { mode } => Box::new(commands::Mode::new(mode)),
            Command::Help => Box::new(commands::Help),
            Command::Noop => Box::new(commands::Noop),
            Command::Pasv => Box::new(commands::Pasv::new()),
            Command::Epsv { protocol } => Box::new(commands::Epsv::new(protocol)),
            Command::EpsvAll => Box::new(commands::EpsvAll),
            Command::Port { addr } => Box::new(commands::Port::new(addr)),
            Command::Eprt { addr } => Box::new(commands::Port::extended(addr)),
            Command::Retr { .. } => Box::new(commands::Retr),
            Command::Stor { .. } => Box::new(commands::Stor),
            Command::List { .. } => Box::new(commands::List),
            Command::Nlst { .. } => Box::new(commands::Nlst),
            Command::Feat => Box::new(commands::Feat),
            Command::Pwd => Box::new(commands::Pwd),
            Command::Cwd { path } => Box::new(commands::Cwd::new(path)),
            Command::Cdup => Box::new(commands::Cdup),
            Command::Opts { option } => Box::new(commands::Opts::new(option)),
            Command::Dele { path } => Box::new(commands::Dele::new(path)),
            Command::Rmd { path } => Box::new(commands::Rmd::new(path)),
            Command::Quit => Box::new(commands::Quit),
            Command::Mkd { path } => Box::new(commands::Mkd::new(path)),
            Command::Allo { .. } => Box::new(commands::Allo),
            Command::Abor => Box::new(commands::Abor),
            Command::Stou => Box::new(commands::Stou),
            Command::Rnfr { file } => Box::new(commands::Rnfr::new(file)),
            Command::Rnto { file } => Box::new(commands::Rnto::new(file)),
            Command::Auth { protocol } => Box::new(commands::Auth::new(protocol)),
            Command::Pbsz {} => Box::new(commands::Pbsz),
            Command::Ccc => Box::new(commands::Ccc),
            Command::Prot { param } => Box::new(commands::Prot::new(param)),
            Command::Size { file } => Box::new(commands::Size::new(file)),
            Command::Rest { offset } => Box::new(commands::Rest::new(offset)),
            Command::Mdtm { file } => Box::new(commands::Mdtm::new(file)),
            Command::Mfmt { time, file } => Box::new(commands::Mfmt::new(time, file)),
            Command::Md5 { file } => Box::new(commands::Md5::new(file)),
            Command::Mlst { path } => Box::new(commands::Mlst::new(path)),
            Command::Mlsd { .. } => Box::new(commands::Mlsd),
            Command::Appe { .. } => Box::new(commands::Appe),
            Command::Site { command, arguments } => Box::new(commands::Site::new(command, arguments)),
            Command::Other { .. } => return Ok(Reply::new(ReplyCode::CommandSyntaxError, "Command not implemented")),
        };

        handler.handle(args).await
    }
}

#[async_trait]
impl<Storage, User> ControlChanMiddleware for PrimaryEventHandler<Storage, User>
where
    User: UserDetail + 'static,
    Storage: StorageBackend<User> + 'static,
    Storage::Metadata: Metadata,
{
    async fn handle(&mut self, event: Event) -> Result<Reply, ControlChanError> {
        match event {
            Event::Command(cmd) => self.handle_command(cmd).await,
            Event::InternalMsg(msg) => self.handle_internal_msg(msg).await,
        }
    }
}

/// Folds a text into one reply line: CR and LF become spaces, so a message can never inject
/// a reply line. (qftpd patch)
fn one_line(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}
