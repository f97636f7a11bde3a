//! Loading, checking and error reports, through `Config::load` on files in a figment `Jail`.

#![allow(
    clippy::result_large_err,
    reason = "figment's Jail returns its own error type"
)]

use std::path::Path;

use figment::Jail;

use super::report::{key_at, positioned};
use super::*;

#[test]
fn file_then_environment() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "q.toml",
            r#"
            [ftp]
            listen = "127.0.0.1:2121"
            passive-ports = "50000-50010"
            timezone = "Europe/Berlin"
            [qumulo]
            url = "https://cluster:8000"
            "#,
        )?;
        jail.set_env("QFTPD_FTP__PASSIVE_PORTS", "60000-60005");
        jail.set_env("QFTPD_FTP__CHROOT_USERS", "true");
        let c = Config::load(Some(Path::new("q.toml"))).unwrap();
        assert_eq!(c.ftp.listen.port(), 2121);
        assert_eq!(c.ftp.passive_ports, 60000..=60005);
        assert!(c.ftp.chroot_users);
        assert_eq!(c.ftp.timezone, chrono_tz::Europe::Berlin);
        assert_eq!(c.ftp.greeting, "qftpd ready");
        assert_eq!(c.qumulo.url.0[0].as_str(), "https://cluster:8000/");
        Ok(())
    });
}

#[test]
fn bad_keys_and_values_are_named() {
    Jail::expect_with(|jail| {
        let cases = [
            (
                "[ftp]\nlisen = \"x\"\n[qumulo]\nurl = \"https://c\"\n",
                "unknown field",
            ),
            (
                "[ftp]\ntimezone = \"Mars/Olympus\"\n[qumulo]\nurl = \"https://c\"\n",
                "ftp.timezone",
            ),
            (
                "[ftp]\npassive-ports = \"900-100\"\n[qumulo]\nurl = \"https://c\"\n",
                "ftp.passive-ports",
            ),
            ("[ftp]\n", "qumulo.url: missing"),
            (
                "[qumulo]\naccept-invalid-certs = true\n",
                "qumulo.url: missing",
            ),
            ("[qumulo]\nurl = \"ftp://c\"\n", "qumulo.url"),
        ];
        for (text, needle) in cases {
            jail.create_file("bad.toml", text)?;
            let err = Config::load(Some(Path::new("bad.toml")))
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
        assert!(
            Config::load(Some(Path::new("missing.toml")))
                .unwrap_err()
                .to_string()
                .contains("does not exist")
        );
        Ok(())
    });
}

#[test]
fn security_keys() {
    Jail::expect_with(|jail| {
        let valid = r#"
            [ftp]
            max-connections-per-ip = 4
            failed-logins.max-per-address = 2
            [qumulo]
            url = ["https://a:8000", "https://b:8000"]
            fingerprint-sha256 = "sha256:0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20"
            "#;
        // The same with an FTPS certificate that does not exist.
        let tls = "[ftp.tls]\ncertificate = \"missing.pem\"\nkey = \"missing.key\"\n";
        jail.create_file(
            "q.toml",
            &valid.replacen("[qumulo]", &format!("{tls}[qumulo]"), 1),
        )?;
        let err = Config::load(Some(Path::new("q.toml")))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ftp.tls") && err.contains("missing.pem"),
            "{err}"
        );
        jail.create_file("q.toml", valid)?;
        let c = Config::load(Some(Path::new("q.toml"))).unwrap();
        assert_eq!(c.qumulo.url.0.len(), 2);
        assert_eq!(c.qumulo.url.to_string(), "https://a:8000/, https://b:8000/");
        let pin = c.qumulo.fingerprint_sha256.unwrap();
        assert_eq!(pin.0[0], 1);
        assert_eq!(pin.0[31], 0x20);
        assert!(pin.to_string().starts_with("01:02:03"));
        assert_eq!(Fingerprint::parse(&pin.to_string()), Ok(pin));
        assert_eq!(c.ftp.max_connections_per_ip, 4);
        assert_eq!(c.ftp.failed_logins.max_per_address, 2);
        assert_eq!(c.ftp.failed_logins.max_per_user, 10);
        assert!(c.ftp.atomic_uploads);
        let url = "[qumulo]\nurl = \"https://c\"\n";
        let pin = format!("\"{}\"", ["AA"; 32].join(":"));
        let cases = [
            (
                format!("[ftp]\ntls.required = true\n{url}"),
                "needs ftp.tls.certificate",
            ),
            (format!("[ftp]\ntls.key = \"k.pem\"\n{url}"), "go together"),
            (
                format!("[ftp]\ntls.min-version = \"1.1\"\n{url}"),
                "ftp.tls.min-version",
            ),
            (format!("[ftp]\nmax-connections = 0\n{url}"), "at least 1"),
            (
                format!("[ftp]\ndata-timeout = 0\n{url}"),
                "at least 1 second",
            ),
            (
                format!("{url}fingerprint-sha256 = \"abc\"\n"),
                "not a SHA-256 fingerprint",
            ),
            (
                format!("{url}fingerprint-sha256 = {pin}\naccept-invalid-certs = true\n"),
                "contradicts",
            ),
            ("[qumulo]\nurl = []\n".to_string(), "empty"),
        ];
        for (body, needle) in cases {
            jail.create_file("bad.toml", &body)?;
            let err = Config::load(Some(Path::new("bad.toml")))
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{body:?}: {err}");
        }
        Ok(())
    });
}

