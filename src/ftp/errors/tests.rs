use super::*;

/// One row per kind: the reply code and the text after the path.
#[test]
fn every_kind_has_the_documented_reply_and_text() {
    let table = [
        (Q::NotFound, "550", "no such file or directory"),
        (Q::Exists, "550", "file exists"),
        (Q::Denied, "550", "permission denied"),
        (Q::NotEmpty, "550", "directory not empty"),
        (Q::NotADirectory, "550", "not a directory"),
        (Q::NotAFile, "550", "not a regular file"),
        (Q::InvalidName, "553", "file name not allowed"),
        (Q::NoSpace, "452", "no space left"),
        (
            Q::BadCredentials,
            "451",
            "the cluster refused the session's login",
        ),
        (
            Q::Unauthorized,
            "451",
            "the cluster refused the session's login",
        ),
        (
            Q::Unavailable,
            "451",
            "the Qumulo cluster cannot be reached; try again later",
        ),
        (Q::Other, "451", "the cluster failed"),
    ];
    for (kind, code, text) in table {
        let (ftp, said) = reply(kind);
        assert!(ftp.to_string().starts_with(code), "{kind:?}");
        assert_eq!(said, text, "{kind:?}");
    }
}

#[test]
fn every_abort_has_the_documented_reply_and_text() {
    let table = [
        (
            Abort::ControlClosed,
            "426",
            "connection closed; transfer aborted",
        ),
        (
            Abort::DataFailed,
            "426",
            "data connection failed; transfer aborted",
        ),
        (
            Abort::DataStalled { secs: 120 },
            "426",
            "no data moved for 120 s; transfer aborted",
        ),
    ];
    for (why, code, text) in table {
        assert!(abort_kind(why).to_string().starts_with(code), "{why:?}");
        let e = aborted(Path::new("/up/f.bin"), why);
        assert_eq!(e.kind(), abort_kind(why));
        let source = std::error::Error::source(&e).unwrap().to_string();
        assert_eq!(source, format!("/up/f.bin: {text}"));
    }
}

/// The texts that are built from values, as clients (and their scripts) read them.
#[test]
fn built_texts_read_as_documented() {
    use chrono::{TimeZone, Utc};
    assert_eq!(
        refusal::restart_past_end(10, 4),
        "the restart offset 10 is past the end of the file (4 bytes)"
    );
    assert_eq!(
        refusal::data_failed("reset"),
        "data connection failed; transfer aborted (reset)"
    );
    assert_eq!(
        refusal::listing_failed_midway("/d", "the cluster failed"),
        "/d: listing failed midway: the cluster failed"
    );
    assert_eq!(site::not_an_octal_mode("99"), "\"99\" is not an octal mode");
    assert_eq!(site::chmod_done(0o644, "f"), "SITE CHMOD 0644 f: done");
    assert_eq!(
        site::not_a_valid_time("2024"),
        "\"2024\" is not a valid time (YYYYMMDDhhmm[ss], UTC)"
    );
    let t = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap();
    assert_eq!(
        site::utime_done("f", t),
        "SITE UTIME f: modification time set to 2024-01-02 03:04:05 UTC"
    );
    assert_eq!(
        site::UTIME_USAGE,
        "Usage: SITE UTIME YYYYMMDDhhmm[ss] <path>, SITE UTIME <path> YYYYMMDDhhmm[ss] or \
         SITE UTIME ATIME MTIME CTIME <path> UTC"
    );
}

fn api(status: u16, class: &str, description: &str) -> Error {
    Error::Api {
        status,
        class: class.into(),
        description: description.into(),
        login: false,
    }
}

fn text(e: &FtpError) -> String {
    std::error::Error::source(e).unwrap().to_string()
}

#[test]
fn text_names_the_ftp_path_once_and_never_the_cluster_description() {
    // The simulator's description: the cluster path and the OS error.
    let err = api(
        404,
        "fs_no_such_entry_error",
        "/home/alice/docs/x.txt: No such file or directory (os error 2)",
    );
    let e = cluster(Path::new("/docs/x.txt"), &err);
    assert_eq!(e.kind(), Ftp::PermanentFileNotAvailable);
    assert_eq!(text(&e), "/docs/x.txt: no such file or directory");
    let err = api(403, "fs_access_denied_error", "alice may not access /x");
    let e = cluster(Path::new("/x"), &err);
    assert_eq!(e.kind(), Ftp::PermissionDenied);
    assert_eq!(text(&e), "/x: permission denied");
}

/// An upload whose data could not be read: the cause's text (which names the request's URL,
/// hence the cluster path) stays out of the reply.
#[tokio::test]
async fn an_aborted_upload_names_no_cluster_path() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port(); // closed again: nothing listens there
    let url = format!("http://127.0.0.1:{port}/v1/files/%2Fhome%2Falice%2Fx/data");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder().tls_certs_only(Vec::new());
    let cause = client.build().unwrap().put(&url).send().await.unwrap_err();
    assert!(cause.to_string().contains("home"), "{cause}");
    let e = cluster(Path::new("/x"), &Error::Aborted(cause));
    assert_eq!(text(&e), "/x: the data to upload could not be read");
}

#[test]
fn the_path_is_shown_resolved() {
    let e = failure(Ftp::PermissionDenied, Path::new("/a/./b/../c//d"), "no");
    assert_eq!(text(&e), "/a/c/d: no");
}

#[test]
fn an_unexpected_failure_names_the_class_not_the_description() {
    let err = api(
        418,
        "fs_teapot_error",
        "/real/cluster/path: short and stout",
    );
    let e = cluster(Path::new("/x"), &err);
    assert_eq!(e.kind(), Ftp::LocalError);
    assert_eq!(
        text(&e),
        "/x: the cluster failed (fs_teapot_error, HTTP 418)"
    );
}
