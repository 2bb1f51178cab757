//! What an embedder's handler may get wrong or ask for, over real sockets:
//! callbacks that panic (the connection gets 1011 or the request a 500, and
//! the worker goes on serving the others), headers on the 101, and the
//! `dropped` callback when backpressure refuses messages.

mod common;

use common::*;
use std::sync::{Arc, Mutex};
use uringws_engine::{
    protocol::{
        handshake::{Request, Upgrade},
        http::Response,
        OpCode,
    },
    Accept, Conn, Engine, EngineConfig, Handler, Message, Peer, Reject, SendStatus,
};

/// Panics where the request or message says so.
fn panicking_server() -> TestServer {
    let hooks = Hooks {
        upgrade: Some(Arc::new(|upgrade: &Upgrade<'_>| {
            if upgrade.request().path() == "/panic" {
                panic!("upgrade hook panics on purpose");
            }
            None
        })),
        http: Some(Arc::new(|request: &Request<'_>, _: &[u8]| {
            if request.path() == "/panic" {
                panic!("http hook panics on purpose");
            }
            None
        })),
        message: Some(Arc::new(|_, message| {
            if matches!(message, Message::Text(t) if t.as_str() == "panic") {
                panic!("message hook panics on purpose");
            }
            false
        })),
        ..Hooks::default()
    };
    // One worker: the panics and the connections that must go on share it.
    let config = test_config();
    TestServer::start_with_workers(config, hooks, 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_message_callback_closes_its_connection_with_1011() {
    let server = panicking_server();
    let mut bystander = RawClient::upgrade(server.addr).await;
    let mut victim = RawClient::upgrade(server.addr).await;
    victim.send_frame(OpCode::Text, true, b"panic").await;
    let close = victim.read_frame().await.unwrap();
    assert!(close.is_close(), "{close}");
    assert_eq!(close.close_code(), Some(1011));
    victim
        .send_frame(OpCode::Close, true, &1011u16.to_be_bytes())
        .await;
    assert!(victim.read_to_end(WAIT).await.0.is_empty());
    // The handler heard of the close it caused, once.
    wait_until(WAIT, "close callback", || {
        server
            .recorder
            .closes()
            .contains(&(1011, "internal error".to_owned()))
    })
    .await;

    // The same worker still serves the connection it already had, and new ones.
    bystander
        .send_frame(OpCode::Text, true, b"still here")
        .await;
    assert_eq!(bystander.read_frame().await.unwrap().text(), "still here");
    ws_check_echo(server.addr, "a new connection after the panic").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panicking_upgrade_and_http_callbacks_answer_500() {
    let server = panicking_server();
    let mut client = RawClient::connect(server.addr).await;
    client.send(upgrade_request("/panic").as_bytes()).await;
    let response = client.read_http_head().await.unwrap();
    assert_eq!(response.status, 500, "{response:?}");

    let mut client = RawClient::connect(server.addr).await;
    client
        .send(b"GET /panic HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await;
    let response = client.read_http_head().await.unwrap();
    assert_eq!(response.status, 500, "{response:?}");

    assert_eq!(server.recorder.opens(), 0);
    ws_check_echo(server.addr, "the worker goes on after the panics").await;
    server.stop().await;
}

/// Sets a cookie on the 101; refuses a subprotocol the client did not
/// offer when asked to; floods on "flood" and records what `dropped` says.
struct Cookies {
    dropped: Arc<Mutex<Vec<u32>>>,
    statuses: Arc<Mutex<Vec<SendStatus>>>,
}

impl Handler for Cookies {
    type State = ();
    fn upgrade(&mut self, upgrade: &Upgrade<'_>, _: Peer) -> Result<Accept<()>, Reject> {
        match upgrade.request().path() {
            "/bad-header" => Ok(Accept::new(()).header("Set-Cookie", "a=1\r\nX-Injected: 1")),
            "/bad-protocol" => Ok(Accept::new(()).with_protocol("never-offered")),
            _ => Ok(Accept::new(()).header("Set-Cookie", "session=abc; HttpOnly")),
        }
    }
    fn http(&mut self, _: &Request<'_>, _: &[u8], _: Peer) -> Response {
        Response::text(202, "accepted")
    }
    fn message(&mut self, conn: &mut Conn<'_, ()>, message: Message) {
        if message == Message::Text("flood".into()) {
            let mut statuses = self.statuses.lock().unwrap();
            for _ in 0..25 {
                statuses.push(conn.send_binary(vec![7u8; 1000]));
            }
        }
    }
    fn dropped(&mut self, _: &mut Conn<'_, ()>, messages: u32) {
        self.dropped.lock().unwrap().push(messages);
    }
}

type Records = (Arc<Mutex<Vec<u32>>>, Arc<Mutex<Vec<SendStatus>>>);

fn cookie_engine(config: EngineConfig) -> (Engine, Records) {
    let records: Records = Default::default();
    let (dropped, statuses) = records.clone();
    let engine = Engine::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .workers(1)
        .pin(false)
        .config(config)
        .start(move |_| Cookies {
            dropped: dropped.clone(),
            statuses: statuses.clone(),
        })
        .unwrap();
    (engine, records)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_headers_go_on_the_101_and_bad_ones_refuse_with_500() {
    let (engine, _) = cookie_engine(test_config());
    let addr = engine.local_addrs()[0];

    let mut client = RawClient::connect(addr).await;
    client.send(upgrade_request("/").as_bytes()).await;
    let response = client.read_http_head().await.unwrap();
    assert_eq!(response.status, 101);
    assert_eq!(response.header("set-cookie"), Some("session=abc; HttpOnly"));

    for path in ["/bad-header", "/bad-protocol"] {
        let mut client = RawClient::connect(addr).await;
        client.send(upgrade_request(path).as_bytes()).await;
        let response = client.read_http_head().await.unwrap();
        assert_eq!(response.status, 500, "{path}: {response:?}");
        assert_eq!(response.header("x-injected"), None);
    }

    // A typed response keeps its reason phrase (202 had none).
    let mut client = RawClient::connect(addr).await;
    client.send(b"POST /x HTTP/1.1\r\nHost: h\r\n\r\n").await;
    let (raw, _) = client.read_to_end(WAIT).await;
    assert!(raw.starts_with(b"HTTP/1.1 202 Accepted\r\n"), "{raw:?}");

    engine.shutdown();
    tokio::task::spawn_blocking(move || engine.join())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_reports_how_many_messages_backpressure_refused() {
    let config = EngineConfig {
        backpressure_limit: 10_000,
        ..test_config()
    };
    let (engine, (dropped, statuses)) = cookie_engine(config);
    let mut client = RawClient::upgrade(engine.local_addrs()[0]).await;
    client.send_frame(OpCode::Text, true, b"flood").await;
    // Each 1,000-byte message is 1,004 bytes on the wire: the queue takes
    // ten (the tenth brings it to 10,040) and refuses the fifteen after.
    for _ in 0..10 {
        let frame = client.read_frame().await.unwrap();
        assert_eq!(frame.payload.len(), 1000);
    }
    wait_until(WAIT, "the dropped callback", || {
        !dropped.lock().unwrap().is_empty()
    })
    .await;
    assert_eq!(*dropped.lock().unwrap(), [15], "one call with the count");
    let statuses = statuses.lock().unwrap().clone();
    assert_eq!(statuses[0], SendStatus::Sent);
    assert!(statuses[1..10].iter().all(|s| *s == SendStatus::Queued));
    assert!(statuses[10..].iter().all(|s| *s == SendStatus::Dropped));
    assert!(client
        .try_read_frame(std::time::Duration::from_millis(200))
        .await
        .is_none());
    engine.shutdown();
    tokio::task::spawn_blocking(move || engine.join())
        .await
        .unwrap()
        .unwrap();
}

/// Joins "room" on open and says so to the room.
struct Announcer;

impl Handler for Announcer {
    type State = ();
    fn upgrade(&mut self, _: &Upgrade<'_>, _: Peer) -> Result<Accept<()>, Reject> {
        Ok(Accept::new(()))
    }
    fn open(&mut self, conn: &mut Conn<'_, ()>) {
        conn.subscribe("room");
        let joined = format!("joined {}", conn.id());
        conn.publish_to_others("room", &uringws_engine::Publication::text(&joined));
    }
    fn message(&mut self, _: &mut Conn<'_, ()>, _: Message) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_from_open_reaches_the_workers_subscribers_at_once() {
    // One worker, so the subscriber is local to the publisher; nobody
    // sends a frame, so nothing but the open itself can deliver it.
    let engine = Engine::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .workers(1)
        .pin(false)
        .config(test_config())
        .start(|_| Announcer)
        .unwrap();
    let addr = engine.local_addrs()[0];
    let mut first = RawClient::upgrade(addr).await;
    let _second = RawClient::upgrade(addr).await;
    let frame = first.read_frame().await.unwrap();
    assert!(frame.text().starts_with("joined 0."), "{frame}");
    engine.shutdown();
    tokio::task::spawn_blocking(move || engine.join())
        .await
        .unwrap()
        .unwrap();
}
