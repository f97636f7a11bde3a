//! The production Qumulo client against the in-process simulator: every call, paging, name
//! encoding, streamed data, token expiry and re-login, TLS trust, error classification and
//! injected faults. Each test starts its own simulator on port 0 over a fresh data directory.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use qftpd::qumulo::{AttrPatch, Client, ClientConfig, Error, ErrorKind, FileType, Session};
use qftpd::sim::faults::FaultSettings;
use qftpd::sim::{self, SimConfig, SimHandle, Transport, UserSpec};
use tempfile::TempDir;
use tokio::io::{AsyncRead, AsyncReadExt};
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
        let data = tempfile::tempdir().unwrap();
        let sim = sim::start(SimConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: data.path().to_path_buf(),
            users: vec![
                user("admin", true, None),
                user("alice", false, Some("/home/alice")),
                user("bob", false, None),
            ],
            transport: Transport::GeneratedTls,
            token_lifetime: sim::DEFAULT_TOKEN_LIFETIME,
            faults: FaultSettings::default(),
            cluster_name: "test-cluster".into(),
        })
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
            url: Url::parse(self.sim.url()).unwrap(),
            ca_file: Some(self.ca_file.clone()),
            accept_invalid_certs: false,
            connect_timeout: Duration::from_secs(3),
            read_timeout: Duration::from_secs(5),
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
            url: Url::parse("https://127.0.0.1:1").unwrap(),
            ca_file: Some(path.clone()),
            accept_invalid_certs: false,
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
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
