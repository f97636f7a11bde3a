//! Nodes over one state: shared tokens and files, request counters, down and up, and cuts in
//! the middle of a body. Plain HTTP over raw sockets, so what the client sees is exact.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::sim::faults::FaultSettings;
use crate::sim::{self, NodeState, SimConfig, SimHandle, Transport, UserSpec};

/// Bound on anything that should be immediate, so a regression fails instead of hanging.
const SOON: Duration = Duration::from_secs(10);

async fn cluster(nodes: usize) -> (SimHandle, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let cfg = SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data.path().to_path_buf(),
        users: vec![UserSpec {
            name: "admin".into(),
            password: "adminpw".into(),
            admin: true,
            home: None,
        }],
        transport: Transport::Plain,
        token_lifetime: sim::DEFAULT_TOKEN_LIFETIME,
        faults: FaultSettings::default(),
        cluster_name: "nodes".into(),
        path_symlinks: Default::default(),
    };
    (sim::start_nodes(cfg, nodes).await.unwrap(), data)
}

/// Sends one request (with `Connection: close`) and returns the status and body.
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(head(method, path, token, body.len()).as_bytes())
        .await
        .unwrap();
    s.write_all(body.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(SOON, s.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

fn head(method: &str, path: &str, token: Option<&str>, len: usize) -> String {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    format!(
        "{method} {path} HTTP/1.1\r\nHost: sim\r\n{auth}Content-Type: application/json\r\n\
         Content-Length: {len}\r\nConnection: close\r\n\r\n"
    )
}

async fn login(addr: SocketAddr) -> String {
    let (status, body) = request(
        addr,
        "POST",
        "/v1/session/login",
        None,
        r#"{"username":"admin","password":"adminpw"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["bearer_token"].as_str().unwrap().to_owned()
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[tokio::test]
async fn one_node_keeps_the_single_node_shape() {
    let (sim, _data) = cluster(1).await;
    assert_eq!(sim.urls(), [sim.url().to_owned()]);
    assert_eq!(sim.addrs(), [sim.addr()]);
    assert_eq!(sim.url(), format!("http://{}", sim.addr()));
    sim.shutdown().await;
}

#[tokio::test]
async fn nodes_share_tokens_and_files_and_count_their_requests() {
    let (sim, _data) = cluster(3).await;
    let addrs = sim.addrs().to_vec();
    assert_eq!(addrs.len(), 3);
    assert!(addrs.iter().all(|a| a.ip() == addrs[0].ip()));
    assert_eq!(
        sim.urls(),
        addrs
            .iter()
            .map(|a| format!("http://{a}"))
            .collect::<Vec<_>>()
    );
    let token = login(addrs[0]).await;
    let (status, body) = request(
        addrs[1],
        "POST",
        "/v1/files/%2F/entries/",
        Some(&token),
        r#"{"name":"shared.txt","action":"CREATE_FILE"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = request(
        addrs[2],
        "GET",
        "/v1/files/%2Fshared.txt/info/attributes",
        Some(&token),
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["name"], "shared.txt");

    // Control requests are not counted: the counters show only the three API requests.
    let (status, body) = request(addrs[2], "GET", "/sim/nodes", None, "").await;
    assert_eq!(status, 200, "{body}");
    let listed = json(&body);
    let counts: Vec<u64> = (0..3)
        .map(|i| listed["nodes"][i]["requests"].as_u64().unwrap())
        .collect();
    assert_eq!(counts, [1, 1, 1], "{listed:#}");
    assert_eq!(listed["nodes"][1]["url"], sim.urls()[1]);
    assert_eq!(listed["nodes"][1]["state"], "up");
    assert_eq!(sim.nodes()[0].requests, 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn down_refuses_connections_and_up_serves_the_same_port_again() {
    let (sim, _data) = cluster(2).await;
    let (a0, a1) = (sim.addrs()[0], sim.addrs()[1]);
    let (status, body) = request(a0, "POST", "/sim/nodes/1/down", None, "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["state"], "down");
    let refused = TcpStream::connect(a1).await.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused);
    // Idempotent, and node 0 goes on serving.
    let (status, body) = request(a0, "POST", "/sim/nodes/1/down", None, "").await;
    assert_eq!((status, json(&body)["state"].clone()), (200, "down".into()));
    assert_eq!(request(a0, "GET", "/v1/version", None, "").await.0, 200);
    assert_eq!(sim.nodes()[1].state, NodeState::Down);

    for _ in 0..2 {
        let (status, body) = request(a0, "POST", "/sim/nodes/1/up", None, "").await;
        assert_eq!((status, json(&body)["state"].clone()), (200, "up".into()));
    }
    assert_eq!(request(a1, "GET", "/v1/version", None, "").await.0, 200);
    assert_eq!(sim.addrs()[1], a1);
    sim.shutdown().await;
}

#[tokio::test]
async fn unknown_nodes_are_404_and_the_handle_controls_nodes_too() {
    let (sim, _data) = cluster(2).await;
    let a0 = sim.addr();
    for path in ["/sim/nodes/2/down", "/sim/nodes/-1/up", "/sim/nodes/x/down"] {
        let (status, body) = request(a0, "POST", path, None, "").await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(json(&body)["error_class"], "http_not_found_error");
    }
    assert_eq!(
        request(a0, "GET", "/sim/nodes/0/down", None, "").await.0,
        405
    );
    assert!(matches!(
        sim.node_down(5).await,
        Err(sim::SimError::Node(sim::NodeError::NoSuchNode(5)))
    ));
    assert_eq!(sim.node_down(1).await.unwrap().state, NodeState::Down);
    assert!(TcpStream::connect(sim.addrs()[1]).await.is_err());
    assert_eq!(sim.node_up(1).await.unwrap().state, NodeState::Up);
    assert_eq!(
        request(sim.addrs()[1], "GET", "/v1/version", None, "")
            .await
            .0,
        200
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_node_asked_to_take_itself_down_answers_first() {
    let (sim, _data) = cluster(2).await;
    let a1 = sim.addrs()[1];
    let (status, body) = request(a1, "POST", "/sim/nodes/1/down", None, "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["state"], "down");
    assert!(TcpStream::connect(a1).await.is_err());
    // The only live node can be brought down, leaving a cluster that refuses everything.
    let (status, _) = request(sim.addr(), "POST", "/sim/nodes/0/down", None, "").await;
    assert_eq!(status, 200);
    assert!(TcpStream::connect(sim.addr()).await.is_err());
    sim.node_up(0).await.unwrap();
    assert_eq!(
        request(sim.addr(), "GET", "/sim/nodes", None, "").await.0,
        200
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn down_cuts_a_download_in_the_middle_of_its_body() {
    const SIZE: u64 = 256 << 20;
    let (sim, data) = cluster(2).await;
    std::fs::File::create(data.path().join("big"))
        .unwrap()
        .set_len(SIZE)
        .unwrap();
    let token = login(sim.addr()).await;
    let mut s = TcpStream::connect(sim.addrs()[1]).await.unwrap();
    let get = head("GET", "/v1/files/%2Fbig/data", Some(&token), 0);
    s.write_all(get.as_bytes()).await.unwrap();
    let mut buf = vec![0; 1 << 20];
    let mut got = 0usize;
    while got < 2 << 20 {
        let n = tokio::time::timeout(SOON, s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "the download ended early");
        if got == 0 {
            let start = String::from_utf8_lossy(&buf[..n.min(64)]).into_owned();
            assert!(start.starts_with("HTTP/1.1 200"), "{start}");
        }
        got += n;
    }
    // The server is blocked on a full socket: taking the node down must not wait for it.
    tokio::time::timeout(SOON, sim.node_down(1))
        .await
        .unwrap()
        .unwrap();
    let end = loop {
        match tokio::time::timeout(SOON, s.read(&mut buf)).await.unwrap() {
            Ok(0) => break None,
            Ok(n) => got += n,
            Err(e) => break Some(e.kind()),
        }
    };
    assert_eq!(end, Some(ErrorKind::ConnectionReset), "after {got} bytes");
    assert!((got as u64) < SIZE, "the whole body arrived");
    // Node 0 serves the same file.
    assert_eq!(
        request(sim.addr(), "GET", "/v1/version", None, "").await.0,
        200
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn down_cuts_an_upload_in_the_middle_of_its_body() {
    let (sim, _data) = cluster(2).await;
    let token = login(sim.addr()).await;
    let (status, body) = request(
        sim.addr(),
        "POST",
        "/v1/files/%2F/entries/",
        Some(&token),
        r#"{"name":"up.bin","action":"CREATE_FILE"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let mut s = TcpStream::connect(sim.addrs()[1]).await.unwrap();
    let put = head("PUT", "/v1/files/%2Fup.bin/data", Some(&token), 1 << 30);
    s.write_all(put.as_bytes()).await.unwrap();
    s.write_all(&vec![7u8; 1 << 20]).await.unwrap();
    tokio::time::timeout(SOON, sim.node_down(1))
        .await
        .unwrap()
        .unwrap();
    let chunk = vec![7u8; 1 << 20];
    let failed = tokio::time::timeout(SOON, async {
        loop {
            if let Err(e) = s.write_all(&chunk).await {
                break e.kind();
            }
        }
    })
    .await
    .unwrap();
    assert!(
        matches!(failed, ErrorKind::ConnectionReset | ErrorKind::BrokenPipe),
        "{failed:?}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn dropping_the_handle_stops_every_node() {
    let (sim, _data) = cluster(2).await;
    let addrs = sim.addrs().to_vec();
    drop(sim);
    for addr in addrs {
        let refused = tokio::time::timeout(SOON, async {
            loop {
                if TcpStream::connect(addr).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        refused.await.unwrap();
    }
}
