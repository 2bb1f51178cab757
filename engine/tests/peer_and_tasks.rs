//! The peer address handed to `upgrade`, and handler work that finishes
//! later on the worker's own tokio runtime.

use bytes::BytesMut;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::Duration;
use uringws_engine::protocol::{
    handshake::{ClientHandshake, ClientRequest, Upgrade},
    Decoder, DecoderConfig, Message, Role,
};
use uringws_engine::{Accept, Conn, Engine, EngineConfig, Handler, Peer, Reject};

/// Upgrades a blocking client; returns the stream and any bytes after the
/// 101 head.
fn connect(addr: SocketAddr) -> (TcpStream, BytesMut) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let host = addr.to_string();
    let (client, request) = ClientHandshake::new(&ClientRequest::new(&host, "/")).unwrap();
    stream.write_all(&request).unwrap();
    let mut buf = BytesMut::new();
    loop {
        let mut chunk = [0u8; 1024];
        let n = stream.read(&mut chunk).expect("read 101");
        assert!(n > 0, "closed during handshake");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(response) = client.parse_response(&buf).expect("valid 101") {
            let _ = buf.split_to(response.head_len());
            return (stream, buf);
        }
    }
}

fn next_message(stream: &mut TcpStream, buf: &mut BytesMut) -> Message {
    let mut decoder = Decoder::new(Role::Client, DecoderConfig::default());
    loop {
        if let Some(message) = decoder.decode(buf).expect("valid frames") {
            return message;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).expect("read frame");
        assert!(n > 0, "closed before a message");
        buf.extend_from_slice(&chunk[..n]);
    }
}

struct RecordPeer(mpsc::Sender<Option<SocketAddr>>);

impl Handler for RecordPeer {
    type State = ();
    fn upgrade(&mut self, _: &Upgrade<'_>, peer: Peer) -> Result<Accept<()>, Reject> {
        self.0.send(peer.addr).unwrap();
        Ok(Accept::new(()))
    }
    fn message(&mut self, _: &mut Conn<'_, ()>, _: uringws_engine::Message) {}
}

fn peer_seen(peer_addresses: bool) -> (SocketAddr, Option<SocketAddr>) {
    let (tx, rx) = mpsc::channel();
    let engine = Engine::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .workers(2)
        .pin(false)
        .config(EngineConfig {
            peer_addresses,
            ..EngineConfig::default()
        })
        .start(move |_| RecordPeer(tx.clone()))
        .unwrap();
    let (stream, _) = connect(engine.local_addrs()[0]);
    let seen = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    let local = stream.local_addr().unwrap();
    drop(stream);
    engine.shutdown();
    engine.join().unwrap();
    (local, seen)
}

#[test]
fn upgrade_sees_the_clients_address() {
    let (local, seen) = peer_seen(true);
    assert_eq!(seen, Some(local));
}

#[test]
fn multishot_accept_reports_no_address() {
    let (_, seen) = peer_seen(false);
    assert_eq!(seen, None);
}

/// On open, a task on the worker's runtime waits, then sends through the
/// connection's handle.
struct Later;

impl Handler for Later {
    type State = ();
    fn upgrade(&mut self, _: &Upgrade<'_>, _: Peer) -> Result<Accept<()>, Reject> {
        Ok(Accept::new(()))
    }
    fn open(&mut self, conn: &mut Conn<'_, ()>) {
        let handle = conn.handle();
        tokio::task::spawn_local(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            handle.send_text("done later").unwrap();
        });
    }
    fn message(&mut self, _: &mut Conn<'_, ()>, _: uringws_engine::Message) {}
}

#[test]
fn handler_tasks_run_on_the_worker_and_send_later() {
    let engine = Engine::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .workers(2)
        .pin(false)
        .start(|_| Later)
        .unwrap();
    let (mut stream, mut buf) = connect(engine.local_addrs()[0]);
    assert_eq!(
        next_message(&mut stream, &mut buf),
        Message::Text("done later".into())
    );
    drop(stream);
    engine.shutdown();
    engine.join().unwrap();
}

/// Echoes, and on open hands the connection's handle out and starts a
/// task that sends through it after a tokio timer.
struct EchoAndLater(mpsc::Sender<uringws_engine::ConnRef>);

impl Handler for EchoAndLater {
    type State = ();
    fn upgrade(&mut self, _: &Upgrade<'_>, _: Peer) -> Result<Accept<()>, Reject> {
        Ok(Accept::new(()))
    }
    fn open(&mut self, conn: &mut Conn<'_, ()>) {
        let handle = conn.handle();
        self.0.send(handle.clone()).unwrap();
        tokio::task::spawn_local(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            handle.send_text("done later").unwrap();
        });
    }
    fn message(&mut self, conn: &mut Conn<'_, ()>, message: uringws_engine::Message) {
        if let uringws_engine::Message::Text(text) = message {
            conn.send_text(text);
        }
    }
}