#[test]
fn login_and_tls_handshake_limits() {
    Jail::expect_with(|jail| {
        let url = "[qumulo]\nurl = \"https://c\"\n";
        jail.create_file("q.toml", url)?;
        let c = Config::load(Some(Path::new("q.toml"))).unwrap();
        assert_eq!(c.ftp.login_timeout, 60);
        assert_eq!(c.ftp.tls.handshake_timeout, 10);
        assert!(!c.ftp.tls.require_session_reuse);
        let cases = [
            (
                "login-timeout = 0",
                "ftp.login-timeout must be at least 1 second",
            ),
            (
                "tls.handshake-timeout = 0",
                "ftp.tls.handshake-timeout must be at least 1 second",
            ),
            (
                "tls.require-session-reuse = true",
                "ftp.tls.require-session-reuse = true needs ftp.tls.certificate",
            ),
            ("login-timeout = \"soon\"", "ftp.login-timeout"),
        ];
        for (line, needle) in cases {
            jail.create_file("bad.toml", &format!("[ftp]\n{line}\n{url}"))?;
            let err = Config::load(Some(Path::new("bad.toml")))
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{line:?}: {err}");
        }
        Ok(())
    });
}

#[test]
fn metrics_listen_is_off_by_default_and_checked() {
    Jail::expect_with(|jail| {
        let url = "[qumulo]\nurl = \"https://c\"\n";
        jail.create_file("q.toml", url)?;
        let c = Config::load(Some(Path::new("q.toml"))).unwrap();
        assert_eq!(c.metrics.listen, None);
        assert!(c.warnings().is_empty(), "{:?}", c.warnings());
        jail.create_file(
            "on.toml",
            &format!("[metrics]\nlisten = \"127.0.0.1:9121\"\n{url}"),
        )?;
        let c = Config::load(Some(Path::new("on.toml"))).unwrap();
        assert_eq!(c.metrics.listen, Some("127.0.0.1:9121".parse().unwrap()));
        assert!(c.warnings().is_empty(), "{:?}", c.warnings());
        jail.set_env("QFTPD_METRICS__LISTEN", "0.0.0.0:9121");
        let c = Config::load(Some(Path::new("on.toml"))).unwrap();
        let warnings = c.warnings();
        assert!(
            warnings.len() == 1
                && warnings[0].contains("metrics.listen = 0.0.0.0:9121 is not a loopback"),
            "{warnings:?}"
        );
        jail.clear_env();
        let cases = [
            ("listen = \"127.0.0.1\"", "metrics.listen"),
            (
                "listen = \"127.0.0.1:0\"",
                "metrics.listen: 127.0.0.1:0 has no port",
            ),
            ("listen = \"0.0.0.0:21\"", "is ftp.listen too"),
            ("port = 9121", "unknown field"),
        ];
        for (line, needle) in cases {
            jail.create_file("bad.toml", &format!("[metrics]\n{line}\n{url}"))?;
            let err = Config::load(Some(Path::new("bad.toml")))
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{line:?}: {err}");
        }
        Ok(())
    });
}

#[test]
fn key_at_names_the_dotted_key() {
    let text = "top = 1\n[ftp]\n# x = 1\ntimezone = \"x\"\nlist = [\n  1,\n  2,\n]\n\
                [ \"log\" ]\n'level' = 3\nsub.inner = 4\n[[extra]]\n";
    let at = |needle: &str| key_at(text, text.find(needle).unwrap());
    assert_eq!(at("1\n[ftp]").as_deref(), Some("top"));
    assert_eq!(at("\"x\"").as_deref(), Some("ftp.timezone"));
    assert_eq!(at("timezone").as_deref(), Some("ftp.timezone"));
    assert_eq!(at("2,").as_deref(), Some("ftp.list"));
    assert_eq!(at("3").as_deref(), Some("log.level"));
    assert_eq!(at("4").as_deref(), Some("log.sub.inner"));
    assert_eq!(at("extra").as_deref(), Some("extra"));
}

