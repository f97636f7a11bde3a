//! Entry points for the fuzz targets in `fuzz/` (not a stable interface).
//!
//! - Thin wrappers over the private path and listing code: the path functions themselves,
//!   and the listing lines the storage back-end streams, so that a target checks what a
//!   client receives.
//! - [`ControlProbe`]: a real control connection to a gateway in front of the simulator,
//!   for feeding arbitrary bytes to libunftp's command parser (private to libunftp).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use unftp_core::storage::Metadata;

use super::listing::stream::{LineFormat, nlst_prefix};
use super::listing::{self, Entry};
pub use super::path::PathError;
use crate::config::{Config, FtpConfig, NodeUrls, QumuloConfig};
use crate::qumulo::FileAttr;
use crate::sim::{self, SimConfig, SimHandle, Transport, UserSpec};
pub use unftp_core::storage::ListingFormat;

/// The cluster path of an FTP path under the user's `root` (see `path::to_cluster`).
pub fn to_cluster(root: &str, ftp: &Path) -> Result<String, PathError> {
    super::path::to_cluster(root, ftp)
}

/// A cluster path's directory and last name (see `path::split`).
pub fn split(path: &str) -> Option<(&str, &str)> {
    super::path::split(path)
}

/// A name as LIST, NLST and MLSD show it.
pub fn display_name(name: &str) -> String {
    super::listing::display_name(name)
}

/// One directory entry, named and rendered as the storage back-end does.
#[derive(Debug, Clone)]
pub struct Listed(Entry);

impl Listed {
    /// The entry of `attr` as the user with auth id `uid` sees it. `owner` and `group` are
    /// the names the cluster gives (an `id_value`, or the name a SID resolves to).
    pub fn new(attr: FileAttr, owner: &str, group: &str, uid: u64) -> Self {
        let perm = listing::perm_fact(&attr, uid);
        Self(Entry {
            attr,
            owner: listing::shown_name(owner),
            group: listing::shown_name(group),
            perm,
            shown: listing::Facts::ALL,
        })
    }

    /// The owner column of LIST and the `UNIX.ownername` fact.
    pub fn owner(&self) -> &str {
        &self.0.owner
    }

    /// The group column of LIST and the `UNIX.groupname` fact.
    pub fn group(&self) -> &str {
        &self.0.group
    }

    /// The `perm` fact.
    pub fn perm(&self) -> &str {
        &self.0.perm
    }

    /// The LIST line (without CRLF), as `list_vec` (STAT) sends it.
    pub fn list_line(&self, now: DateTime<Utc>, tz: Tz) -> String {
        listing::list_line(&self.0, &display_name(&self.0.attr.name), now, tz)
    }

    /// The MLST facts, through the `Metadata` implementation libunftp calls.
    pub fn facts(&self) -> Option<String> {
        self.0.mlst_facts()
    }
}

/// The data a LIST, NLST or MLSD sends for `entries`, as the storage back-end streams it
/// (`QumuloStorage::listing`): the lines, each ending in CRLF. `dir`: whether the listing is
/// of a directory (`false`: a file listed as itself, or the matches of a pattern); `argument`:
/// the path the client gave the command. Every fact is shown (no `OPTS MLST`).
pub fn listing(
    format: ListingFormat,
    entries: &[Listed],
    dir: bool,
    argument: Option<&str>,
    now: DateTime<Utc>,
    tz: Tz,
) -> String {
    let form = LineFormat {
        format,
        now,
        timezone: tz,
        facts: listing::Facts::ALL,
        prefix: nlst_prefix(format, dir, argument),
    };
    let mut out = String::new();
    for Listed(e) in entries {
        let entry = (format != ListingFormat::Nlst).then_some(e);
        form.push(&mut out, &e.attr.name, entry);
    }
    out
}

/// Name and password of the one user of the probe's simulated cluster.
pub const PROBE_USER: (&str, &str) = ("fuzz", "fuzz");

/// A gateway in front of an in-process simulator, on loopback, for sending arbitrary bytes
/// on real control connections. Passive and active data connections are the client's to
/// avoid: a transfer waits for a data connection the probe never opens.
pub struct ControlProbe {
    runtime: tokio::runtime::Runtime,
    gateway: super::Gateway,
    listener: TcpListener,
    /// Keeps the cluster running.
    _sim: SimHandle,
    data_dir: PathBuf,
}

impl std::fmt::Debug for ControlProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlProbe")
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

