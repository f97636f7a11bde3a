//! The production Qumulo client against the in-process simulator: every call, paging, name
//! encoding, streamed data, token expiry and re-login, TLS trust (CA file, pinned fingerprint),
//! error classification, injected faults, retries, several nodes and resumed downloads. Each
//! test starts its own simulator on port 0 over a fresh data directory; a test that needs
//! several nodes or connections cut midway puts TCP relays on port 0 in front of it (TLS passes
//! through them untouched, and a token is valid through every relay, as on a cluster's nodes).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use qftpd::qumulo::{AttrPatch, Client, ClientConfig, Error, ErrorKind, FileType, Session};
use qftpd::sim::faults::FaultSettings;
use qftpd::sim::{self, SimConfig, SimHandle, UserSpec};
use tempfile::TempDir;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::Instrument;
use url::Url;

/// A running simulator with the users `admin` (administrator), `alice` and `bob`, whose
/// passwords are `<name>-pw`, and its certificate written to a PEM file.
struct Cluster {
    sim: SimHandle,
    data: TempDir,
    ca_file: PathBuf,
    _ca_dir: TempDir,
}

fn user(name: &str, admin: bool, home: Option<&str>) -> UserSpec {
    UserSpec {
        name: name.into(),
        password: format!("{name}-pw"),
        admin,
        home: home.map(String::from),
    }
}

impl Cluster {
    async fn start() -> Cluster {
        install_log();
        let data = tempfile::tempdir().unwrap();
        let sim = sim::start(SimConfig::loopback(
            data.path(),
            vec![
                user("admin", true, None),
                user("alice", false, Some("/home/alice")),
                user("bob", false, None),
            ],
        ))
        .await
        .unwrap();
        let ca_dir = tempfile::tempdir().unwrap();
        let ca_file = ca_dir.path().join("cluster.pem");
        std::fs::write(&ca_file, sim.cert_pem().unwrap()).unwrap();
        Cluster {
            sim,
            data,
            ca_file,
            _ca_dir: ca_dir,
        }
    }

    /// A configuration trusting the simulator's certificate, with short timeouts.
    fn config(&self) -> ClientConfig {
        ClientConfig {
            urls: vec![Url::parse(self.sim.url()).unwrap()],
            pin_sha256: None,
            ca_file: Some(self.ca_file.clone()),
            accept_invalid_certs: false,
            connect_timeout: Duration::from_secs(3),
            read_timeout: Duration::from_secs(5),
            retries: 3,
        }
    }

    fn client(&self) -> Client {
        Client::new(&self.config()).unwrap()
    }

    async fn login(&self, name: &str) -> Session {
        self.client()
            .login(name, &format!("{name}-pw"))
            .await
            .unwrap()
    }

    /// Ends every live token through the control endpoint; returns how many there were.
    async fn expire_tokens(&self) -> u64 {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let cert = reqwest::Certificate::from_pem(self.sim.cert_pem().unwrap().as_bytes()).unwrap();
        let http = reqwest::Client::builder()
            .tls_certs_only([cert])
            .build()
            .unwrap();
        let answer: serde_json::Value = http
            .post(format!("{}/sim/expire-tokens", self.sim.url()))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["expired"].as_u64().unwrap()
    }

    fn faults(&self, settings: FaultSettings) {
        self.sim.faults().set(settings).unwrap();
    }
}

/// Deterministic pseudo-random bytes (xorshift), so corruption or misplacement shows.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

async fn read_all(mut r: impl AsyncRead + Unpin) -> Vec<u8> {
    let mut out = Vec::new();
    r.read_to_end(&mut out).await.unwrap();
    out
}

async fn read_file(s: &Session, path: &str, offset: u64) -> Vec<u8> {
    read_all(s.read(path, offset).await.unwrap()).await
}

async fn put(s: &Session, path: &str, data: &[u8]) -> u64 {
    s.write(path, None, std::io::Cursor::new(data.to_vec()))
        .await
        .unwrap()
}

fn names(entries: &[qftpd::qumulo::FileAttr]) -> Vec<String> {
    entries.iter().map(|e| e.name.clone()).collect()
}

