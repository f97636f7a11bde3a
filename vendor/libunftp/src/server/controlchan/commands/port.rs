//! The RFC 959 Data Port (`PORT`) command
//
// The argument is a HOST-PORT specification for the data port
// to be used in data connection.  There are defaults for both
// the user and server data ports, and under normal
// circumstances this command and its reply are not needed.  If
// this command is used, the argument is the concatenation of a
// 32-bit internet host address and a 16-bit TCP port address.
// This address information is broken into 8-bit fields and the
// value of each field is transmitted as a decimal number (in
// character string representation).  The fields are separated
// by commas.  A port command would be:
//
// PORT h1,h2,h3,h4,p1,p2
//
// where h1 is the high order 8 bits of the internet host
// address.
//
// qftpd patch: the RFC 2428 Extended Data Port (`EPRT |1|h1.h2.h3.h4|port|` or
// `EPRT |2|ipv6|port|`) command is handled here too. Both only connect to the client's own
// address (the control connection's peer) and to ports from 1024 up (RFC 2577), so the server
// cannot be used to reach third parties (the FTP bounce attack).

use crate::{
    auth::UserDetail,
    server::{
        ControlChanMsg,
        chancomms::DataChanCmd,
        controlchan::{
            Reply, ReplyCode,
            error::ControlChanError,
            handler::{CommandContext, CommandHandler},
        },
        datachan,
        session::SharedSession,
    },
    storage::{Metadata, StorageBackend},
};
use async_trait::async_trait;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};
use tokio::net::TcpStream;
use tokio::sync::mpsc::{Receiver, Sender, channel};

#[derive(Debug)]
pub struct Port {
    addr: String,
    // qftpd patch: EPRT rather than PORT.
    extended: bool,
}

impl Port {
    pub fn new(addr: String) -> Self {
        Port { addr, extended: false }
    }

    // qftpd patch: the EPRT command, with the same checks and data path as PORT.
    pub fn extended(addr: String) -> Self {
        Port { addr, extended: true }
    }

    // modifies the session by adding channels that are used to communicate with the data connection
    // processing loop.
    #[tracing_attributes::instrument]
    async fn setup_inter_loop_comms<S, U>(&self, session: SharedSession<S, U>, control_loop_tx: Sender<ControlChanMsg>)
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
}

#[async_trait]
impl<Storage, User> CommandHandler<Storage, User> for Port
where
    User: UserDetail + 'static,
    Storage: StorageBackend<User> + 'static,
    Storage::Metadata: Metadata,
{
    #[tracing_attributes::instrument]
    async fn handle(&self, args: CommandContext<Storage, User>) -> Result<Reply, ControlChanError> {
        let CommandContext {
            logger,
            tx_control_chan: tx,
            session,
            ..
        } = args;

        // qftpd patch: RFC 2428 section 4.
        if session.lock().await.epsv_all {
            let verb = if self.extended { "EPRT" } else { "PORT" };
            return Ok(Reply::new_with_string(
                ReplyCode::BadCommandSequence,
                format!("{} not allowed after EPSV ALL", verb),
            ));
        }

        // qftpd patch: strict parsing, no connection to anyone but the client's own address
        // or to a privileged port, and a bounded wait for the connection.
        let parsed = if self.extended { parse_eprt(&self.addr) } else { parse_port(&self.addr) };
        let addr = match parsed {
            Ok(addr) => addr,
            Err(reply) => return Ok(reply),
        };
        let verb = if self.extended { "EPRT" } else { "PORT" };
        let (client_ip, wait) = {
            let mut session = session.lock().await;
            // qftpd patch: the passive listener of an earlier PASV or EPSV is closed.
            session.passive_listener = None;
            (session.source.ip(), session.data_connect_timeout())
        };
        if addr.ip().to_canonical() != client_ip.to_canonical() {
            slog::warn!(logger, "{} to {} refused: the client is {}", verb, addr, client_ip);
            return Ok(Reply::new_with_string(
                ReplyCode::CommandNotImplementedForParameter,
                format!("{} to a third-party address refused", verb),
            ));
        }
        if addr.port() < 1024 {
            slog::warn!(logger, "{} to privileged port {} refused", verb, addr);
            return Ok(Reply::new_with_string(
                ReplyCode::CommandNotImplementedForParameter,
                format!("{} to a privileged port refused", verb),
            ));
        }

        let stream: io::Result<TcpStream> = match tokio::time::timeout(wait, TcpStream::connect(addr)).await {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "connection timed out")),
        };

        let stream = match stream {
            Err(e) => {
                slog::error!(logger, "Could not connect to client for active mode: {}", e);
                return Ok(Reply::new(ReplyCode::CantOpenDataConnection, "Could not establish data connection"));
            }
            Ok(s) => s,
        };

        self.setup_inter_loop_comms(session.clone(), tx).await;
        datachan::spawn_processing(logger, session, stream).await;

        Ok(Reply::new_with_string(ReplyCode::CommandOkay, format!("{} command successful", verb)))
    }
}

// qftpd patch: `h1,h2,h3,h4,p1,p2`, every field a decimal byte.
fn parse_port(arg: &str) -> Result<SocketAddr, Reply> {
    let bytes: Vec<u8> = arg.split(',').map(|x| x.trim().parse::<u8>()).collect::<Result<_, _>>().unwrap_or_default();
    if bytes.len() != 6 {
        return Err(Reply::new(ReplyCode::ParameterSyntaxError, "Invalid address format"));
    }
    let port = ((bytes[4] as u16) << 8) | bytes[5] as u16;
    Ok(SocketAddrV4::new(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]), port).into())
}

// qftpd patch: RFC 2428 `<d><net-prt><d><net-addr><d><tcp-port><d>`, where <d> is any printable
// ASCII character; network protocol 1 is IPv4 and 2 is IPv6.
fn parse_eprt(arg: &str) -> Result<SocketAddr, Reply> {
    let syntax_error = || {
        Reply::new(
            ReplyCode::ParameterSyntaxError,
            "Invalid EPRT argument, expected |1|a.b.c.d|port| or |2|ipv6|port|",
        )
    };
    let delimiter = match arg.chars().next() {
        Some(c) if c.is_ascii_graphic() => c,
        _ => return Err(syntax_error()),
    };
    let fields: Vec<&str> = arg[1..].split(delimiter).collect();
    let [protocol, host, port, rest] = fields[..] else {
        return Err(syntax_error());
    };
    if !rest.is_empty() {
        return Err(syntax_error());
    }
    let ip: IpAddr = match protocol {
        "1" => host.parse::<Ipv4Addr>().map_err(|_| syntax_error())?.into(),
        "2" => host.parse::<Ipv6Addr>().map_err(|_| syntax_error())?.into(),
        _ => return Err(Reply::new(ReplyCode::NetworkProtocolNotSupported, "Network protocol not supported, use (1,2)")),
    };
    let port: u16 = port.parse().map_err(|_| syntax_error())?;
    Ok(SocketAddr::new(ip, port))
}
