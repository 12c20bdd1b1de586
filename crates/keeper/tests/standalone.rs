//! A standalone keeper embedded in the test process, driven through the client library.

use std::time::Duration;

use strom_keeper::client::KeeperClient;
use strom_keeper::config::KeeperConfig;
use strom_keeper::server::KeeperServer;
use strom_keeper::{CreateMode, EventType, KeeperError, Op, OpResult, MAX_DATA_LEN};

async fn start() -> (tempfile::TempDir, KeeperServer) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = KeeperConfig::standalone(dir.path(), "127.0.0.1:0".parse().expect("addr"));
    cfg.tick_ms = 200;
    let server = KeeperServer::start(cfg).await.expect("start keeper");
    (dir, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_data_multi_chroot_and_watch_order() {
    let (_dir, server) = start().await;
    let addr = server.client_addr().to_string();
    let zk = KeeperClient::connect(&addr, Duration::from_secs(4)).await.expect("connect");

    let max = vec![7u8; MAX_DATA_LEN];
    zk.create("/max", &max, CreateMode::Persistent).await.expect("1 MiB allowed");
    assert_eq!(zk.get_data("/max", false).await.expect("get").0.len(), MAX_DATA_LEN);
    let big = vec![7u8; MAX_DATA_LEN + 1];
    assert!(matches!(zk.create("/big", &big, CreateMode::Persistent).await, Err(KeeperError::BadArguments(_))));

    // multi: all or nothing, with ZooKeeper's error for the failing op.
    let r = zk
        .multi(vec![
            Op::Create { path: "/m".into(), data: vec![], mode: CreateMode::Persistent },
            Op::Check { path: "/max".into(), version: 5 },
        ])
        .await;
    assert_eq!(r, Err(KeeperError::BadVersion));
    assert!(zk.exists("/m", false).await.expect("exists").is_none());
    let r = zk
        .multi(vec![
            Op::Create { path: "/m".into(), data: vec![], mode: CreateMode::Persistent },
            Op::SetData { path: "/max".into(), data: b"small".to_vec(), version: 0 },
        ])
        .await
        .expect("multi");
    assert!(matches!(&r[0], OpResult::Create { path, .. } if path == "/m"));
    assert!(matches!(&r[1], OpResult::SetData { stat } if stat.version == 1));

    // chroot: paths are relative to it, both ways.
    zk.create("/app", b"", CreateMode::Persistent).await.expect("create");
    let app = KeeperClient::connect(&format!("{addr}/app"), Duration::from_secs(4)).await.expect("connect chroot");
    assert_eq!(app.create("/x", b"1", CreateMode::Persistent).await.expect("create"), "/x");
    assert_eq!(zk.get_data("/app/x", false).await.expect("get").0, b"1");

    // A watch event arrives before the response of the change that fired it.
    let mut events = app.events();
    app.get_data("/x", true).await.expect("watch");
    app.set_data("/x", b"2", None).await.expect("set");
    let e = events.try_recv().expect("event already delivered when set_data returned");
    assert_eq!((e.event_type, e.path.as_str()), (EventType::NodeDataChanged, "/x"));

    app.close().await;
    zk.close().await;
    server.shutdown().await;
}