fn api_status(e: &Error) -> Option<(u16, &str)> {
    match e {
        Error::Api { status, class, .. } => Some((*status, class.as_str())),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn login_succeeds_and_bad_credentials_are_refused() {
    let c = Cluster::start().await;
    let client = c.client();
    let alice = client.login("alice", "alice-pw").await.unwrap();
    assert_eq!(alice.username(), "alice");
    let debug = format!("{alice:?}");
    // Tokens look like `1:<hex>`; neither it nor the password may show.
    assert!(debug.contains("alice") && !debug.contains("alice-pw") && !debug.contains("\"1:"));

    for (name, password) in [("alice", "wrong"), ("nobody", "alice-pw")] {
        let e = client.login(name, password).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadCredentials, "{e}");
        assert!(
            matches!(
                e,
                Error::Api {
                    status: 401,
                    login: true,
                    ..
                }
            ),
            "{e:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn version_who_am_i_and_cluster_settings() {
    let c = Cluster::start().await;
    let client = c.client();
    assert_eq!(client.url().as_str(), format!("{}/", c.sim.url()));
    assert_eq!(client.urls(), [client.url().clone()]);
    assert_eq!(
        client.version().await.unwrap().revision_id,
        "Qumulo Core 7.10.2"
    );

    let alice = c.login("alice").await;
    assert_eq!(
        alice.version().await.unwrap().revision_id,
        "Qumulo Core 7.10.2"
    );
    let me = alice.who_am_i().await.unwrap();
    assert_eq!(
        (me.id, me.name.as_str(), me.home_directory.as_deref()),
        (501, "alice", Some("/home/alice"))
    );
    let e = alice.cluster_settings().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Denied);
    assert_eq!(api_status(&e), Some((403, "http_forbidden_error")));

    let admin = c.login("admin").await;
    assert_eq!(admin.who_am_i().await.unwrap().id, 500);
    assert_eq!(
        admin.cluster_settings().await.unwrap().cluster_name,
        "test-cluster"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn create_list_attributes_rename_and_delete() {
    let c = Cluster::start().await;
    let s = c.login("alice").await;
    let dir = s.create_dir("/", "work").await.unwrap();
    assert_eq!(
        (
            dir.path.as_str(),
            dir.name.as_str(),
            dir.file_type,
            dir.mode
        ),
        ("/work/", "work", FileType::Directory, 0o755)
    );
    let a = s.create_file("/work", "a.txt").await.unwrap();
    let got = s.get_attr("/work/a.txt").await.unwrap();
    assert_eq!(got, a);
    assert_eq!(
        (
            got.path.as_str(),
            got.file_type,
            got.mode,
            got.size,
            got.num_links
        ),
        ("/work/a.txt", FileType::File, 0o644, 0, 1)
    );
    assert_eq!((got.owner, got.group), (501, 513));
    assert_eq!(
        (
            got.owner_details.id_type.as_str(),
            got.owner_details.id_value.as_str()
        ),
        ("LOCAL_USER", "alice")
    );
    assert!(!got.is_dir() && s.get_attr("/work/").await.unwrap().is_dir());
    assert_eq!(s.get_attr("/work").await.unwrap().id, dir.id);

    s.create_file("/work", "b.txt").await.unwrap();
    assert_eq!(
        names(&s.list_all("/work", 1000).await.unwrap()),
        ["a.txt", "b.txt"]
    );

    let moved = s
        .rename("/work/a.txt", "/work", "c.txt", false)
        .await
        .unwrap();
    assert_eq!((moved.path.as_str(), moved.id), ("/work/c.txt", a.id));
    let e = s
        .rename("/work/c.txt", "/work", "b.txt", false)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Exists);
    assert_eq!(api_status(&e), Some((409, "fs_entry_exists_error")));
    let clobbered = s
        .rename("/work/c.txt", "/work", "b.txt", true)
        .await
        .unwrap();
    assert_eq!(
        (clobbered.path.as_str(), clobbered.id),
        ("/work/b.txt", a.id)
    );
    assert_eq!(names(&s.list_all("/work", 1000).await.unwrap()), ["b.txt"]);

    s.create_dir("/", "other").await.unwrap();
    let across = s
        .rename("/work/b.txt", "/other", "b2.txt", false)
        .await
        .unwrap();
    assert_eq!(across.path, "/other/b2.txt");
    assert!(s.list_all("/work", 1000).await.unwrap().is_empty());

    s.delete("/other/b2.txt").await.unwrap();
    let e = s.get_attr("/other/b2.txt").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    s.delete("/work").await.unwrap();
    assert_eq!(
        names(&s.list_all("/", 1000).await.unwrap()),
        ["home", "other"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn list_all_follows_paging_over_2500_entries() {
    let c = Cluster::start().await;
    let s = c.login("alice").await;
    s.create_dir("/", "big").await.unwrap();
    let mut expected: Vec<String> = (0..2500).map(|i| format!("entry-{i:05}")).collect();
    for name in &expected {
        std::fs::File::create(c.data.path().join("big").join(name)).unwrap();
    }
    expected.sort();

    let first = s.list_page("/big", None, 1000).await.unwrap();
    assert_eq!(first.files.len(), 1000);
    let next = first.next.clone().unwrap();
    assert!(
        next.starts_with("/v1/files/") && next.contains("limit=1000"),
        "{next}"
    );
    let second = s.list_page("/big", Some(&next), 1000).await.unwrap();
    assert_eq!(second.files[0].name, expected[1000]);

    for page_size in [1000, 7] {
        let all = names(&s.list_all("/big", page_size).await.unwrap());
        assert_eq!(all, expected, "page size {page_size}");
    }
}

const ODD_NAMES: [&str; 8] = [
    "a b.txt",
    "100%.txt",
    "%41.txt",
    "x#y",
    "q?r=1",
    "a&b",
    "café é",
    "中文 名",
];

#[tokio::test(flavor = "multi_thread")]
async fn odd_names_round_trip() {
    let c = Cluster::start().await;
    let s = c.login("alice").await;
    let dir_name = "dir %2F #?&é中";
    let dir = s.create_dir("/", dir_name).await.unwrap();
    let dir_path = format!("/{dir_name}");
    assert_eq!(dir.path, format!("{dir_path}/"));
    assert_eq!(s.get_attr(&dir_path).await.unwrap().name, dir_name);

    for (i, name) in ODD_NAMES.iter().enumerate() {
        let created = s.create_file(&dir_path, name).await.unwrap();
        let path = format!("{dir_path}/{name}");
        assert_eq!(
            (created.name.as_str(), created.path.as_str()),
            (*name, path.as_str())
        );
        let content = format!("{i}: {name}");
        assert_eq!(
            put(&s, &path, content.as_bytes()).await,
            content.len() as u64
        );
        let attr = s.get_attr(&path).await.unwrap();
        assert_eq!(
            (attr.name.as_str(), attr.size),
            (*name, content.len() as u64)
        );
        assert_eq!(read_file(&s, &path, 0).await, content.as_bytes());
        assert_eq!(read_file(&s, &path, 3).await, &content.as_bytes()[3..]);
    }
    let mut expected: Vec<String> = ODD_NAMES.iter().map(|n| n.to_string()).collect();
    expected.sort();
    for page_size in [1000, 1, 3] {
        let mut listed = names(&s.list_all(&dir_path, page_size).await.unwrap());
        listed.sort();
        assert_eq!(listed, expected, "page size {page_size}");
    }
    let renamed = s
        .rename(&format!("{dir_path}/a&b"), &dir_path, "b&a #2", false)
        .await
        .unwrap();
    assert_eq!(renamed.path, format!("{dir_path}/b&a #2"));
}

#[tokio::test(flavor = "multi_thread")]
async fn large_streamed_write_and_reads_at_offsets() {
    const SIZE: usize = 64 * 1024 * 1024;
    let c = Cluster::start().await;
    let s = c.login("alice").await;
    s.create_file("/", "big.bin").await.unwrap();
    let data = pattern(SIZE, 42);
    let sent = s
        .write("/big.bin", None, std::io::Cursor::new(data.clone()))
        .await
        .unwrap();
    assert_eq!(sent, SIZE as u64);
    assert_eq!(s.get_attr("/big.bin").await.unwrap().size, SIZE as u64);

    let whole = read_file(&s, "/big.bin", 0).await;
    assert!(whole == data, "content differs");
    for offset in [1, 40_000_123, SIZE - 1] {
        let tail = read_file(&s, "/big.bin", offset as u64).await;
        assert!(tail == data[offset..], "content from {offset} differs");
    }
    for offset in [SIZE as u64, SIZE as u64 + 1000] {
        assert!(read_file(&s, "/big.bin", offset).await.is_empty());
    }

    // PUT replaces the whole content.
    assert_eq!(put(&s, "/big.bin", b"short").await, 5);
    assert_eq!(read_file(&s, "/big.bin", 0).await, b"short");
}

#[tokio::test(flavor = "multi_thread")]
async fn patch_writes_at_offsets_and_zero_extends_past_the_end() {
    let c = Cluster::start().await;
    let s = c.login("alice").await;
    s.create_file("/", "f").await.unwrap();
    put(&s, "/f", b"hello").await;
    let sent = s
        .write("/f", Some(8), std::io::Cursor::new(b"xyz".to_vec()))
        .await
        .unwrap();
    assert_eq!(sent, 3);
    assert_eq!(read_file(&s, "/f", 0).await, b"hello\0\0\0xyz");
    s.write("/f", Some(1), std::io::Cursor::new(b"EL".to_vec()))
        .await
        .unwrap();
    assert_eq!(read_file(&s, "/f", 0).await, b"hELlo\0\0\0xyz");
    assert_eq!(s.get_attr("/f").await.unwrap().size, 11);
    let empty = s
        .write("/f", Some(11), std::io::Cursor::new(Vec::new()))
        .await
        .unwrap();
    assert_eq!(empty, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn set_attr_changes_mode_size_and_nanosecond_mtime() {
    let c = Cluster::start().await;
    let s = c.login("alice").await;
    s.create_file("/", "f").await.unwrap();
    put(&s, "/f", b"0123456789").await;
    let mtime: DateTime<Utc> = "2021-03-04T05:06:07.123456789Z".parse().unwrap();
    let before = s.get_attr("/f").await.unwrap();

    let after = s
        .set_attr(
            "/f",
            &AttrPatch {
                mode: Some(0o750),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((after.mode, after.size), (0o750, 10));
    assert_eq!(after.modification_time, before.modification_time);

    let after = s
        .set_attr(
            "/f",
            &AttrPatch {
                size: Some(4),
                modification_time: Some(mtime),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((after.mode, after.size), (0o750, 4));
    assert_eq!(after.modification_time, mtime);
    assert_eq!(s.get_attr("/f").await.unwrap().modification_time, mtime);
    assert_eq!(read_file(&s, "/f", 0).await, b"0123");

    let grown = s
        .set_attr(
            "/f",
            &AttrPatch {
                size: Some(6),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(grown.size, 6);
    assert_eq!(read_file(&s, "/f", 0).await, b"0123\0\0");
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_tokens_are_renewed_transparently() {
    let c = Cluster::start().await;
    let s = c.login("alice").await;
    s.create_file("/", "f").await.unwrap();
    put(&s, "/f", b"data").await;

    for round in 0..3 {
        assert_eq!(c.expire_tokens().await, 1, "round {round}");
        assert_eq!(s.get_attr("/f").await.unwrap().size, 4);
    }
    assert_eq!(c.expire_tokens().await, 1);
    assert_eq!(read_file(&s, "/f", 0).await, b"data");
    assert_eq!(c.expire_tokens().await, 1);
    assert_eq!(names(&s.list_all("/", 1).await.unwrap()), ["f", "home"]);
    assert_eq!(c.expire_tokens().await, 1);
    s.create_dir("/", "d").await.unwrap();

    // A streamed write cannot be repeated: the 401 is returned, and the token renewed for
    // the calls that follow.
    assert_eq!(c.expire_tokens().await, 1);
    let e = s
        .write("/f", None, std::io::Cursor::new(b"new".to_vec()))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized);
    assert_eq!(put(&s, "/f", b"new").await, 3);
    assert_eq!(read_file(&s, "/f", 0).await, b"new");
    assert_eq!(c.expire_tokens().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_calls_after_expiry_log_in_once() {
    let c = Cluster::start().await;
    let s = Arc::new(c.login("alice").await);
    s.create_file("/", "f").await.unwrap();
    assert_eq!(c.expire_tokens().await, 1);

    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                if i % 2 == 0 {
                    s.get_attr("/f").await.map(|a| a.name)
                } else {
                    s.who_am_i().await.map(|u| u.name)
                }
            })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        let name = task.await.unwrap().unwrap();
        assert_eq!(name, if i % 2 == 0 { "f" } else { "alice" });
    }
    // Exactly one new token was handed out for the twenty refused calls.
    assert_eq!(c.expire_tokens().await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_trusts_the_ca_file_or_nothing_unless_told_to_accept_any() {
    let c = Cluster::start().await;
    let strict = ClientConfig {
        ca_file: None,
        ..c.config()
    };
    let e = Client::new(&strict).unwrap().version().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(matches!(e, Error::Transport(_)), "{e:?}");

    let trusted = Client::new(&c.config()).unwrap();
    assert_eq!(
        trusted.version().await.unwrap().revision_id,
        "Qumulo Core 7.10.2"
    );

    let any = Client::new(&ClientConfig {
        accept_invalid_certs: true,
        ..strict
    })
    .unwrap();
    assert_eq!(
        any.version().await.unwrap().revision_id,
        "Qumulo Core 7.10.2"
    );
    any.login("bob", "bob-pw").await.unwrap();
}

#[tokio::test]
async fn unusable_ca_files_are_configuration_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\nnot base64!\n").unwrap();
    let missing = dir.path().join("missing.pem");
    for path in [empty, garbage, missing] {
        let e = Client::new(&ClientConfig {
            urls: vec![Url::parse("https://127.0.0.1:1").unwrap()],
            pin_sha256: None,
            ca_file: Some(path.clone()),
            accept_invalid_certs: false,
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            retries: 3,
        })
        .unwrap_err();
        assert!(
            matches!(&e, Error::Config(m) if m.contains(&*path.to_string_lossy())),
            "{e:?}"
        );
        assert_eq!(e.kind(), ErrorKind::Other);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cluster_errors_are_classified() {
    let c = Cluster::start().await;
    let alice = c.login("alice").await;
    let bob = c.login("bob").await;

    let e = alice.get_attr("/no/such/file").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(api_status(&e), Some((404, "fs_no_such_entry_error")));
    assert_eq!(
        alice.read("/missing", 0).await.err().map(|e| e.kind()),
        Some(ErrorKind::NotFound)
    );
    assert_eq!(
        alice.delete("/missing").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );

    alice.create_dir("/", "d").await.unwrap();
    assert_eq!(
        alice.create_dir("/", "d").await.unwrap_err().kind(),
        ErrorKind::Exists
    );
    alice.create_file("/d", "f").await.unwrap();
    assert_eq!(
        alice.create_file("/d", "f").await.unwrap_err().kind(),
        ErrorKind::Exists
    );
    let e = alice.delete("/d").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotEmpty);
    assert_eq!(api_status(&e), Some((409, "fs_directory_not_empty_error")));
    assert_eq!(
        alice.create_file("/d/f", "x").await.unwrap_err().kind(),
        ErrorKind::NotADirectory
    );
    assert_eq!(
        alice.read("/d", 0).await.err().map(|e| e.kind()),
        Some(ErrorKind::NotAFile)
    );

    alice.create_file("/", "secret").await.unwrap();
    put(&alice, "/secret", b"alice's").await;
    let patch = AttrPatch {
        mode: Some(0o600),
        ..Default::default()
    };
    alice.set_attr("/secret", &patch).await.unwrap();
    let e = bob
        .write("/secret", None, std::io::Cursor::new(b"bob's".to_vec()))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Denied);
    assert_eq!(api_status(&e), Some((403, "fs_access_denied_error")));
    assert_eq!(
        bob.read("/secret", 0).await.err().map(|e| e.kind()),
        Some(ErrorKind::Denied)
    );
    assert_eq!(
        bob.set_attr("/secret", &patch).await.unwrap_err().kind(),
        ErrorKind::Denied
    );
    assert_eq!(read_file(&alice, "/secret", 0).await, b"alice's");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_2xx_answer_that_is_not_json_is_a_decode_error() {
    let c = Cluster::start().await;
    let s = c.login("alice").await;
    s.create_file("/", "f").await.unwrap();
    put(&s, "/f", b"not json").await;
    let e = s
        .list_page("/", Some("/v1/files/%2Ff/data"), 10)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Decode(m) if m.contains("not json")),
        "{e:?}"
    );
    assert_eq!(e.kind(), ErrorKind::Other);
    let e = s
        .list_page("/", Some("@evil.example/v1/version"), 10)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Decode(_)), "{e:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_upload_source_fails_the_write() {
    /// Gives 1 MiB of data, then fails, as an FTP data connection that breaks.
    struct Breaks(usize);
    impl AsyncRead for Breaks {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            if self.0 == 0 {
                let e = std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away");
                return std::task::Poll::Ready(Err(e));
            }
            let n = self.0.min(buf.remaining()).min(64 * 1024);
            buf.put_slice(&vec![7u8; n]);
            self.0 -= n;
            std::task::Poll::Ready(Ok(()))
        }
    }
    let c = Cluster::start().await;
    let s = c.login("alice").await;
    s.create_file("/", "f").await.unwrap();
    let result = tokio::time::timeout(
        Duration::from_secs(20),
        s.write("/f", None, Breaks(1024 * 1024)),
    )
    .await
    .expect("the write ends");
    let e = result.unwrap_err();
    assert!(matches!(e, Error::Aborted(_)), "{e:?}");
    assert_eq!(
        e.kind(),
        ErrorKind::Other,
        "not reported as a cluster failure"
    );
    // The session is still usable, on the same file too.
    assert_eq!(put(&s, "/f", b"ok").await, 2);
    assert_eq!(read_file(&s, "/f", 0).await, b"ok");
    assert!(s.get_attr("/f").await.unwrap().size <= 1024 * 1024);
}

#[tokio::test(flavor = "multi_thread")]
async fn injected_5xx_answers_are_unavailable() {
    let c = Cluster::start().await;
    let s = c.login("alice").await;
    c.faults(FaultSettings {
        error_rate: 1.0,
        ..Default::default()
    });
    let e = s.get_attr("/").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert_eq!(
        api_status(&e),
        Some((503, "http_service_unavailable_error"))
    );
    let e = c.client().login("bob", "bob-pw").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    c.faults(FaultSettings::default());
    assert_eq!(s.get_attr("/").await.unwrap().path, "/");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_outage_is_unavailable_quickly_and_recovers() {
    let c = Cluster::start().await;
    let s = c.login("alice").await;
    assert!(s.get_attr("/").await.is_ok());
    c.faults(FaultSettings {
        outage: true,
        ..Default::default()
    });
    let started = Instant::now();
    let e = tokio::time::timeout(Duration::from_secs(20), s.get_attr("/"))
        .await
        .expect("no hang")
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(matches!(e, Error::Transport(_)), "{e:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let e = s.read("/", 0).await.err().unwrap();
    assert_eq!(e.kind(), ErrorKind::Unavailable);

    c.faults(FaultSettings::default());
    assert_eq!(s.get_attr("/").await.unwrap().path, "/");
}

/// The SHA-256 fingerprint of a PEM certificate's DER, as `openssl x509 -fingerprint -sha256`
/// computes it.
fn fingerprint(pem: &str) -> [u8; 32] {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    use sha2::Digest;
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
    sha2::Sha256::digest(der.as_ref()).into()
}

/// A fingerprint as openssl prints it: `AB:CD:…`.
fn colon_hex(digest: &[u8]) -> String {
    let hex: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
    hex.join(":")
}

/// An HTTPS URL on a local port that nothing listens on (bound, then released).
fn dead_url() -> Url {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    Url::parse(&format!("https://127.0.0.1:{port}")).unwrap()
}

/// The client's log lines (debug and above) of the whole test binary, as text. One global
/// subscriber writes them all (scoped ones would race with the other tests' callsites); a test
/// that reads them runs its calls in a `capture` span of its own and picks its lines by it.
static LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// Where the global subscriber writes.
struct LogSink;

impl std::io::Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOG.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the global subscriber (once; every cluster start makes sure of it).
fn install_log() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "qftpd::qumulo=debug,qumulo_client=info",
            ))
            .with_ansi(false)
            .with_writer(|| LogSink)
            .init();
    });
}

/// One test's share of the log: the lines logged inside [`Logs::span`].
struct Logs {
    id: u64,
}

impl Logs {
    fn new() -> Logs {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        install_log();
        Logs {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
        }
    }

    fn span(&self) -> tracing::Span {
        tracing::info_span!("capture", id = self.id)
    }

    fn text(&self) -> String {
        let all = String::from_utf8_lossy(&LOG.lock().unwrap()).into_owned();
        let tag = format!("capture{{id={}}}", self.id);
        let mine: Vec<&str> = all.lines().filter(|l| l.contains(&tag)).collect();
        mine.join("\n")
    }

    /// The lines that contain every one of `needles`.
    fn lines(&self, needles: &[&str]) -> Vec<String> {
        self.text()
            .lines()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .map(String::from)
            .collect()
    }

    /// Attempts sent with `method` so far (one log line of the HTTP layer each).
    fn attempts(&self, method: &str) -> usize {
        self.lines(&["qftpd::qumulo::http:", &format!("method={method}")])
            .len()
    }
}

/// A TCP relay in front of the simulator, standing for one node of the cluster. It cuts each
/// connection (closes both sides) once it has relayed `cut_after` bytes of answers, and after
/// `die_after` cuts it dies: its port closes and every connection through it ends.
struct Relay {
    url: Url,
    cuts: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(
        ip: &str,
        upstream: SocketAddr,
        cut_after: u64,
        die_after: Option<u64>,
    ) -> Relay {
        let listener = TcpListener::bind((ip, 0)).await.unwrap();
        let url = Url::parse(&format!("https://{}", listener.local_addr().unwrap())).unwrap();
        let cuts = Arc::new(AtomicU64::new(0));
        let dead = Arc::new(tokio::sync::Notify::new());
        let (counter, death) = (cuts.clone(), dead.clone());
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let (client, _) = tokio::select! {
                    () = death.notified() => return,
                    accepted = listener.accept() => accepted.unwrap(),
                };
                let (counter, dead) = (counter.clone(), dead.clone());
                connections.spawn(async move {
                    if relay(client, upstream, cut_after).await {
                        let cuts = counter.fetch_add(1, Ordering::SeqCst) + 1;
                        if die_after.is_some_and(|n| cuts >= n) {
                            dead.notify_one();
                        }
                    }
                });
            }
        });
        Relay { url, cuts, task }
    }

    fn cuts(&self) -> u64 {
        self.cuts.load(Ordering::SeqCst)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Relays one connection; true when it was cut after `cut_after` bytes of answers.
async fn relay(mut client: TcpStream, upstream: SocketAddr, cut_after: u64) -> bool {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return false;
    };
    let (mut from_client, mut to_client) = client.split();
    let (mut from_server, mut to_server) = server.split();
    let down = async {
        let mut buf = vec![0u8; 16 * 1024];
        let mut relayed = 0u64;
        loop {
            let n = match from_server.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => n.min((cut_after - relayed) as usize),
            };
            if to_client.write_all(&buf[..n]).await.is_err() {
                return false;
            }
            relayed += n as u64;
            if relayed >= cut_after {
                return true;
            }
        }
    };
    tokio::select! {
        _ = tokio::io::copy(&mut from_client, &mut to_server) => false,
        cut = down => cut,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pinned_fingerprint_is_trusted_without_a_ca_file_or_host_name() {
    let c = Cluster::start().await;
    let pin = fingerprint(c.sim.cert_pem().unwrap());
    let pinned = ClientConfig {
        pin_sha256: Some(pin),
        ca_file: None,
        ..c.config()
    };
    let client = Client::new(&pinned).unwrap();
    assert_eq!(
        client.version().await.unwrap().revision_id,
        "Qumulo Core 7.10.2"
    );
    let s = client.login("alice", "alice-pw").await.unwrap();
    s.create_file("/", "f").await.unwrap();
    put(&s, "/f", b"pinned").await;
    assert_eq!(read_file(&s, "/f", 0).await, b"pinned");

    // 127.0.0.2 is not a name of the certificate: the CA file refuses it, the pin does not.
    let relay = Relay::start("127.0.0.2", c.sim.addr(), u64::MAX, None).await;
    let by_ca = ClientConfig {
        urls: vec![relay.url.clone()],
        ..c.config()
    };
    let e = Client::new(&by_ca).unwrap().version().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    let by_pin = ClientConfig {
        urls: vec![relay.url.clone()],
        ..pinned
    };
    let s = Client::new(&by_pin)
        .unwrap()
        .login("alice", "alice-pw")
        .await
        .unwrap();
    assert_eq!(read_file(&s, "/f", 0).await, b"pinned");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_pin_is_refused_naming_both_fingerprints() {
    let c = Cluster::start().await;
    let presented = fingerprint(c.sim.cert_pem().unwrap());
    let wrong = [0x42u8; 32];
    let logs = Logs::new();
    let started = Instant::now();
    let e = async {
        // The pin wins over accepting any certificate.
        let client = Client::new(&ClientConfig {
            pin_sha256: Some(wrong),
            ca_file: None,
            accept_invalid_certs: true,
            ..c.config()
        })
        .unwrap();
        client.version().await.unwrap_err()
    }
    .instrument(logs.span())
    .await;
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(matches!(e, Error::Transport(_)), "{e:?}");
    let text = e.to_string();
    assert!(text.contains(&colon_hex(&wrong)), "{text}");
    assert!(text.contains(&colon_hex(&presented)), "{text}");
    // No wait repairs a certificate: not retried.
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(logs.attempts("GET"), 1, "{}", logs.text());
    let down = logs.lines(&["qumulo node down"]);
    assert_eq!(down.len(), 1, "{}", logs.text());
    assert!(down[0].contains(&colon_hex(&presented)), "{}", down[0]);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_ca_file_or_pin_the_clusters_certificate_is_refused() {
    let c = Cluster::start().await;
    let e = Client::new(&ClientConfig {
        ca_file: None,
        ..c.config()
    })
    .unwrap()
    .login("alice", "alice-pw")
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(
        matches!(&e, Error::Transport(_)) && e.to_string().contains("certificate"),
        "{e}"
    );
}

/// Calls of every kind, each of which must succeed.
async fn every_call(s: &Session, round: usize) {
    let dir = format!("/d{round}");
    assert_eq!(s.who_am_i().await.unwrap().name, "alice");
    s.version().await.unwrap();
    s.create_dir("/", &dir[1..]).await.unwrap();
    for name in ["a", "b", "c"] {
        s.create_file(&dir, name).await.unwrap();
    }
    put(s, &format!("{dir}/a"), b"data").await;
    assert_eq!(read_file(s, &format!("{dir}/a"), 1).await, b"ata");
    // Page by page: each `next` URI goes to whichever node serves the next page.
    assert_eq!(names(&s.list_all(&dir, 1).await.unwrap()), ["a", "b", "c"]);
    let patch = AttrPatch {
        mode: Some(0o600),
        ..Default::default()
    };
    assert_eq!(
        s.set_attr(&format!("{dir}/a"), &patch).await.unwrap().mode,
        0o600
    );
    s.rename(&format!("{dir}/b"), &dir, "b2", false)
        .await
        .unwrap();
    s.delete(&format!("{dir}/c")).await.unwrap();
    assert_eq!(s.get_attr(&format!("{dir}/b2")).await.unwrap().name, "b2");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_node_is_skipped_and_reported_once() {
    let c = Cluster::start().await;
    let dead = dead_url();
    let live = Url::parse(c.sim.url()).unwrap();
    let logs = Logs::new();
    async {
        // No retries: moving on from a node that takes no connection is not a retry.
        let client = Client::new(&ClientConfig {
            urls: vec![dead.clone(), live.clone()],
            retries: 0,
            ..c.config()
        })
        .unwrap();
        assert_eq!(client.urls(), [dead.clone(), live.clone()]);
        // The first call goes to the dead node; a login is not repeated once it may have
        // reached a node, but here nothing was sent.
        let s = client.login("alice", "alice-pw").await.unwrap();
        every_call(&s, 1).await;
        // Once its backoff is over the dead node is tried again, and skipped again, quietly.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        every_call(&s, 2).await;
    }
    .instrument(logs.span())
    .await;
    let down = logs.lines(&["WARN", "qumulo node down"]);
    assert_eq!(down.len(), 1, "{}", logs.text());
    assert!(
        down[0].contains(dead.as_str()) && down[0].contains("refused"),
        "{}",
        down[0]
    );
    assert_eq!(logs.lines(&["qumulo node still down"]).len(), 1);
    assert!(logs.lines(&["qumulo node back up"]).is_empty());
    assert!(logs.lines(&["WARN", "qumulo request failed"]).is_empty());
    let text = logs.text();
    assert!(!text.contains("alice-pw") && !text.contains("Bearer") && !text.contains("\"1:"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_with_every_node_down_is_unavailable_quickly() {
    let c = Cluster::start().await;
    let (one, two) = (dead_url(), dead_url());
    let logs = Logs::new();
    let started = Instant::now();
    async {
        let client = Client::new(&ClientConfig {
            urls: vec![one.clone(), two.clone()],
            retries: 1,
            ..c.config()
        })
        .unwrap();
        for _ in 0..2 {
            let e = client.version().await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Unavailable);
            assert!(matches!(e, Error::Transport(_)), "{e:?}");
            let e = client.login("alice", "alice-pw").await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Unavailable);
        }
    }
    .instrument(logs.span())
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    for url in [&one, &two] {
        assert_eq!(
            logs.lines(&["WARN", "qumulo node down", url.as_str()])
                .len(),
            1,
            "{}",
            logs.text()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn idempotent_calls_retry_through_5xx_and_others_are_sent_once() {
    let c = Cluster::start().await;
    let logs = Logs::new();
    async {
        let patient = Client::new(&ClientConfig {
            retries: 20,
            ..c.config()
        })
        .unwrap();
        let s = patient.login("alice", "alice-pw").await.unwrap();
        let usual = c.login("alice").await; // retries: 3
        s.create_file("/", "f").await.unwrap();
        put(&s, "/f", b"content").await;
        c.faults(FaultSettings {
            error_rate: 0.5,
            ..Default::default()
        });
        for _ in 0..10 {
            let attr = s.get_attr("/f").await;
            let attr = attr.unwrap_or_else(|e| panic!("{e}\n{}", logs.text()));
            assert_eq!(attr.name, "f");
        }
        assert_eq!(read_file(&s, "/f", 0).await, b"content");
        let patch = AttrPatch {
            mode: Some(0o640),
            ..Default::default()
        };
        assert_eq!(s.set_attr("/f", &patch).await.unwrap().mode, 0o640);
        assert!(!logs.lines(&["status=503"]).is_empty(), "no 503 seen");

        // Every answer a 503: a GET is tried 1 + retries times, creations and deletions once.
        let s = usual;
        c.faults(FaultSettings {
            error_rate: 1.0,
            ..Default::default()
        });
        let gets = logs.attempts("GET");
        let e = s.get_attr("/f").await.unwrap_err();
        assert_eq!(
            api_status(&e),
            Some((503, "http_service_unavailable_error"))
        );
        assert_eq!(logs.attempts("GET") - gets, 4);
        let (posts, deletes) = (logs.attempts("POST"), logs.attempts("DELETE"));
        let e = s.create_file("/", "g").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert_eq!(
            s.delete("/f").await.unwrap_err().kind(),
            ErrorKind::Unavailable
        );
        assert_eq!(logs.attempts("POST") - posts, 1);
        assert_eq!(logs.attempts("DELETE") - deletes, 1);

        // Connections closed without an answer: the same rule.
        c.faults(FaultSettings {
            outage: true,
            ..Default::default()
        });
        let (gets, posts) = (logs.attempts("GET"), logs.attempts("POST"));
        assert!(matches!(s.get_attr("/f").await, Err(Error::Transport(_))));
        assert!(matches!(
            s.create_dir("/", "d").await,
            Err(Error::Transport(_))
        ));
        assert_eq!(logs.attempts("GET") - gets, 4);
        assert_eq!(logs.attempts("POST") - posts, 1);
    }
    .instrument(logs.span())
    .await;
    c.faults(FaultSettings::default());
    assert!(c.data.path().join("f").exists());
    assert!(!c.data.path().join("g").exists() && !c.data.path().join("d").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_download_cut_midway_resumes_to_the_exact_bytes() {
    const SIZE: usize = 8 * 1024 * 1024;
    let c = Cluster::start().await;
    let setup = c.login("alice").await;
    setup.create_file("/", "big.bin").await.unwrap();
    let data = pattern(SIZE, 7);
    put(&setup, "/big.bin", &data).await;

    // Every connection through the relay is cut after 1 MiB of answers.
    let relay = Relay::start("127.0.0.1", c.sim.addr(), 1 << 20, None).await;
    let through = |retries| ClientConfig {
        urls: vec![relay.url.clone()],
        retries,
        ..c.config()
    };
    let s = Client::new(&through(3))
        .unwrap()
        .login("alice", "alice-pw")
        .await
        .unwrap();
    let whole = read_file(&s, "/big.bin", 0).await;
    assert!(whole == data, "content differs ({} bytes)", whole.len());
    assert!(relay.cuts() >= 7, "{} cuts", relay.cuts());
    let tail = read_file(&s, "/big.bin", 3_000_001).await;
    assert!(
        tail == data[3_000_001..],
        "tail differs ({} bytes)",
        tail.len()
    );

    // Without retries a cut is a read error, never a short file.
    let strict = Client::new(&through(0))
        .unwrap()
        .login("alice", "alice-pw")
        .await
        .unwrap();
    let mut reader = strict.read("/big.bin", 0).await.unwrap();
    let mut got = Vec::new();
    assert!(reader.read_to_end(&mut got).await.is_err());
    assert!(got.len() < SIZE && got[..] == data[..got.len()]);

    // The rest asked for again must come from the same version of the file (its ETag).
    let mut reader = s.read("/big.bin", 0).await.unwrap();
    let mut start = vec![0u8; 4096];
    reader.read_exact(&mut start).await.unwrap();
    assert!(start == data[..4096]);
    put(&setup, "/big.bin", &pattern(SIZE, 8)).await;
    let e = reader.read_to_end(&mut got).await.unwrap_err();
    assert!(e.to_string().contains("changed"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_download_continues_on_another_node_when_its_node_dies() {
    const SIZE: usize = 8 * 1024 * 1024;
    let c = Cluster::start().await;
    let setup = c.login("alice").await;
    setup.create_file("/", "big.bin").await.unwrap();
    let data = pattern(SIZE, 11);
    put(&setup, "/big.bin", &data).await;

    let healthy = Relay::start("127.0.0.1", c.sim.addr(), u64::MAX, None).await;
    // Dies after 2 MiB of answers.
    let dying = Relay::start("127.0.0.1", c.sim.addr(), 2 << 20, Some(1)).await;
    let logs = Logs::new();
    async {
        let client = Client::new(&ClientConfig {
            urls: vec![healthy.url.clone(), dying.url.clone()],
            ..c.config()
        })
        .unwrap();
        // Round-robin: the login goes to the healthy node, the download to the dying one.
        let s = client.login("alice", "alice-pw").await.unwrap();
        let whole = read_file(&s, "/big.bin", 0).await;
        assert!(whole == data, "content differs ({} bytes)", whole.len());
        for _ in 0..4 {
            assert_eq!(s.get_attr("/big.bin").await.unwrap().size, SIZE as u64);
        }
    }
    .instrument(logs.span())
    .await;
    assert_eq!(dying.cuts(), 1);
    assert_eq!(
        logs.lines(&["qumulo download broke off"]).len(),
        1,
        "{}",
        logs.text()
    );
    let down = logs.lines(&["WARN", "qumulo node down"]);
    assert_eq!(down.len(), 1, "{}", logs.text());
    assert!(down[0].contains(dying.url.as_str()), "{}", down[0]);
}