impl ControlProbe {
    /// Starts the simulator (over `data_dir`, emptied first and removed on drop) and the
    /// gateway, with the user [`PROBE_USER`] confined to its home, failed logins neither
    /// delayed nor banned, and active mode off.
    pub fn start(data_dir: &Path) -> Result<Self, Box<dyn std::error::Error>> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let data_dir = data_dir.to_path_buf();
        match std::fs::remove_dir_all(&data_dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => std::fs::create_dir_all(&data_dir)?,
        }
        let (sim, listener) = runtime.block_on(async {
            let users = vec![UserSpec {
                name: PROBE_USER.0.to_string(),
                password: PROBE_USER.1.to_string(),
                admin: false,
                home: Some(format!("/home/{}", PROBE_USER.0)),
            }];
            let sim = sim::start(SimConfig {
                transport: Transport::Plain,
                cluster_name: "probe".to_string(),
                ..SimConfig::loopback(data_dir.clone(), users)
            })
            .await?;
            let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
            Ok::<_, Box<dyn std::error::Error>>((sim, listener))
        })?;
        let mut ftp = FtpConfig {
            chroot_users: true,
            active_mode: false,
            ..FtpConfig::default()
        };
        ftp.failed_logins.max_per_address = 0;
        ftp.failed_logins.max_per_user = 0;
        ftp.failed_logins.delay_ms = 0;
        let config = Config {
            ftp,
            qumulo: QumuloConfig::new(NodeUrls::one(sim.url().parse()?)),
            log: Default::default(),
            metrics: Default::default(),
        };
        let gateway = super::Gateway::new(&config, Arc::default(), Arc::default())?;
        Ok(Self {
            runtime,
            gateway,
            listener,
            _sim: sim,
            data_dir,
        })
    }

    /// Opens a control connection, logs in as [`PROBE_USER`] when `login` (waiting for each
    /// reply: libunftp checks the password in the background, and commands read meanwhile
    /// are refused), sends `input` and then end-of-file, and returns all the server wrote
    /// until it closed the connection. With `lockstep`, each line of `input` is sent once the
    /// reply to the one before has come, as a client that does not pipeline commands does.
    /// `None` when a reply, or the end of the connection, did not come within `limit`. An
    /// error is a failure to connect or log in.
    pub fn exchange(
        &self,
        login: bool,
        lockstep: bool,
        input: &[u8],
        limit: Duration,
    ) -> std::io::Result<Option<Vec<u8>>> {
        self.runtime.block_on(async {
            let (client, server) = tokio::join!(
                TcpStream::connect(self.listener.local_addr()?),
                self.listener.accept()
            );
            let (client, (server, _)) = (client?, server?);
            let session = self
                .gateway
                .session_server(std::future::pending(), None)
                .map_err(std::io::Error::other)?
                .0;
            let session = tokio::spawn(session.service(server));
            let result = converse(client, login, lockstep, input, limit).await;
            session.abort();
            result
        })
    }
}

/// The client's side of [`ControlProbe::exchange`].
async fn converse(
    client: TcpStream,
    login: bool,
    lockstep: bool,
    input: &[u8],
    limit: Duration,
) -> std::io::Result<Option<Vec<u8>>> {
    let (read, mut write) = client.into_split();
    let mut read = BufReader::new(read);
    let mut replies = Vec::new();
    if login {
        let (user, pass) = PROBE_USER;
        let steps = [
            (String::new(), "220"),
            (format!("USER {user}\r\n"), "331"),
            (format!("PASS {pass}\r\n"), "230"),
        ];
        for (command, want) in steps {
            write.write_all(command.as_bytes()).await?;
            let Ok(code) = tokio::time::timeout(limit, reply(&mut read, &mut replies)).await else {
                return Ok(None);
            };
            if code? != want {
                let text = String::from_utf8_lossy(&replies);
                return Err(std::io::Error::other(format!("login: {text}")));
            }
        }
    }
    let mut rest = input;
    if lockstep {
        if !login
            && tokio::time::timeout(limit, reply(&mut read, &mut replies))
                .await
                .is_err()
        {
            return Ok(None);
        }
        while let Some(end) = rest.iter().position(|b| *b == b'\n') {
            let (line, next) = rest.split_at(end + 1);
            rest = next;
            // The server may close first (QUIT); what it wrote is read all the same.
            if write.write_all(line).await.is_err() {
                break;
            }
            match tokio::time::timeout(limit, reply(&mut read, &mut replies)).await {
                Err(_) => return Ok(None),
                Ok(Err(_)) => break,
                Ok(Ok(_)) => {}
            }
        }
    }
    let send = tokio::time::timeout(limit, async {
        let _ = write.write_all(rest).await;
        let _ = write.shutdown().await;
    });
    let receive = tokio::time::timeout(limit, read.read_to_end(&mut replies));
    let (_, received) = tokio::join!(send, receive);
    // A reset connection has ended too.
    Ok(received.is_ok().then_some(replies))
}

/// Reads one reply (every line of a multi-line one) into `out`, and returns its code.
async fn reply<R: AsyncBufRead + Unpin>(
    read: &mut R,
    out: &mut Vec<u8>,
) -> std::io::Result<String> {
    loop {
        let start = out.len();
        if read.read_until(b'\n', out).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let line = &out[start..];
        if line.len() >= 4 && line[..3].iter().all(u8::is_ascii_digit) && line[3] == b' ' {
            return Ok(String::from_utf8_lossy(&line[..3]).into_owned());
        }
    }
}

impl Drop for ControlProbe {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}
