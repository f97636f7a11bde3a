//! The one raw FTP control client of the tests, for reply codes and texts that client
//! libraries hide. It reads in two ways:
//!
//! - strictly ([`Control::reply`], [`Control::cmd`]): exactly one complete reply by RFC 959
//!   (every line ends with CRLF and holds no other CR, a reply starts with three digits and a
//!   space or a dash, a multi-line reply ends at the first line starting with its code and a
//!   space), and anything else fails the test;
//! - leniently ([`Control::reply_lenient`], [`Control::cmd_lenient`]): whatever text the
//!   server sends up to the end of a reply, or "" when it closed the connection, for tests of
//!   hostile clients and of servers that hang up.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};

/// The longest wait for any reply, connection or data read.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// One reply: its code and its lines as received (without CRLF).
#[derive(Debug)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }

    pub fn assert_code(&self, code: u16) -> &Self {
        assert_eq!(self.code, code, "unexpected reply: {self:#?}");
        self
    }

    pub fn assert_says(&self, code: u16, text: &str) -> &Self {
        self.assert_code(code);
        assert!(
            self.text().contains(text),
            "reply lacks {text:?}: {self:#?}"
        );
        self
    }
}

/// A control connection that reads replies strictly: every line ends with CRLF and holds no
/// other CR, a reply starts with three digits and a space or a dash, and a multi-line reply
/// ends at the first line starting with its code and a space.
pub struct Control {
    pub stream: BufReader<Conn>,
}

/// The control connection's transport: plain TCP, or TLS after `AUTH TLS`.
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

/// Accepts any server certificate (the tests' servers have fresh self-signed ones) but checks
/// the handshake's signatures.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

impl Control {
    /// Connects and reads the 220 greeting.
    pub fn connect(addr: SocketAddr) -> Control {
        let mut control = Control::open(addr);
        control.reply().assert_code(220);
        control
    }

    /// Connects without reading anything (the greeting is the first reply to read).
    pub fn open(addr: SocketAddr) -> Control {
        let stream = TcpStream::connect_timeout(&addr, READ_TIMEOUT).expect("connect");
        Control::from_stream(stream)
    }

