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

/// Malformed requests and unknown sessions get clear errors; the server keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_errors() {
    use strom_proto::keeper::keeper_client::KeeperClient as Grpc;
    use strom_proto::keeper::{client_message, server_message, ClientMessage, ConnectRequest, Request};
    use tokio_stream::wrappers::ReceiverStream;

    let (_dir, server) = start().await;
    let url = format!("http://{}", server.client_addr());
    let open = |msgs: Vec<ClientMessage>| {
        let url = url.clone();
        async move {
            let mut grpc = Grpc::connect(url).await.expect("grpc connect");
            let (tx, rx) = tokio::sync::mpsc::channel(16);
            for m in msgs {
                tx.send(m).await.expect("queue");
            }
            let stream = grpc.session(ReceiverStream::new(rx)).await.expect("open session").into_inner();
            (tx, stream)
        }
    };
    let connect = |session_id: i64| ClientMessage {
        msg: Some(client_message::Msg::Connect(ConnectRequest {
            session_id,
            timeout_ms: 4000,
            last_zxid_seen: 0,
            password: vec![1, 2, 3],
        })),
    };

    // Resuming a session that does not exist: session expired.
    let (_tx, mut stream) = open(vec![connect(0x1234_5678)]).await;
    let err = stream.message().await.expect_err("unknown session must be refused");
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err}");

    // A first message that is not a ConnectRequest.
    let bad_first = ClientMessage { msg: Some(client_message::Msg::Request(Request { xid: 1, op: None })) };
    let (_tx, mut stream) = open(vec![bad_first]).await;
    let err = stream.message().await.expect_err("must be refused");
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");

    // A request without an operation, on a good session: an error response, session intact.
    let empty = ClientMessage { msg: Some(client_message::Msg::Request(Request { xid: 7, op: None })) };
    let (_tx, mut stream) = open(vec![connect(0), empty]).await;
    let first = stream.message().await.expect("stream").expect("connected");
    assert!(matches!(first.msg, Some(server_message::Msg::Connected(_))));
    let reply = stream.message().await.expect("stream").expect("response");
    match reply.msg {
        Some(server_message::Msg::Response(r)) => {
            assert_eq!(r.xid, 7);
            assert_eq!(r.err, KeeperError::BadArguments(String::new()).code());
        }
        other => panic!("expected an error response, got {other:?}"),
    }

    // The server still serves a well-behaved client.
    let zk = KeeperClient::connect(&server.client_addr().to_string(), Duration::from_secs(4)).await.expect("connect");
    zk.create("/still-here", b"", CreateMode::Persistent).await.expect("create");
    zk.close().await;
    server.shutdown().await;
}
