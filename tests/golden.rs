//! The simulator's JSON bodies have the shapes of the golden bodies in `tests/fixtures/qumulo`,
//! which are taken from the API reference: the same keys, and values of the same JSON types.
//! The simulator runs in-process here and is driven with reqwest, trusting exactly its
//! generated certificate.

use std::sync::Arc;
use std::time::Duration;

use qftpd::sim::{self, SimConfig, SimHandle, UserSpec};
use serde_json::{Value, json};

fn golden(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/qumulo/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Asserts that `actual` has the shape of `expected`. A null in the golden body stands for a
/// value that may be null or a string (the reference shows nulls for optional fields).
fn assert_shape(expected: &Value, actual: &Value, at: &str) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            let mut ek: Vec<_> = e.keys().collect();
            let mut ak: Vec<_> = a.keys().collect();
            ek.sort();
            ak.sort();
            assert_eq!(ek, ak, "keys differ at {at}");
            for (k, v) in e {
                assert_shape(v, &a[k], &format!("{at}.{k}"));
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if let Some(first) = e.first() {
                for (i, item) in a.iter().enumerate() {
                    assert_shape(first, item, &format!("{at}[{i}]"));
                }
            }
        }
        (Value::Null, Value::Null | Value::String(_)) => {}
        (Value::String(_), Value::String(_))
        | (Value::Number(_), Value::Number(_))
        | (Value::Bool(_), Value::Bool(_)) => {}
        _ => panic!("type differs at {at}: expected like {expected}, got {actual}"),
    }
}

struct Fixture {
    sim: SimHandle,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Fixture {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let user = |name: &str, admin| UserSpec {
            name: name.into(),
            password: format!("{name}pw"),
            admin,
            home: None,
        };
        let sim = sim::start(SimConfig {
            token_lifetime: Duration::from_secs(60),
            cluster_name: "golden".into(),
            ..SimConfig::loopback(
                dir.path().join("data"),
                vec![user("admin", true), user("alice", false)],
            )
        })
        .await
        .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        let pem = sim.cert_pem().unwrap().as_bytes().to_vec();
        for cert in rustls_pki_types_certs(&pem) {
            roots.add(cert).unwrap();
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .build()
            .unwrap();
        Fixture {
            sim,
            http,
            _dir: dir,
        }
    }

    async fn login(&self, user: &str) -> (String, Value) {
        let body: Value = self
            .http
            .post(format!("{}/v1/session/login", self.sim.url()))
            .json(&json!({"username": user, "password": format!("{user}pw")}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (body["bearer_token"].as_str().unwrap().to_string(), body)
    }

    async fn call(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.sim.url()))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }
}

fn rustls_pki_types_certs(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .map(Result::unwrap)
        .collect()
}

#[tokio::test]
async fn bodies_have_the_reference_shapes() {
    use reqwest::Method;
    let f = Fixture::start().await;
    let (token, login) = f.login("admin").await;
    assert_shape(&golden("login"), &login, "login");

    let version: Value = f
        .http
        .get(format!("{}/v1/version", f.sim.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_shape(&golden("version"), &version, "version");

    let checks = [
        ("who_am_i", Method::GET, "/v1/session/who-am-i", None),
        (
            "cluster_settings",
            Method::GET,
            "/v1/cluster/settings",
            None,
        ),
        ("file_system", Method::GET, "/v1/file-system", None),
        ("user", Method::GET, "/v1/users/501", None),
        ("group", Method::GET, "/v1/groups/513", None),
        (
            "identity",
            Method::POST,
            "/v1/identity/find",
            Some(json!({"name": "alice"})),
        ),
    ];
    for (name, method, path, body) in checks {
        let (status, got) = f.call(&token, method, path, body).await;
        assert_eq!(status, 200, "{path}: {got}");
        assert_shape(&golden(name), &got, name);
    }

    let (status, _) = f
        .call(
            &token,
            Method::POST,
            "/v1/files/%2F/entries/",
            Some(json!({"name": "dir", "action": "CREATE_DIRECTORY"})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, file) = f
        .call(
            &token,
            Method::POST,
            "/v1/files/%2Fdir/entries/",
            Some(json!({"name": "f.txt", "action": "CREATE_FILE"})),
        )
        .await;
    assert_eq!(status, 200);
    assert_shape(&golden("attributes_file"), &file, "attributes");
    assert_eq!(file["path"], "/dir/f.txt");

    f.call(
        &token,
        Method::POST,
        "/v1/files/%2F/entries/",
        Some(json!({"name": "e", "action": "CREATE_FILE"})),
    )
    .await;
    let (status, page) = f
        .call(&token, Method::GET, "/v1/files/%2F/entries/?limit=1", None)
        .await;
    assert_eq!(status, 200);
    assert_shape(&golden("listing"), &page, "listing");
    assert_eq!(page["files"][0]["path"], "/dir/");
    assert_eq!(
        page["paging"]["next"],
        "/v1/files/2/entries/?after=dir&limit=1"
    );

    let (status, err) = f
        .call(
            &token,
            Method::GET,
            "/v1/files/%2Fnope/info/attributes",
            None,
        )
        .await;
    assert_eq!(status, 404);
    assert_shape(&golden("error"), &err, "error");
    assert_eq!(err["error_class"], "fs_no_such_entry_error");
    f.sim.shutdown().await;
}

#[tokio::test]
async fn errors_are_json_with_the_reference_statuses() {
    use reqwest::Method;
    let f = Fixture::start().await;
    let (admin, _) = f.login("admin").await;
    let (alice, _) = f.login("alice").await;
    let cases = [
        (
            alice.as_str(),
            Method::GET,
            "/v1/cluster/settings",
            None,
            403,
            "http_forbidden_error",
        ),
        (
            "1:bogus",
            Method::GET,
            "/v1/session/who-am-i",
            None,
            401,
            "http_unauthorized_error",
        ),
        (
            admin.as_str(),
            Method::GET,
            "/v1/no/such/route",
            None,
            404,
            "http_not_found_error",
        ),
        (
            admin.as_str(),
            Method::POST,
            "/v1/files/%2F/entries/",
            Some(json!({"name": "x"})),
            400,
            "decode_error",
        ),
        (
            admin.as_str(),
            Method::POST,
            "/v1/files/%2F/entries/",
            Some(json!({"name": "..", "action": "CREATE_FILE"})),
            400,
            "fs_invalid_name_error",
        ),
        (
            admin.as_str(),
            Method::POST,
            "/v1/files/%2F/entries/",
            Some(json!({"name": "n".repeat(256), "action": "CREATE_FILE"})),
            400,
            "fs_name_size_error",
        ),
        (
            admin.as_str(),
            Method::GET,
            "/v1/users/999",
            None,
            404,
            "identity_not_found_error",
        ),
    ];
    for (token, method, path, body, status, class) in cases {
        let (got_status, got) = f.call(token, method, path, body).await;
        assert_eq!(
            (got_status, got["error_class"].as_str()),
            (status, Some(class)),
            "{path}: {got}"
        );
        assert_shape(&golden("error"), &got, path);
    }
    let resp = f
        .http
        .post(format!("{}/v1/session/login", f.sim.url()))
        .json(&json!({"username": "alice", "password": "wrong"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    f.sim.shutdown().await;
}
