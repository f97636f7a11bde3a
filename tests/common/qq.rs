//! The real `qq` CLI (PyPI `qumulo-api`) aimed at one simulator, with a private credentials
//! file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use tempfile::TempDir;

/// The `qq` executable: `$QQ_BIN`, else the venv that `./run-tests` installs.
pub fn qq_path() -> PathBuf {
    let path = match std::env::var_os("QQ_BIN") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-env/venv/bin/qq"),
    };
    assert!(
        path.exists(),
        "qq not found: ./run-tests installs it (PyPI package qumulo-api, in a venv), or set \
         QQ_BIN (looked for {})",
        path.display()
    );
    path
}

/// The real `qq` CLI aimed at one simulator, with a private credentials file.
pub struct Qq {
    /// Simulator host.
    pub host: String,
    /// Simulator port.
    pub port: u16,
    /// The `--credentials-store` file.
    pub cred_file: PathBuf,
    /// Holds `cred_file` and scratch files.
    pub dir: TempDir,
    exe: PathBuf,
}

impl Qq {
    /// A `qq` wrapper for `host:port`; not logged in yet.
    pub fn new(host: &str, port: u16) -> Qq {
        let dir = tempfile::Builder::new()
            .prefix("qftpd-qq-")
            .tempdir()
            .expect("create qq dir");
        Qq {
            host: host.to_owned(),
            port,
            cred_file: dir.path().join("credentials"),
            dir,
            exe: qq_path(),
        }
    }

    /// A `qq` command with the target and credentials options filled in.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.exe);
        cmd.arg("--host")
            .arg(&self.host)
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--credentials-store")
            .arg(&self.cred_file)
            .args(args)
            .env("PYTHONUNBUFFERED", "1")
            .env("XDG_CONFIG_HOME", self.dir.path().join("xdg"));
        cmd
    }

    /// A wrapper for `host:port` (e.g. another node of the same cluster) that uses this one's
    /// credentials file, hence its bearer token; `self` must outlive it.
    pub fn sharing_credentials(&self, host: &str, port: u16) -> Qq {
        let mut other = Qq::new(host, port);
        other.cred_file = self.cred_file.clone();
        other
    }

    /// Runs `qq <args>` with stdin closed.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run qq {args:?}: {e}"))
    }

    /// Runs `qq <args>` with `input` on stdin.
    pub fn run_with_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn qq {args:?}: {e}"));
        let mut stdin = child.stdin.take().expect("qq stdin");
        let input = input.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let out = child.wait_with_output().expect("wait for qq");
        let _ = writer.join();
        out
    }

    /// Runs `qq <args>`, asserts success, returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_success(args, &out);
        String::from_utf8(out.stdout).expect("qq stdout is UTF-8")
    }

    /// Runs `qq <args>`, asserts success, returns raw stdout bytes.
    pub fn ok_bytes(&self, args: &[&str]) -> Vec<u8> {
        let out = self.run(args);
        assert_success(args, &out);
        out.stdout
    }

    /// Runs `qq <args>`, asserts success, returns the first JSON value printed.
    pub fn ok_json(&self, args: &[&str]) -> serde_json::Value {
        let stdout = self.ok(args);
        json_values(&stdout)
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("qq {args:?} printed no JSON:\n{stdout}"))
    }

    /// Runs `qq <args>`, asserts success, returns every JSON value printed (e.g. one per page).
    pub fn ok_json_all(&self, args: &[&str]) -> Vec<serde_json::Value> {
        json_values(&self.ok(args))
    }

    /// Runs `qq <args>`, asserts failure, returns stderr.
    pub fn err(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "qq {args:?} unexpectedly succeeded; stdout:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// `qq login -u USER -p PASSWORD`, asserting success.
    pub fn login(&self, user: &str, password: &str) {
        self.ok(&["login", "-u", user, "-p", password]);
    }

    /// Writes `data` to a scratch file and returns its path (for `fs_write --file`).
    pub fn scratch_file(&self, name: &str, data: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, data).expect("write scratch file");
        path
    }

    /// `fs_write --path PATH --file <data> [extra]`, asserting success; returns the JSON printed.
    pub fn write(&self, path: &str, data: &[u8], extra: &[&str]) -> serde_json::Value {
        let src = self.scratch_file("upload.bin", data);
        let src = src.to_str().expect("UTF-8 temp path");
        let mut args = vec!["fs_write", "--path", path, "--file", src];
        args.extend_from_slice(extra);
        self.ok_json(&args)
    }

    /// `fs_read --path PATH --stdout [extra]`, asserting success; returns the bytes.
    pub fn read(&self, path: &str, extra: &[&str]) -> Vec<u8> {
        let mut args = vec!["fs_read", "--path", path, "--stdout"];
        args.extend_from_slice(extra);
        self.ok_bytes(&args)
    }
}

fn assert_success(args: &[&str], out: &Output) {
    assert!(
        out.status.success(),
        "qq {args:?} failed ({}); stderr:\n{}\nstdout:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
}

/// All JSON values at the start of `text`, in order; stops at the first non-JSON text (e.g. the
/// prose that `who_am_i` prints after its JSON).
pub fn json_values(text: &str) -> Vec<serde_json::Value> {
    serde_json::Deserializer::from_str(text)
        .into_iter::<serde_json::Value>()
        .map_while(Result::ok)
        .collect()
}