    /// A control client on a connection made by the test (e.g. from a chosen source address);
    /// reads nothing yet.
    pub fn from_stream(stream: TcpStream) -> Control {
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(READ_TIMEOUT)).unwrap();
        Control {
            stream: BufReader::new(Conn::Plain(stream)),
        }
    }

    /// Waits up to `timeout` (instead of [`READ_TIMEOUT`]) for each read.
    pub fn set_read_timeout(&mut self, timeout: Duration) {
        match self.stream.get_ref() {
            Conn::Plain(s) => s.set_read_timeout(Some(timeout)),
            Conn::Tls(s) => s.sock.set_read_timeout(Some(timeout)),
        }
        .expect("set the read timeout");
    }

    /// Reads the next reply leniently: its text as received (line ends included), up to and
    /// including the first line that starts with three digits and a space; what was read when
    /// the server closes the connection first ("" if nothing). A connection reset counts as
    /// closed; any other read error (a timeout) fails the test.
    pub fn reply_lenient(&mut self) -> String {
        let mut text = Vec::new();
        loop {
            let mut line = Vec::new();
            match self.stream.read_until(b'\n', &mut line) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(e) => panic!(
                    "reading a reply: {e} (so far {:?})",
                    String::from_utf8_lossy(&text)
                ),
            }
            text.extend_from_slice(&line);
            if line.len() >= 4 && line[..3].iter().all(u8::is_ascii_digit) && line[3] == b' ' {
                break;
            }
        }
        String::from_utf8_lossy(&text).into_owned()
    }

    /// Sends `line` and CRLF; reads the reply leniently (see [`Control::reply_lenient`]).
    pub fn cmd_lenient(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply_lenient()
    }

    /// Connects and logs in.
    pub fn login(addr: SocketAddr, user: (&str, &str)) -> Control {
        let mut control = Control::connect(addr);
        control.user_pass(user);
        control
    }

    /// USER and PASS (331, 230).
    pub fn user_pass(&mut self, (user, password): (&str, &str)) {
        self.cmd(&format!("USER {user}")).assert_code(331);
        self.cmd(&format!("PASS {password}")).assert_code(230);
    }

    /// `AUTH TLS` (234), then the TLS handshake on the control connection.
    pub fn auth_tls(&mut self) {
        self.cmd("AUTH TLS").assert_code(234);
        assert!(
            self.stream.buffer().is_empty(),
            "bytes after the 234 reply, before the TLS handshake"
        );
        let tcp = match self.stream.get_ref() {
            Conn::Plain(s) => s.try_clone().expect("clone the control socket"),
            Conn::Tls(_) => panic!("the control connection is already TLS"),
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth();
        let name = ServerName::try_from("localhost").unwrap();
        let mut conn = ClientConnection::new(Arc::new(config), name).expect("TLS client");
        let mut tcp = tcp;
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp)
                .expect("TLS handshake on the control connection");
        }
        self.stream = BufReader::new(Conn::Tls(Box::new(StreamOwned::new(conn, tcp))));
    }

    /// Sends `bytes` as they are.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream
            .get_mut()
            .write_all(bytes)
            .expect("write to the control connection");
    }

    /// Reads one reply line strictly (CRLF-terminated, no other CR); returns it without CRLF.
    pub fn line(&mut self) -> String {
        let mut buf = Vec::new();
        let n = self
            .stream
            .read_until(b'\n', &mut buf)
            .expect("read a reply line");
        assert!(n > 0, "the server closed the control connection");
        let text = String::from_utf8_lossy(&buf).into_owned();
        assert!(buf.ends_with(b"\r\n"), "reply line without CRLF: {text:?}");
        buf.truncate(buf.len() - 2);
        assert!(!buf.contains(&b'\r'), "CR inside a reply line: {text:?}");
        String::from_utf8(buf).expect("a UTF-8 reply line")
    }

    /// Reads one whole reply.
    pub fn reply(&mut self) -> Reply {
        let first = self.line();
        let code: u16 = match first.as_bytes() {
            [a, b, c, ..] if [a, b, c].iter().all(|d| d.is_ascii_digit()) => {
                first[..3].parse().unwrap()
            }
            _ => panic!("not a reply line: {first:?}"),
        };
        let mut lines = vec![first.clone()];
        match first.as_bytes().get(3) {
            None | Some(b' ') => {}
            Some(b'-') => loop {
                let line = self.line();
                let last = line.starts_with(&format!("{code} "));
                lines.push(line);
                if last {
                    break;
                }
            },
            Some(_) => panic!("not a reply line: {first:?}"),
        }
        Reply { code, lines }
    }

    /// Sends `line` and CRLF; reads the reply.
    pub fn cmd(&mut self, line: &str) -> Reply {
        self.raw(format!("{line}\r\n").as_bytes())
    }

    /// Sends `bytes` as they are; reads the reply.
    pub fn raw(&mut self, bytes: &[u8]) -> Reply {
        self.send(bytes);
        self.reply()
    }

    /// Reads replies until the server closes the connection.
    pub fn replies_until_closed(&mut self) -> Vec<Reply> {
        let mut replies = Vec::new();
        while !self
            .stream
            .fill_buf()
            .expect("read from the control connection")
            .is_empty()
        {
            replies.push(self.reply());
        }
        replies
    }

    /// NOOP is answered 200: the session is usable, and no stray line of an earlier reply was
    /// waiting (it would have been read as the answer).
    pub fn assert_in_step(&mut self) {
        self.cmd("NOOP").assert_code(200);
    }

    /// PASV; the address of the reply.
    pub fn pasv(&mut self) -> SocketAddr {
        let reply = self.cmd("PASV");
        reply.assert_code(227);
        Control::pasv_addr(&reply)
    }

    /// EPSV; the address of the reply: its port on `host` (the control connection's host,
    /// which EPSV does not name).
    pub fn epsv(&mut self, host: IpAddr) -> SocketAddr {
        let reply = self.cmd("EPSV");
        reply.assert_code(229);
        let text = reply.text();
        let port = text
            .split_once("(|||")
            .and_then(|(_, rest)| rest.split_once("|)"))
            .and_then(|(port, _)| port.parse().ok())
            .unwrap_or_else(|| panic!("no port in {text:?}"));
        SocketAddr::new(host, port)
    }

    /// The address of a 227 reply.
    pub fn pasv_addr(reply: &Reply) -> SocketAddr {
        let text = reply.text();
        let inner = text
            .split_once('(')
            .and_then(|(_, rest)| rest.split_once(')'))
            .map(|(inner, _)| inner)
            .unwrap_or_else(|| panic!("no address in {text:?}"));
        let n: Vec<u8> = inner.split(',').map(|x| x.parse().unwrap()).collect();
        let ip = IpAddr::from([n[0], n[1], n[2], n[3]]);
        SocketAddr::new(ip, u16::from(n[4]) << 8 | u16::from(n[5]))
    }

    /// A listing command over a passive data connection (150, the data, 226); the lines of
    /// the data, each of which ended with CRLF and holds neither CR nor LF.
    pub fn listing(&mut self, cmd: &str) -> Vec<String> {
        let addr = self.pasv();
        let mut data = connect_data(addr);
        self.cmd(cmd).assert_code(150);
        let mut bytes = Vec::new();
        data.read_to_end(&mut bytes).expect("read the listing");
        self.reply().assert_code(226);
        split_crlf_lines(&bytes, cmd)
    }
}

/// A TCP connection to `addr` from the local address `source` (e.g. 127.0.0.2, another
/// loopback address), with the harness's read timeout.
pub fn connect_from(source: IpAddr, addr: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )
    .expect("a socket");
    socket
        .bind(&SocketAddr::new(source, 0).into())
        .expect("bind the source address");
    socket
        .connect_timeout(&addr.into(), READ_TIMEOUT)
        .unwrap_or_else(|e| panic!("connect from {source} to {addr}: {e}"));
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    stream
}

pub fn connect_data(addr: SocketAddr) -> TcpStream {
    let data = TcpStream::connect_timeout(&addr, READ_TIMEOUT).expect("open the data connection");
    data.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    data
}

/// The CRLF-terminated lines of `bytes`, asserting there is no other CR or LF.
pub fn split_crlf_lines(bytes: &[u8], what: &str) -> Vec<String> {
    let text = String::from_utf8(bytes.to_vec()).expect("a UTF-8 listing");
    if text.is_empty() {
        return Vec::new();
    }
    let body = text
        .strip_suffix("\r\n")
        .unwrap_or_else(|| panic!("{what}: listing does not end with CRLF: {text:?}"));
    let lines: Vec<String> = body.split("\r\n").map(str::to_owned).collect();
    for line in &lines {
        assert!(
            !line.contains(['\r', '\n']),
            "{what}: bare CR or LF in {line:?} of {text:?}"
        );
    }
    lines
}
