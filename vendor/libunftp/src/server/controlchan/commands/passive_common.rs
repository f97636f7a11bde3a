//! Contains shared code for the PASV and EPSV commands.

use crate::{
    auth::UserDetail,
    server::{
        ControlChanErrorKind, ControlChanMsg,
        chancomms::{DataChanCmd, PortAllocationError, SwitchboardMessage, SwitchboardSender},
        controlchan::{Reply, ReplyCode, error::ControlChanError, handler::CommandContext},
        datachan,
        session::{DataPeers, SharedSession},
    },
    storage::{Metadata, StorageBackend},
};
use async_trait::async_trait;
use std::{
    fmt::Debug,
    io,
    net::SocketAddr,
    ops::RangeInclusive,
    sync::Arc,
    time::{Duration, Instant},
};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{
    mpsc::{Receiver, Sender, channel},
    oneshot,
};

#[async_trait]
pub(crate) trait LegacyReplyProducer<Storage, User>: Send + Sync + Debug
where
    Storage: StorageBackend<User> + 'static,
    User: UserDetail + 'static,
{
    async fn build_reply(&self, args: &CommandContext<Storage, User>, port: u16) -> Result<Reply, ControlChanError>;
}

#[tracing_attributes::instrument]
// qftpd patch: returns the listening socket. Two sessions may bind the same port at the same
// moment (both set SO_REUSEADDR, so both binds succeed); the second then fails at listen(), and
// tries another port like a failed bind, instead of failing the PASV. Every port of the range is
// tried once, from a random one on, so that a port is found whenever one is free; when none is,
// the error is `AddrInUse`, which `handle_legacy_mode` answers `425 No passive port free`.
pub(crate) fn try_port_range(local_addr: SocketAddr, passive_ports: RangeInclusive<u16>) -> io::Result<TcpListener> {
    let ip = local_addr.ip();
    let (low, high) = (*passive_ports.start(), *passive_ports.end());
    if low > high {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty passive port range"));
    }
    let rng_length = u32::from(high - low) + 1;
    let first = {
        let mut data = [0; 4];
        getrandom::fill(&mut data).map_err(|e| io::Error::other(format!("no random number: {e}")))?;
        u32::from_ne_bytes(data) % rng_length
    };
    for i in 0..rng_length {
        let port = (u32::from(low) + (first + i) % rng_length) as u16;
        let s = match ip {
            std::net::IpAddr::V4(_) => TcpSocket::new_v4()?,
            std::net::IpAddr::V6(_) => TcpSocket::new_v6()?,
        };
        s.set_reuseaddr(true)?;
        match s.bind(SocketAddr::new(ip, port)).and_then(|()| s.listen(1024)) {
            Ok(listener) => return Ok(listener),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(io::ErrorKind::AddrInUse, "no passive port free"))
}

// qftpd patch: the passive listener of a session (at most one: see `handle_legacy_mode`). It is
// the task that accepts the data connection and owns the listening socket; dropping this ends
// the task, and so closes the socket and frees its port. The session drops it when a new PASV or
// EPSV, a PORT or EPRT, or an ABOR replaces it, and when the session itself ends (the task holds
// the session only weakly).
#[derive(Debug)]
pub(crate) struct PassiveListener {
    task: Option<tokio::task::JoinHandle<()>>,
}

impl PassiveListener {
    // Closes the listener and returns once its socket is closed (dropping it does not wait).
    async fn close(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for PassiveListener {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

// qftpd patch: the log target of the passive listeners: the data channel's (its warnings are
// kept where libunftp's other logs are not; see qftpd's logging set-up).
const LOG_TARGET: &str = "libunftp::server::datachan::passive";

// qftpd patch: when the range has no port free, a warning at most every `EXHAUSTED_LOG_EVERY`,
// with the number of PASV and EPSV refused since the last one.
const EXHAUSTED_LOG_EVERY: Duration = Duration::from_secs(10);

fn log_no_port_free(passive_ports: &RangeInclusive<u16>) {
    static LAST: std::sync::Mutex<Option<(Instant, u64)>> = std::sync::Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    match &mut *last {
        Some((at, refused)) if now.duration_since(*at) < EXHAUSTED_LOG_EVERY => *refused += 1,
        _ => {
            let refused = last.map_or(0, |(_, n)| n);
            let ports = u32::from(passive_ports.end() - passive_ports.start()) + 1;
            tracing::warn!(
                target: LOG_TARGET,
                range = %format_args!("{}-{}", passive_ports.start(), passive_ports.end()),
                refused_since_last_warning = refused,
                "PASV/EPSV answered 425: no passive port free, all {ports} ports of the range are in use"
            );
            *last = Some((now, 0));
        }
    }
}

// modifies the session by adding channels that are used to communicate with the data connection
// processing loop.
#[tracing_attributes::instrument]
pub(crate) async fn setup_inter_loop_comms<S, U>(session: SharedSession<S, U>, control_loop_tx: Sender<ControlChanMsg>)
where
    U: UserDetail + 'static,
    S: StorageBackend<U> + 'static,
    S::Metadata: Metadata,
{
    let (cmd_tx, cmd_rx): (Sender<DataChanCmd>, Receiver<DataChanCmd>) = channel(1);
    let (data_abort_tx, data_abort_rx): (Sender<()>, Receiver<()>) = channel(1);

    let mut session = session.lock().await;
    session.data_cmd_tx = Some(cmd_tx);
    session.data_cmd_rx = Some(cmd_rx);
    session.data_abort_tx = Some(data_abort_tx);
    session.data_abort_rx = Some(data_abort_rx);
    session.control_msg_tx = Some(control_loop_tx);
}

// For legacy mode we choose a data port here and start listening on it while letting the control
// channel know (via method return) what the address is that the client should connect to.
#[tracing_attributes::instrument]
pub(crate) async fn handle_legacy_mode<S, U, T>(cmd: &T, args: CommandContext<S, U>) -> Result<Reply, ControlChanError>
where
    U: UserDetail + 'static,
    S: StorageBackend<U> + 'static,
    S::Metadata: Metadata,
    T: LegacyReplyProducer<S, U>,
{
    // qftpd patch: a session holds one passive listener at most: the one of an earlier PASV or
    // EPSV is closed first, and its port is free for this one or for other sessions.
    let (listener, control_peer) = {
        let mut session = args.session.lock().await;
        if let Some(previous) = session.passive_listener.take() {
            previous.close().await;
        }
        let listener = match session.binder {
            Some(ref mut binder) => binder.bind(args.local_addr.ip(), args.passive_ports.clone()).await.and_then(|s| s.listen(1024)),
            _ => try_port_range(args.local_addr, args.passive_ports.clone()),
        };
        (listener, session.data_peers())
    };
    // qftpd patch: a socket that cannot listen is answered 425 too; it closed the control
    // connection without a reply. A range without a free port is answered at once, and the
    // session goes on.
    let listener = match listener {
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
            log_no_port_free(&args.passive_ports);
            return Ok(Reply::new(ReplyCode::CantOpenDataConnection, "No passive port free, try again later"));
        }
        Err(e) => {
            tracing::warn!(target: LOG_TARGET, error = %e, "PASV/EPSV answered 425: cannot listen for a data connection");
            return Ok(Reply::new(ReplyCode::CantOpenDataConnection, "Cannot listen for a data connection"));
        }
        Ok(l) => l,
    };

    let port = match listener.local_addr() {
        Ok(addr) => addr.port(),
        Err(e) => {
            tracing::warn!(target: LOG_TARGET, error = %e, "PASV/EPSV answered 425: the listening socket has no address");
            return Ok(Reply::new(ReplyCode::CantOpenDataConnection, "Cannot listen for a data connection"));
        }
    };

    let reply = cmd.build_reply(&args, port).await?;
    if reply.is_positive() {
        setup_inter_loop_comms(args.session.clone(), args.tx_control_chan.clone()).await;
        // qftpd patch: the wait is ServerBuilder::data_connection_timeout's, and a connection
        // that never comes is not waited for by a transfer command (see abandon_data_connection).
        let mut session = args.session.lock().await;
        let (wait, cmd_tx) = (session.data_connect_timeout(), session.data_cmd_tx.clone());
        let weak_session = Arc::downgrade(&args.session);
        let (logger, tx_control_chan) = (args.logger, args.tx_control_chan);
        // Open the data connection in a new task and process it.
        // We cannot await this since we first need to let the client know where to connect :-)
        let task = tokio::spawn(async move {
            let socket = accept_from(listener, &control_peer, port, wait, cmd_tx.as_ref()).await;
            let Some(session) = weak_session.upgrade() else { return };
            match socket {
                Accepted::Socket(socket) => datachan::spawn_processing(logger, session, socket).await,
                Accepted::Refused => {
                    let reason = "Data connection refused: it did not come from the client's address";
                    abandon_data_connection(&session, &tx_control_chan, cmd_tx, reason).await
                }
                Accepted::None => abandon_data_connection(&session, &tx_control_chan, cmd_tx, "Data connection not opened in time").await,
            }
        });
        session.passive_listener = Some(PassiveListener { task: Some(task) });
    }

    Ok(reply)
}

// qftpd patch: what came of the wait for a passive data connection.
enum Accepted {
    // The client's data connection.
    Socket(TcpStream),
    // A transfer command waits, and the only connections that came were refused by the
    // address check: the transfer gets 425 at once rather than when the wait is over.
    Refused,
    // Nothing came in time, or the listener failed.
    None,
}

// How often a listener that refused a connection looks whether a transfer command is waiting.
const REFUSED_CHECK: Duration = Duration::from_millis(20);

// qftpd patch: waits (at most `wait`) for the data connection of the client (`peers`) on
// `listener`, and closes the listener as soon as it is accepted. A connection from another
// address is closed and logged, and the wait goes on while no transfer command waits (`cmd_tx`
// is full): a stranger's connection must not end the rightful client's wait. Once a transfer
// command waits (the client sent it after connecting, so its connection, if it is coming, is
// in the listen queue already), the queue is read to the end, and with the client's connection
// not in it the transfer is refused (Accepted::Refused) instead of waiting out `wait`: the
// client's connection came from an address the check does not allow.
async fn accept_from(listener: TcpListener, peers: &DataPeers, port: u16, wait: Duration, cmd_tx: Option<&Sender<DataChanCmd>>) -> Accepted {
    let deadline = tokio::time::Instant::now() + wait;
    let control_peer = peers.client;
    let transfer_waits = || cmd_tx.is_some_and(|tx| tx.capacity() == 0);
    let mut refused = 0u64;
    let mut check = tokio::time::interval(REFUSED_CHECK);
    let accepted = loop {
        let next = tokio::select! {
            next = tokio::time::timeout_at(deadline, listener.accept()) => next,
            _ = check.tick(), if refused > 0 => {
                if transfer_waits() {
                    break take_queued(&listener, peers, port, &mut refused);
                }
                continue;
            }
        };
        match next {
            Ok(Ok((socket, peer))) if peers.allow(peer.ip()) => break Accepted::Socket(socket),
            Ok(Ok((socket, peer))) => {
                refused += 1;
                log_refused(port, peer, control_peer, refused);
                drop(socket);
                if transfer_waits() {
                    break take_queued(&listener, peers, port, &mut refused);
                }
            }
            // The client reset a connection before it was accepted: not the listener's fault.
            Ok(Err(e)) if matches!(e.kind(), io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset) => continue,
            Ok(Err(e)) => {
                tracing::warn!(target: LOG_TARGET, port, control_peer = %control_peer, error = %e, "cannot accept the passive data connection");
                break Accepted::None;
            }
            Err(_) => {
                tracing::warn!(
                    target: LOG_TARGET,
                    port,
                    control_peer = %control_peer,
                    "the client did not open its passive data connection within {} s",
                    wait.as_secs_f64()
                );
                break Accepted::None;
            }
        }
    };
    drop(listener);
    if refused > 1 {
        tracing::warn!(
            target: LOG_TARGET,
            port,
            control_peer = %control_peer,
            refused,
            "passive port closed; it refused {refused} data connections from other addresses"
        );
    }
    accepted
}

// The connections already in `listener`'s queue: the client's, if it is there (the others are
// refused), else Accepted::Refused.
fn take_queued(listener: &TcpListener, peers: &DataPeers, port: u16, refused: &mut u64) -> Accepted {
    use futures_util::FutureExt;
    while let Some(next) = listener.accept().now_or_never() {
        match next {
            Ok((socket, peer)) if peers.allow(peer.ip()) => return Accepted::Socket(socket),
            Ok((_refused, peer)) => {
                *refused += 1;
                log_refused(port, peer, peers.client, *refused);
            }
            Err(_) => continue,
        }
    }
    tracing::warn!(
        target: LOG_TARGET,
        port,
        control_peer = %peers.client,
        "a transfer command was answered 425: its data connection came from an address that is not the client's"
    );
    Accepted::Refused
}

// The first connection a listener refuses is a warning (and their number when it closes); a
// flood of them is not.
fn log_refused(port: u16, peer: SocketAddr, control_peer: SocketAddr, refused: u64) {
    if refused == 1 {
        tracing::warn!(
            target: LOG_TARGET,
            port,
            data_peer = %peer,
            control_peer = %control_peer,
            "refused a data connection from another address than the control connection's"
        );
    } else {
        tracing::debug!(target: LOG_TARGET, port, data_peer = %peer, control_peer = %control_peer, "refused a data connection");
    }
}

// qftpd patch: the client did not open the passive data connection (`ours` is the command
// channel set up for it). A transfer command already queued for it (not yet answered) gets 425
// instead of nothing; one sent later gets 425 at once instead of 150 and a hang.
async fn abandon_data_connection<S, U>(session: &SharedSession<S, U>, tx_control_chan: &Sender<ControlChanMsg>, ours: Option<Sender<DataChanCmd>>, reason: &str)
where
    U: UserDetail + 'static,
    S: StorageBackend<U> + 'static,
    S::Metadata: Metadata,
{
    let Some(ours) = ours else { return };
    if ours.capacity() == 0 {
        let reply = Reply::new(ReplyCode::CantOpenDataConnection, reason);
        let _ = tx_control_chan.send(ControlChanMsg::CommandChannelReply(reply)).await;
        return;
    }
    let mut session = session.lock().await;
    if session.data_cmd_tx.as_ref().is_some_and(|tx| tx.same_channel(&ours)) {
        session.data_cmd_tx = None;
        session.data_cmd_rx = None;
    }
}

// For delegated mode, we prepare the session and let the listener loop know (via channel) that it
// should choose a data port and check for connections on it.
#[tracing_attributes::instrument]
pub(crate) async fn handle_delegated_mode<S, U>(args: CommandContext<S, U>, tx: SwitchboardSender<S, U>) -> Result<Reply, ControlChanError>
where
    U: UserDetail + 'static,
    S: StorageBackend<U> + 'static,
    S::Metadata: Metadata,
{
    setup_inter_loop_comms(args.session.clone(), args.tx_control_chan).await;

    let (oneshot_tx, oneshot_rx) = oneshot::channel::<Result<Reply, PortAllocationError>>();

    tx.send(SwitchboardMessage::AssignDataPortCommand(args.session.clone(), oneshot_tx))
        .await
        .map_err(|_| ControlChanErrorKind::InternalServerError)?;

    match oneshot_rx.await {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(_)) => Ok(Reply::new(ReplyCode::CantOpenDataConnection, "Could not allocate passive port")),
        Err(_) => Ok(Reply::new(ReplyCode::CantOpenDataConnection, "Internal error: Channel closed")),
    }
}
