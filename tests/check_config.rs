//! `qftpd check-config`, `--version` and `--help` through the real binary, on the files in
//! `tests/fixtures/config/`: exit codes (0, or 78 = sysexits `EX_CONFIG`), the effective
//! configuration printed as TOML, and errors that name the key (and the line, for the file).

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::process::{
    Process, Stream, listening_addr, qftpd_command, qftpd_path, without_qftpd_env,
};

/// `EX_CONFIG`.
const EXIT_CONFIG: i32 = 78;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(name)
}

/// `qftpd ARGS` with no `QFTPD_*` variable of the test environment, plus `env`.
fn qftpd(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = qftpd_command();
    cmd.args(args).envs(env.iter().copied());
    cmd.output().expect("run qftpd")
}

fn check_config(file: &str, env: &[(&str, &str)]) -> Output {
    let path = fixture(file);
    qftpd(
        &[
            "check-config",
            "--config",
            path.to_str().expect("UTF-8 path"),
        ],
        env,
    )
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// What check-config says on stderr about the configuration: all but what it says of the
/// machine it runs on (the passive ports the kernel may give away, see
/// `a_passive_range_the_kernel_may_give_away_is_warned_about`).
fn config_warnings(out: &Output) -> String {
    text(&out.stderr)
        .lines()
        .filter(|l| !l.starts_with("qftpd: warning: on this machine,"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Ports of `range` in this machine's ephemeral range and not reserved, read from the kernel.
fn ephemeral_exposed(range: std::ops::RangeInclusive<u16>) -> usize {
    let eph = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
    let eph: Vec<u16> = eph.split_whitespace().map(|p| p.parse().unwrap()).collect();
    let reserved = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_reserved_ports").unwrap();
    let reserved: Vec<(u16, u16)> = reserved
        .trim()
        .split(',')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('-') {
            Some((a, b)) => (a.parse().unwrap(), b.parse().unwrap()),
            None => (p.parse().unwrap(), p.parse().unwrap()),
        })
        .collect();
    range
        .filter(|p| (eph[0]..=eph[1]).contains(p))
        .filter(|p| !reserved.iter().any(|(a, b)| (a..=b).contains(&p)))
        .count()
}

/// Asserts exit 78 and that stderr contains every needle; returns stderr.
fn refused(out: &Output, needles: &[&str]) -> String {
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(EXIT_CONFIG),
        "stdout:\n{}\nstderr:\n{stderr}",
        text(&out.stdout)
    );
    assert!(out.stdout.is_empty(), "stdout:\n{}", text(&out.stdout));
    for needle in needles {
        assert!(
            stderr.contains(needle),
            "{needle:?} not in stderr:\n{stderr}"
        );
    }
    stderr
}

#[test]
fn valid_file_prints_the_effective_configuration_with_defaults() {
    let out = check_config("valid.toml", &[]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{}", text(&out.stderr));
    let parsed: toml::Table = toml::from_str(&stdout).expect("stdout is TOML");
    let ftp = parsed["ftp"].as_table().expect("[ftp]");
    // From the file.
    assert_eq!(ftp["listen"].as_str(), Some("127.0.0.1:2121"));
    assert_eq!(ftp["timezone"].as_str(), Some("Europe/Berlin"));
    assert_eq!(
        parsed["qumulo"]["url"].as_str(),
        Some("https://qumulo.example.com:8000/")
    );
    // Defaults filled in.
    assert_eq!(ftp["passive-ports"].as_str(), Some("50000-50999"));
    assert_eq!(ftp["greeting"].as_str(), Some("qftpd ready"));
    assert_eq!(ftp["chroot-users"].as_bool(), Some(false));
    assert_eq!(ftp["shutdown-grace"].as_integer(), Some(20));
    assert_eq!(
        parsed["qumulo"]["accept-invalid-certs"].as_bool(),
        Some(false)
    );
    let log = parsed["log"].as_table().expect("[log]");
    assert_eq!(log["level"].as_str(), Some("info"));
    assert_eq!(log["target"].as_str(), Some("auto"));
    assert!(
        stdout.contains("passive-ports = \"50000-50999\""),
        "{stdout}"
    );
}

/// The default passive range has a port for every connection `max-connections` allows; a
/// smaller range is accepted with a warning that names both keys.
#[test]
fn a_passive_range_smaller_than_max_connections_is_warned_about() {
    let out = check_config("valid.toml", &[]);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{}", text(&out.stderr));
    assert_eq!(config_warnings(&out), "", "stderr:\n{}", text(&out.stderr));

    let out = check_config("valid.toml", &[("QFTPD_FTP__PASSIVE_PORTS", "50000-50040")]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{stderr}");
    assert!(
        stderr.contains(
            "warning: ftp.passive-ports has 41 ports, fewer than ftp.max-connections = 500"
        ),
        "{stderr}"
    );

    let out = check_config(
        "valid.toml",
        &[
            ("QFTPD_FTP__PASSIVE_PORTS", "50000-50040"),
            ("QFTPD_FTP__MAX_CONNECTIONS", "41"),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "stderr:\n{}", text(&out.stderr));
    assert_eq!(config_warnings(&out), "", "stderr:\n{}", text(&out.stderr));
}

/// Passive ports that outgoing connections of the machine may take (in the kernel's ephemeral
/// range, not reserved) are said, with the sysctl that reserves them; a range outside it is not.
#[test]
fn a_passive_range_the_kernel_may_give_away_is_warned_about() {
    let out = check_config("valid.toml", &[("QFTPD_FTP__PASSIVE_PORTS", "50000-50999")]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{stderr}");
    let exposed = ephemeral_exposed(50000..=50999);
    let said = format!(
        "qftpd: warning: on this machine, {exposed} of the 1000 ports of ftp.passive-ports \
         (50000-50999) are in the kernel's ephemeral range"
    );
    assert_eq!(stderr.contains(&said), exposed > 0, "{stderr}");
    if exposed > 0 {
        assert!(
            stderr.contains("sysctl net.ipv4.ip_local_reserved_ports=50000-50999"),
            "{stderr}"
        );
    }
    // The top of the port space is outside the ephemeral range of a default Linux.
    let out = check_config("valid.toml", &[("QFTPD_FTP__PASSIVE_PORTS", "65000-65535")]);
    let said = text(&out.stderr).contains("warning: on this machine,");
    assert_eq!(
        said,
        ephemeral_exposed(65000..=65535) > 0,
        "{}",
        text(&out.stderr)
    );
}

/// `[metrics]` is empty by default; its address shows when set, with a warning when it is not
/// on loopback.
#[test]
fn metrics_listen_shows_and_is_warned_about_off_loopback() {
    let out = check_config("valid.toml", &[]);
    let parsed: toml::Table = toml::from_str(&text(&out.stdout)).expect("stdout is TOML");
    assert!(parsed["metrics"].as_table().expect("[metrics]").is_empty());

    let out = check_config("valid.toml", &[("QFTPD_METRICS__LISTEN", "127.0.0.1:9121")]);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{}", text(&out.stderr));
    assert_eq!(config_warnings(&out), "", "stderr:\n{}", text(&out.stderr));
    let parsed: toml::Table = toml::from_str(&text(&out.stdout)).expect("stdout is TOML");
    assert_eq!(parsed["metrics"]["listen"].as_str(), Some("127.0.0.1:9121"));

    let out = check_config("valid.toml", &[("QFTPD_METRICS__LISTEN", "[::]:9121")]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{stderr}");
    assert!(
        stderr.contains("warning: metrics.listen = [::]:9121 is not a loopback address"),
        "{stderr}"
    );

    let out = check_config("valid.toml", &[("QFTPD_METRICS__LISTEN", "localhost:9121")]);
    refused(&out, &["QFTPD_METRICS__LISTEN", "invalid socket address"]);
}

#[test]
fn environment_overrides_show_in_the_output() {
    let out = check_config(
        "valid.toml",
        &[
            ("QFTPD_FTP__GREETING", "hello"),
            ("QFTPD_FTP__PASSIVE_PORTS", "60000-60010"),
            ("QFTPD_LOG__TARGET", "journald"),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "stderr:\n{}", text(&out.stderr));
    let parsed: toml::Table = toml::from_str(&text(&out.stdout)).expect("stdout is TOML");
    assert_eq!(parsed["ftp"]["greeting"].as_str(), Some("hello"));
    assert_eq!(parsed["ftp"]["passive-ports"].as_str(), Some("60000-60010"));
    assert_eq!(parsed["log"]["target"].as_str(), Some("journald"));
    // The file still counts where the environment says nothing.
    assert_eq!(parsed["ftp"]["timezone"].as_str(), Some("Europe/Berlin"));
}

#[test]
fn unknown_key_is_named_with_its_line() {
    let out = check_config("unknown-key.toml", &[]);
    refused(
        &out,
        &["unknown-key.toml", "line 3", "ftp.lisen", "unknown field"],
    );
}

#[test]
fn bad_values_are_named() {
    let cases = [
        (
            "bad-timezone.toml",
            &["ftp.timezone", "Mars/Olympus", "line 2"][..],
        ),
        (
            "bad-passive-ports.toml",
            &["ftp.passive-ports", "100-50", "line 2"][..],
        ),
        ("bad-url.toml", &["qumulo.url", "ftp://x"][..]),
        (
            "bad-log-target.toml",
            &["log.target", "syslog", "line 5"][..],
        ),
    ];
    for (file, needles) in cases {
        refused(&check_config(file, &[]), needles);
    }
}

#[test]
fn bad_environment_value_is_named_with_its_variable() {
    let out = check_config("valid.toml", &[("QFTPD_FTP__TIMEZONE", "Mars/Olympus")]);
    refused(
        &out,
        &["ftp.timezone", "QFTPD_FTP__TIMEZONE", "Mars/Olympus"],
    );
}

#[test]
fn missing_cluster_url_is_named() {
    refused(
        &check_config("missing-url.toml", &[]),
        &["qumulo.url", "missing"],
    );
    refused(
        &check_config("no-qumulo.toml", &[]),
        &["qumulo.url", "missing"],
    );
    // The environment may supply it.
    let out = check_config(
        "no-qumulo.toml",
        &[("QFTPD_QUMULO__URL", "https://from-env.example.com:8000")],
    );
    assert_eq!(out.status.code(), Some(0), "stderr:\n{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("https://from-env.example.com:8000/"));
}

#[test]
fn missing_file_is_refused() {
    let out = check_config("does-not-exist.toml", &[]);
    refused(&out, &["does-not-exist.toml", "does not exist"]);
}

#[test]
fn version_and_help() {
    let out = qftpd(&["--version"], &[]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout).trim(),
        format!("qftpd {}", env!("CARGO_PKG_VERSION"))
    );

    let out = qftpd(&["--help"], &[]);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{}", text(&out.stderr));
    let help = text(&out.stdout);
    for subcommand in ["serve", "check-config", "demo", "sim"] {
        assert!(
            help.lines()
                .any(|l| l.trim_start().starts_with(&format!("{subcommand} "))),
            "{subcommand} not listed:\n{help}"
        );
    }
}

/// A relative file name is looked up among systemd's credentials (`LoadCredential=`), then
/// next to the configuration file.
#[test]
fn relative_files_come_from_credentials_then_the_config_directory() {
    let dir = tempfile::tempdir().unwrap();
    let creds = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cluster.pem"), "next to the config").unwrap();
    std::fs::write(creds.path().join("cluster.pem"), "a credential").unwrap();
    let config = dir.path().join("qftpd.toml");
    std::fs::write(
        &config,
        "[qumulo]\nurl = \"https://c:8000\"\nca-file = \"cluster.pem\"\n",
    )
    .unwrap();
    let args = ["check-config", "--config", config.to_str().unwrap()];

    let out = qftpd(
        &args,
        &[("CREDENTIALS_DIRECTORY", creds.path().to_str().unwrap())],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let want = format!(
        "ca-file = \"{}\"",
        creds.path().join("cluster.pem").display()
    );
    assert!(text(&out.stdout).contains(&want), "{}", text(&out.stdout));

    let out = qftpd(&args, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let want = format!("ca-file = \"{}\"", dir.path().join("cluster.pem").display());
    assert!(text(&out.stdout).contains(&want), "{}", text(&out.stdout));

    std::fs::remove_file(dir.path().join("cluster.pem")).unwrap();
    refused(
        &qftpd(&args, &[]),
        &["qumulo.ca-file", "is not a readable file"],
    );
}

/// `[qumulo] access-token` names a file (a systemd credential when relative and present); the
/// file must hold one token, alone or in a qq credentials file, and the token is never printed.
#[test]
fn access_token_file_is_checked_and_never_printed() {
    const TOKEN: &str = "access-v1:Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA";
    let dir = tempfile::tempdir().unwrap();
    let creds = tempfile::tempdir().unwrap();
    let config = dir.path().join("qftpd.toml");
    std::fs::write(
        &config,
        "[qumulo]\nurl = \"https://c:8000\"\naccess-token = \"qftpd-token\"\n",
    )
    .unwrap();
    let args = ["check-config", "--config", config.to_str().unwrap()];
    let in_creds = [("CREDENTIALS_DIRECTORY", creds.path().to_str().unwrap())];

    // Missing everywhere.
    let err = refused(
        &qftpd(&args, &in_creds),
        &["qumulo.access-token", "qftpd-token"],
    );
    assert!(err.contains("cannot be read"), "{err}");

    // A systemd credential, the bearer string alone with a newline.
    std::fs::write(creds.path().join("qftpd-token"), format!("{TOKEN}\n")).unwrap();
    let out = qftpd(&args, &in_creds);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let want = format!(
        "access-token = \"{}\"",
        creds.path().join("qftpd-token").display()
    );
    assert!(stdout.contains(&want), "{stdout}");
    assert!(!stdout.contains(TOKEN), "the token was printed:\n{stdout}");

    // The file `qq auth_create_access_token --file` writes.
    let qq_file = format!("{{\"bearer_token\": \"{TOKEN}\", \"version\": 1}}");
    std::fs::write(creds.path().join("qftpd-token"), qq_file).unwrap();
    assert!(qftpd(&args, &in_creds).status.success());

    // Empty, two words, JSON of another shape: refused without quoting the content.
    for (content, why) in [
        ("\n", "holds no token"),
        ("one two\n", "more than one token"),
        ("{\"token\": \"x\"}", "not a qq credentials file"),
    ] {
        std::fs::write(creds.path().join("qftpd-token"), content).unwrap();
        let err = refused(&qftpd(&args, &in_creds), &["qumulo.access-token", why]);
        assert!(!err.contains("one two"), "{err}");
    }
    // Not a credential and not next to the configuration file: `serve` refuses it too.
    let serve = qftpd(&["serve", "--config", config.to_str().unwrap()], &[]);
    refused(&serve, &["qumulo.access-token"]);
}

#[test]
fn contradictions_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), "x").unwrap();
    let config = dir.path().join("qftpd.toml");
    std::fs::write(
        &config,
        "[qumulo]\nurl = \"https://c:8000\"\nca-file = \"ca.pem\"\naccept-invalid-certs = true\n",
    )
    .unwrap();
    let out = qftpd(&["check-config", "--config", config.to_str().unwrap()], &[]);
    refused(&out, &["qumulo.accept-invalid-certs", "qumulo.ca-file"]);
}

#[test]
fn an_invalid_log_level_is_refused_by_serve_too() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("qftpd.toml");
    std::fs::write(
        &config,
        "[qumulo]\nurl = \"https://c:8000\"\n[log]\nlevel = \"info,=[\"\n",
    )
    .unwrap();
    let out = qftpd(&["serve", "--config", config.to_str().unwrap()], &[]);
    refused(&out, &["log.level"]);
}

/// The default configuration file of the packages documents every key, in its section: each
/// key `check-config` prints (with every optional key set) appears there as a commented-out
/// line `#key =` or an example `e.g. key =` under its `[section]` header.
#[test]
fn the_packaged_file_documents_every_key() {
    let packaged = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("packaging/qftpd.toml"),
    )
    .expect("read packaging/qftpd.toml");
    let out = qftpd(
        &["check-config", "--config", "packaging/qftpd.toml"],
        &[
            ("QFTPD_QUMULO__URL", "https://c:8000"),
            ("QFTPD_QUMULO__CA_FILE", "/etc/hostname"),
            ("QFTPD_FTP__PASSIVE_HOST", "ftp.example.com"),
            ("QFTPD_METRICS__LISTEN", "127.0.0.1:9121"),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The effective configuration, plus the keys that have no default.
    let mut effective = text(&out.stdout);
    effective.push_str(
        "[ftp.tls]\ncertificate = 1\nkey = 1\n[qumulo]\nfingerprint-sha256 = 1\naccess-token = 1\n",
    );
    let mut section = String::new();
    let mut documented = std::collections::HashSet::new();
    for line in packaged.lines() {
        let line = line.trim_start_matches('#').trim();
        if line.starts_with('[') && line.ends_with(']') {
            section = line.trim_matches(|c| c == '[' || c == ']').to_string();
        } else if let Some((key, _)) = line.trim_start_matches("e.g.").trim().split_once(" =") {
            documented.insert(format!("{section}.{}", key.trim()));
        }
    }
    let mut section = String::new();
    for line in effective
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        if line.starts_with('[') {
            section = line.trim_matches(|c| c == '[' || c == ']').to_string();
        } else if let Some((key, _)) = line.split_once(" =") {
            let key = format!("{section}.{key}");
            assert!(
                documented.contains(&key),
                "{key} is not documented in packaging/qftpd.toml"
            );
        }
    }
}

/// PROXY protocol sources without `passive-host`: valid, but PASV would name the gateway's own
/// address to clients that reach it through the balancer.
#[test]
fn proxy_protocol_without_passive_host_is_warned_about() {
    let out = check_config(
        "valid.toml",
        &[("QFTPD_FTP__PROXY_PROTOCOL_FROM", "[\"10.0.0.0/24\"]")],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{stderr}");
    assert!(
        stderr.contains("warning: ftp.proxy-protocol-from is set but ftp.passive-host is not"),
        "{stderr}"
    );
    let out = check_config(
        "valid.toml",
        &[
            ("QFTPD_FTP__PROXY_PROTOCOL_FROM", "[\"10.0.0.0/24\"]"),
            ("QFTPD_FTP__PASSIVE_HOST", "192.0.2.100"),
        ],
    );
    assert_eq!(config_warnings(&out), "", "stderr:\n{}", text(&out.stderr));
    let out = check_config(
        "valid.toml",
        &[("QFTPD_FTP__PROXY_PROTOCOL_FROM", "[\"10.0.0.1/24\"]")],
    );
    assert_eq!(out.status.code(), Some(78), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("QFTPD_FTP__PROXY_PROTOCOL_FROM"),
        "{}",
        text(&out.stderr)
    );
}

/// A plain-HTTP cluster URL is valid (a lab cluster behind a TLS proxy) but worth a warning:
/// passwords and files would cross the network in clear.
#[test]
fn a_plain_http_cluster_url_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("qftpd.toml");
    std::fs::write(&config, "[qumulo]\nurl = \"http://cluster.example:8000\"\n").unwrap();
    let out = qftpd(&["check-config", "--config", config.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("warning: qumulo.url: http://cluster.example:8000/ is plain HTTP"),
        "{stderr}"
    );
    assert!(
        stderr.contains("files cross the network to the cluster unencrypted; use https://"),
        "one sentence, without the source's indentation: {stderr}"
    );
    let https = check_config("valid.toml", &[]);
    assert!(!text(&https.stderr).contains("plain HTTP"));
}

/// `qftpd ARGS` with its open-file limit set to `soft:hard` (util-linux `prlimit`).
fn limited(nofile: &str, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(common::require_tool("prlimit", "util-linux"));
    cmd.arg(format!("--nofile={nofile}"))
        .arg(qftpd_path())
        .args(args);
    without_qftpd_env(&mut cmd).envs(env.iter().copied());
    cmd
}

/// `max-connections` against the open-file limit: `check-config` says when the limit is too
/// low for it, and `serve` raises its soft limit up to the hard one, or says what is missing.
#[test]
fn the_open_file_limit_is_checked_against_max_connections() {
    let valid = fixture("valid.toml");
    let check = ["check-config", "--config", valid.to_str().unwrap()];
    let out = limited("512:512", &check, &[]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("ftp.max-connections = 500 needs up to 2564 open files")
            && stderr.contains("may open 512")
            && stderr.contains("LimitNOFILE="),
        "{stderr}"
    );
    let few = [("QFTPD_FTP__MAX_CONNECTIONS", "50")];
    let out = limited("512:512", &check, &few).output().unwrap();
    assert!(
        !text(&out.stderr).contains("open files"),
        "{}",
        text(&out.stderr)
    );

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("qftpd.toml");
    std::fs::write(
        &config,
        "[ftp]\nlisten = \"127.0.0.1:0\"\n[qumulo]\nurl = \"https://127.0.0.1:9\"\n",
    )
    .unwrap();
    let serve = ["serve", "--config", config.to_str().unwrap()];
    let env = [("RUST_LOG", "info"), ("NO_COLOR", "1")];
    // Until its start line: what it logged, and its limits then.
    let started = |nofile: &str| -> (String, String) {
        let mut child = Process::spawn(
            &mut limited(nofile, &serve, &env),
            "qftpd serve",
            Stream::Stderr,
            listening_addr,
        );
        child.wait_ready(1, "");
        let log = child.stderr_log();
        let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.pid())).unwrap();
        drop(child);
        let open_files = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .unwrap()
            .to_string();
        (log, open_files)
    };
    let (log, open_files) = started("512:8192");
    assert!(
        log.contains("raised the open-file limit") && !log.contains("needs up to"),
        "{log}"
    );
    let fields: Vec<&str> = open_files.split_whitespace().collect();
    assert_eq!(fields[3..5], ["2564", "8192"], "{open_files}");
    let (log, _) = started("512:512");
    assert!(
        log.contains("needs up to 2564 open files, but the process may open 512"),
        "{log}"
    );
}

/// FTPS files that exist but cannot serve (no PEM certificate, no key) are refused by
/// `check-config` and `serve` alike, naming the section and the file.
#[test]
fn an_unusable_ftps_certificate_is_refused_by_check_config_and_serve() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), "not a certificate\n").unwrap();
    std::fs::write(dir.path().join("key.pem"), "not a key\n").unwrap();
    let config = dir.path().join("qftpd.toml");
    std::fs::write(
        &config,
        "[ftp]\nlisten = \"127.0.0.1:0\"\n[ftp.tls]\ncertificate = \"cert.pem\"\n\
         key = \"key.pem\"\n[qumulo]\nurl = \"https://127.0.0.1:9\"\n",
    )
    .unwrap();
    for command in ["check-config", "serve"] {
        let out = qftpd(&[command, "--config", config.to_str().unwrap()], &[]);
        refused(&out, &["ftp.tls", "cert.pem", "qftpd.toml"]);
    }
}