fn echo_and_later() -> (Engine, TcpStream, BytesMut, uringws_engine::ConnRef) {
    let (tx, rx) = mpsc::channel();
    let engine = Engine::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .workers(1)
        .pin(false)
        .start(move |_| EchoAndLater(tx.clone()))
        .unwrap();
    let (stream, buf) = connect(engine.local_addrs()[0]);
    let handle = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    (engine, stream, buf, handle)
}

/// One echo round trip: what came back, in order, until the echo.
fn round_trip(stream: &mut TcpStream, buf: &mut BytesMut, payload: &str) -> Vec<Message> {
    // A short masked text frame, as a client sends it.
    let key = [1u8, 2, 3, 4];
    let mut frame = vec![0x81, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&key);
    frame.extend(payload.bytes().zip(key.iter().cycle()).map(|(b, k)| b ^ k));
    stream.write_all(&frame).unwrap();
    let mut got = Vec::new();
    loop {
        let message = next_message(stream, buf);
        let done = message == Message::Text(payload.into());
        got.push(message);
        if done {
            return got;
        }
    }
}

/// The worker waits for the next message in its ring while messages keep
/// coming; the tasks and timers of its tokio runtime must still run.
#[test]
fn handler_tasks_run_while_messages_keep_the_worker_busy() {
    let (engine, mut stream, mut buf, _handle) = echo_and_later();
    let start = std::time::Instant::now();
    let mut later = false;
    let mut trips = 0;
    while !later && start.elapsed() < Duration::from_secs(3) {
        let got = round_trip(&mut stream, &mut buf, "ping");
        later = got.contains(&Message::Text("done later".into()));
        trips += 1;
    }
    assert!(later, "the task's send never came in {trips} round trips");
    drop(stream);
    engine.shutdown();
    engine.join().unwrap();
}

/// A send through a handle from another thread, right after an echo, while
/// the worker waits in its ring: the handle's mailbox must wake it then,
/// not when its wait runs out.
#[test]
fn a_handle_wakes_a_worker_waiting_between_messages() {
    let (engine, mut stream, mut buf, handle) = echo_and_later();
    // Past the task's own send.
    while !round_trip(&mut stream, &mut buf, "warm").contains(&Message::Text("done later".into())) {
    }
    let mut delays = Vec::new();
    for _ in 0..60 {
        round_trip(&mut stream, &mut buf, "ping");
        // Long enough for the worker to be waiting for the next message,
        // well within the 2 ms it waits.
        std::thread::sleep(Duration::from_micros(300));
        let sent = std::time::Instant::now();
        handle.send_text("pushed").unwrap();
        assert_eq!(
            next_message(&mut stream, &mut buf),
            Message::Text("pushed".into())
        );
        delays.push(sent.elapsed());
    }
    delays.sort();
    let median = delays[delays.len() / 2];
    // The wait lasts 2 ms and more (to a tick past it); a woken worker
    // answers in a loopback round trip.
    assert!(
        median < Duration::from_millis(1),
        "median delay {median:?}: the worker slept on"
    );
    drop(stream);
    engine.shutdown();
    engine.join().unwrap();
}