#[test]
fn file_errors_quote_the_line_and_name_the_key() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "q.toml",
            "[qumulo]\nurl = \"https://c\"\n[ftp]\nshutdown-grace = \"soon\"\n",
        )?;
        let err = positioned(Path::new("q.toml")).unwrap();
        assert_eq!(
            err,
            "q.toml, line 4, column 18: ftp.shutdown-grace: invalid type: string \"soon\", \
             expected u64\n    4 | shutdown-grace = \"soon\"\n      |                  ^^^^^^"
        );
        // A file that is fine on its own (the URL may come from the environment).
        jail.create_file("ok.toml", "[ftp]\n")?;
        assert_eq!(positioned(Path::new("ok.toml")), None);
        Ok(())
    });
}

#[test]
fn environment_errors_name_the_variable() {
    Jail::expect_with(|jail| {
        jail.create_file("q.toml", "[qumulo]\nurl = \"https://c\"\n")?;
        jail.set_env("QFTPD_FTP__SHUTDOWN_GRACE", "soon");
        let err = Config::load(Some(Path::new("q.toml")))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("ftp.shutdown-grace: "), "{err}");
        assert!(
            err.ends_with("(from the environment variable QFTPD_FTP__SHUTDOWN_GRACE)"),
            "{err}"
        );
        Ok(())
    });
}

/// Loading checks the shape: FTPS files must exist, but whether they hold a certificate and
/// its key is for the FTP side to find out when it builds FTPS.
#[test]
fn ftps_files_must_exist_but_are_not_read() {
    Jail::expect_with(|jail| {
        jail.create_file("cert.pem", "not a certificate")?;
        jail.create_file("key.pem", "not a key")?;
        let tls = "[ftp.tls]\ncertificate = \"cert.pem\"\nkey = \"key.pem\"\n";
        jail.create_file("q.toml", &format!("{tls}[qumulo]\nurl = \"https://c\"\n"))?;
        let c = Config::load(Some(Path::new("q.toml"))).unwrap();
        assert_eq!(
            c.ftp.tls.certificate.as_deref(),
            Some(Path::new("cert.pem"))
        );
        std::fs::remove_file("key.pem").map_err(|e| e.to_string())?;
        let err = Config::load(Some(Path::new("q.toml")))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ftp.tls.key") && err.contains("key.pem"),
            "{err}"
        );
        Ok(())
    });
}

#[test]
fn proxy_protocol_sources_are_addresses_or_networks() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "q.toml",
            r#"
            [ftp]
            proxy-protocol-from = ["10.1.0.0/16", "192.0.2.7", "2001:db8::/64", "::1"]
            passive-host = "192.0.2.100"
            [qumulo]
            url = "https://cluster:8000"
            "#,
        )?;
        let c = Config::load(Some(Path::new("q.toml"))).unwrap();
        let nets: Vec<String> = c
            .ftp
            .proxy_protocol_from
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            nets,
            ["10.1.0.0/16", "192.0.2.7/32", "2001:db8::/64", "::1/128"]
        );
        assert!(c.warnings().is_empty(), "{:?}", c.warnings());
        assert!(
            FtpConfig::default().proxy_protocol_from.is_empty(),
            "off by default"
        );

        jail.set_env("QFTPD_FTP__PROXY_PROTOCOL_FROM", "[\"10.2.0.0/24\"]");
        let c = Config::load(Some(Path::new("q.toml"))).unwrap();
        assert_eq!(
            c.ftp.proxy_protocol_from,
            ["10.2.0.0/24".parse::<ipnet::IpNet>().unwrap()]
        );
        jail.clear_env();

        for (value, needle) in [
            (
                "[\"10.0.0.1/8\"]",
                "has host bits set: write the network (10.0.0.0/8) or the address alone (10.0.0.1)",
            ),
            (
                "[\"balancer\"]",
                "\"balancer\" is neither an IP address nor a CIDR",
            ),
            ("[\"10.0.0.0/33\"]", "neither an IP address nor a CIDR"),
            ("\"10.0.0.0/8\"", "ftp.proxy-protocol-from"),
        ] {
            jail.create_file(
                "bad.toml",
                &format!("[ftp]\nproxy-protocol-from = {value}\n[qumulo]\nurl = \"https://c\"\n"),
            )?;
            let err = Config::load(Some(Path::new("bad.toml")))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(needle) && err.contains("proxy-protocol-from"),
                "{value}: {err}"
            );
        }
        Ok(())
    });
}
