//! permessage-deflate over real sockets: against the engine the `uringws`
//! server runs on (its shared and dedicated compression, and none),
//! against servers whose answer breaks RFC 7692, and against the
//! `uringws` binary itself. Each run is bounded by its plan's end and
//! handshake timeout.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uringws_engine::protocol::deflate::{ClientDeflate, ServerDeflate};
use uringws_engine::protocol::handshake::{accept_key, Upgrade};
use uringws_engine::{Accept, Compression, Conn, Engine, EngineConfig, Handler, Message, Peer};
use uringws_engine::{Publication, Reject};
use uringws_load::client::{run, Live, Outcome, Plan, Scenario};
use uringws_load::deflate::DeflateOffer;
use uringws_load::fanout::{Fanout, FanoutConfig};
use uringws_load::report::ByteCounts;
use uringws_load::scenarios::{Echo, Hold, Payload};
use uringws_load::target::Target;
use uringws_load::tls::TlsConfig;

mod common;
use common::EchoHandler;

fn server(compression: Option<Compression>) -> Engine {
    Engine::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .workers(2)
        .pin(false)
        .config(EngineConfig {
            compression,
            ..EngineConfig::default()
        })
        .start(|_| EchoHandler)
        .unwrap()
}

/// What the `uringws` server does by default (`--compression shared`).
fn shared() -> Option<Compression> {
    Some(Compression::shared())
}

/// Context takeover both ways, full windows: each connection keeps its
/// own streams at both ends.
fn context_both_ways() -> Option<Compression> {
    Some(Compression {
        policy: ServerDeflate::dedicated(15),
        ..Compression::shared()
    })
}

fn offer(params: ClientDeflate) -> DeflateOffer {
    DeflateOffer::new(params, 6)
}

fn plan(url: &str, connections: usize, seconds: f64, deflate: Option<&DeflateOffer>) -> Plan {
    let mut target = Target::parse(url).unwrap();
    if let Some(offer) = deflate {
        target.offer_deflate(offer);
    }
    Plan {
        targets: vec![target],
        sources: None,
        first: 0,
        connections,
        at_once: connections,
        rate: 0.0,
        concurrency: 64,
        timeout: Duration::from_secs(3),
        until: Instant::now() + Duration::from_secs_f64(seconds),
    }
}

fn echo_url(addr: SocketAddr) -> String {
    format!("ws://{addr}/echo")
}

fn go<S: Scenario>(plan: Plan, scenario: S) -> (Outcome, S) {
    run(
        plan,
        scenario,
        Arc::new(Live::default()),
        Arc::new(AtomicBool::new(false)),
    )
}

fn count(outcome: &Outcome, name: &str) -> u64 {
    outcome.counts.get(name).copied().unwrap_or(0)
}

/// 1 KiB JSON messages, two in flight per connection.
fn json_echo() -> Echo {
    Echo::new(1024, false, 2).with_payload(Payload::Json)
}

/// Every echo was checked and every payload byte of both ways counted.
fn assert_clean_echo(outcome: &Outcome, echo: &Echo, size: u64) {
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert!(echo.echoed > 20, "{}", echo.echoed);
    assert_eq!(outcome.bytes.payload_sent, echo.sent * size);
    assert_eq!(outcome.bytes.payload_received, echo.echoed * size);
}

fn ratios(bytes: &ByteCounts) -> (f64, f64) {
    (
        bytes.sent_ratio().expect("payload sent"),
        bytes.received_ratio().expect("payload received"),
    )
}

#[test]
fn echo_with_deflate_is_agreed_and_smaller_on_the_wire() {
    let engine = server(shared());
    let url = echo_url(engine.local_addrs()[0]);
    let offer = offer(ClientDeflate::default());
    let (outcome, echo) = go(plan(&url, 10, 1.0, Some(&offer)), json_echo());
    assert_clean_echo(&outcome, &echo, 1024);
    assert_eq!(
        count(&outcome, "deflate agreed"),
        10,
        "{:?}",
        outcome.counts
    );
    assert_eq!(count(&outcome, "deflate declined"), 0);
    // Each message on its own, as the shared server asks: JSON records
    // still repeat their keys within one message.
    let (sent, received) = ratios(&outcome.bytes);
    eprintln!(
        "1 KiB JSON, no context takeover: wire/payload {sent:.3} sent, {received:.3} received"
    );
    assert!(sent < 0.5, "{:?}", outcome.bytes);
    assert!(received < 0.5, "{:?}", outcome.bytes);
    engine.shutdown();
    engine.join().unwrap();
}

#[test]
fn context_takeover_compresses_each_message_against_the_ones_before() {
    let offer = offer(ClientDeflate::default());
    let mut measured = Vec::new();
    for compression in [shared(), context_both_ways()] {
        let engine = server(compression);
        let url = echo_url(engine.local_addrs()[0]);
        let (outcome, echo) = go(plan(&url, 4, 1.0, Some(&offer)), json_echo());
        assert_clean_echo(&outcome, &echo, 1024);
        assert_eq!(count(&outcome, "deflate agreed"), 4);
        measured.push(ratios(&outcome.bytes));
        engine.shutdown();
        engine.join().unwrap();
    }
    let [(shared_sent, shared_received), (kept_sent, kept_received)] = measured[..] else {
        unreachable!()
    };
    eprintln!(
        "1 KiB JSON wire/payload, sent and received: each message on its own \
         {shared_sent:.3} {shared_received:.3}, with context {kept_sent:.3} {kept_received:.3}"
    );
    // Both ends kept their streams: the client's compressor and its
    // decompressor for the server's, or the echoes would not check.
    assert!(kept_sent < shared_sent * 0.9, "{measured:?}");
    assert!(kept_received < shared_received * 0.9, "{measured:?}");
}

#[test]
fn every_parameter_the_client_can_offer_is_agreed_and_kept_to() {
    let engine = server(context_both_ways());
    let url = echo_url(engine.local_addrs()[0]);
    for params in [
        ClientDeflate {
            client_no_context_takeover: true,
            ..ClientDeflate::default()
        },
        ClientDeflate {
            server_no_context_takeover: true,
            ..ClientDeflate::default()
        },
        ClientDeflate {
            server_max_window_bits: 10,
            client_max_window_bits: 9,
            ..ClientDeflate::default()
        },
        ClientDeflate {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: 9,
            client_max_window_bits: 12,
        },
    ] {
        let offer = offer(params);
        let (outcome, echo) = go(plan(&url, 4, 0.6, Some(&offer)), json_echo());
        assert_clean_echo(&outcome, &echo, 1024);
        assert_eq!(count(&outcome, "deflate agreed"), 4, "{}", offer.header());
        let (sent, received) = ratios(&outcome.bytes);
        assert!(
            sent < 0.6 && received < 0.6,
            "{}: {sent} {received}",
            offer.header()
        );
    }
    engine.shutdown();
    engine.join().unwrap();
}

#[test]
fn a_server_that_declines_is_counted_and_used_without_compression() {
    let engine = server(None);
    let url = echo_url(engine.local_addrs()[0]);
    let offer = offer(ClientDeflate::default());
    let (outcome, echo) = go(plan(&url, 6, 0.8, Some(&offer)), json_echo());
    assert_clean_echo(&outcome, &echo, 1024);
    assert_eq!(
        count(&outcome, "deflate declined"),
        6,
        "{:?}",
        outcome.counts
    );
    assert_eq!(count(&outcome, "deflate agreed"), 0);
    let (sent, received) = ratios(&outcome.bytes);
    assert!(sent >= 1.0 && received >= 1.0, "{:?}", outcome.bytes);
    engine.shutdown();
    engine.join().unwrap();
}

#[test]
fn without_deflate_the_wire_carries_each_payload_and_its_header() {
    // A server ready to compress, not asked to.
    let engine = server(shared());
    let url = echo_url(engine.local_addrs()[0]);
    let (outcome, echo) = go(plan(&url, 5, 0.8, None), json_echo());
    assert_clean_echo(&outcome, &echo, 1024);
    assert!(!outcome.counts.keys().any(|k| k.starts_with("deflate")));
    let bytes = outcome.bytes;
    // Ours: 2 + 2 (length) + 4 (mask) header bytes; the server's: 2 + 2.
    // Frames still queued or half read when the run ended are not counted
    // as payload.
    let in_flight = 5 * 2;
    assert_eq!(bytes.wire_sent % 1032, 0, "{bytes:?}");
    assert!(bytes.wire_sent <= echo.sent * 1032, "{bytes:?}");
    assert!(
        bytes.wire_sent >= (echo.sent - in_flight) * 1032,
        "{bytes:?}"
    );
    assert!(bytes.wire_received >= echo.echoed * 1028, "{bytes:?}");
    assert!(
        bytes.wire_received < (echo.echoed + in_flight) * 1028,
        "{bytes:?}"
    );
    engine.shutdown();
    engine.join().unwrap();
}

#[test]
fn held_connections_agree_and_their_pings_are_wire_bytes_only() {
    let engine = server(shared());
    let url = echo_url(engine.local_addrs()[0]);
    let offer = offer(ClientDeflate::default());
    let (outcome, hold) = go(
        plan(&url, 20, 1.0, Some(&offer)),
        Hold::new(Duration::from_millis(200)),
    );
    assert_eq!(outcome.alive_at_end, 20, "{:?}", outcome.errors);
    assert_eq!(count(&outcome, "deflate agreed"), 20);
    assert!(hold.pings.pongs >= 20);
    let bytes = outcome.bytes;
    assert_eq!((bytes.payload_sent, bytes.payload_received), (0, 0));
    // Ping "alive?": 2 + 4 (mask) + 6; its pong 2 + 6.
    assert_eq!(bytes.wire_received, 8 * hold.pings.pongs, "{bytes:?}");
    assert_eq!(bytes.wire_sent % 12, 0, "{bytes:?}");
    assert!(bytes.wire_sent >= 12 * hold.pings.pongs && bytes.wire_sent <= 12 * hold.pings.sent);
    engine.shutdown();
    engine.join().unwrap();
}

#[test]
fn held_connections_talk_once_first_and_hold_on() {
    let engine = server(Some(Compression::dedicated(9)));
    let url = echo_url(engine.local_addrs()[0]);
    let offer = offer(ClientDeflate::default());
    let (outcome, hold) = go(
        plan(&url, 20, 1.0, Some(&offer)),
        Hold::new(Duration::ZERO).with_first_message(512),
    );
    assert_eq!(outcome.alive_at_end, 20, "{:?}", outcome.errors);
    assert_eq!(hold.firsts_echoed, 20);
    let bytes = outcome.bytes;
    assert_eq!(
        (bytes.payload_sent, bytes.payload_received),
        (20 * 512, 20 * 512)
    );
    // Compressed both ways.
    assert!(bytes.wire_sent < bytes.payload_sent / 2, "{bytes:?}");
    assert!(
        bytes.wire_received < bytes.payload_received / 2,
        "{bytes:?}"
    );
    let stats = engine.handle().stats();
    let compressed: u64 = stats.iter().map(|s| s.deflate_messages_out()).sum();
    assert_eq!(compressed, 20);
    engine.shutdown();
    engine.join().unwrap();
}

#[test]
fn over_tls_the_frames_are_counted_before_encryption() {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
    .unwrap();
    let engine = Engine::builder()
        .listen_tls("127.0.0.1:0".parse().unwrap(), Arc::new(config))
        .workers(2)
        .pin(false)
        .config(EngineConfig {
            compression: shared(),
            ..EngineConfig::default()
        })
        .start(|_| EchoHandler)
        .unwrap();
    let url = format!("wss://{}/echo", engine.local_addrs()[0]);
    let insecure = TlsConfig::insecure().unwrap();
    let offer = offer(ClientDeflate::default());
    for deflate in [Some(&offer), None] {
        let mut plan = plan(&url, 4, 1.0, deflate);
        plan.targets[0].secure_with(Some(&insecure), None);
        let (outcome, echo) = go(plan, json_echo());
        assert_clean_echo(&outcome, &echo, 1024);
        let (sent, received) = ratios(&outcome.bytes);
        match deflate {
            Some(_) => {
                assert_eq!(count(&outcome, "deflate agreed"), 4);
                assert!(sent < 0.5 && received < 0.5, "{:?}", outcome.bytes);
            }
            // TLS's records would add more than frame headers do.
            None => assert!(
                (1.0..1.01).contains(&sent) && (1.0..1.01).contains(&received),
                "{:?}",
                outcome.bytes
            ),
        }
    }
    engine.shutdown();
    engine.join().unwrap();
}

/// A TCP server that upgrades every connection, its 101 with
/// `Sec-WebSocket-Extensions: {extensions}` (none if empty), then sends
/// `frames`, on its own thread for `lifetime`.
fn fake_server(extensions: &'static str, frames: &'static [u8], lifetime: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let end = Instant::now() + lifetime;
        let mut held = Vec::new();
        while Instant::now() < end {
            let Ok((mut stream, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            stream.set_nonblocking(false).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(1)))
                .unwrap();
            let mut buf = [0u8; 4096];
            let n = stream.read(&mut buf).unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]).to_string();
            let key = request
                .lines()
                .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
                .unwrap_or("")
                .trim()
                .to_string();
            let accept = accept_key(key.as_bytes());
            let mut answer = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
                String::from_utf8_lossy(&accept)
            );
            if !extensions.is_empty() {
                answer += &format!("Sec-WebSocket-Extensions: {extensions}\r\n");
            }
            answer += "\r\n";
            let _ = stream.write_all(answer.as_bytes());
            let _ = stream.write_all(frames);
            held.push(stream);
        }
    });
    addr
}

fn only_error(outcome: &Outcome) -> String {
    assert_eq!(outcome.errors.len(), 1, "{:?}", outcome.errors);
    outcome.errors.keys().next().unwrap().clone()
}

#[test]
fn an_answer_that_breaks_rfc_7692_fails_the_connection_with_why() {
    let default = ClientDeflate::default();
    let asking = ClientDeflate {
        server_max_window_bits: 10,
        ..ClientDeflate::default()
    };
    for (params, answer, why) in [
        (
            default,
            "permessage-deflate; server_max_window_bits=16",
            "server's permessage-deflate answer: an unknown, repeated or malformed parameter",
        ),
        (
            default,
            "permessage-deflate; client_max_window_bits",
            "server's permessage-deflate answer: client_max_window_bits without a value",
        ),
        (
            default,
            "permessage-deflate, permessage-deflate",
            "server's permessage-deflate answer: accepted more than once",
        ),
        (
            asking,
            "permessage-deflate",
            "server's permessage-deflate answer: server_max_window_bits was asked for",
        ),
    ] {
        let addr = fake_server(answer, b"", Duration::from_secs(3));
        let offer = offer(params);
        let (outcome, _) = go(
            plan(&echo_url(addr), 3, 2.0, Some(&offer)),
            Hold::new(Duration::ZERO),
        );
        assert_eq!(only_error(&outcome), why, "{answer}");
        assert_eq!(outcome.errors[why], 3);
        assert_eq!(count(&outcome, "connections opened"), 0);
        assert_eq!(count(&outcome, "deflate agreed"), 0);
    }
}

#[test]
fn a_compressed_message_without_agreement_is_a_protocol_error() {
    // A text frame with RSV1 set: "Hello" compressed (RFC 7692 §7.2.3.1),
    // sent to a client whose server agreed to no extension.
    const FRAME: &[u8] = &[0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    let addr = fake_server("", FRAME, Duration::from_secs(3));
    let offer = offer(ClientDeflate::default());
    let (outcome, _) = go(
        plan(&echo_url(addr), 2, 1.0, Some(&offer)),
        Hold::new(Duration::ZERO),
    );
    assert_eq!(count(&outcome, "deflate declined"), 2);
    let why = only_error(&outcome);
    assert!(why.starts_with("protocol: "), "{why}");

    // The same frame where permessage-deflate was agreed is a message.
    let addr = fake_server("permessage-deflate", FRAME, Duration::from_secs(3));
    let (outcome, _) = go(
        plan(&echo_url(addr), 2, 1.0, Some(&offer)),
        Hold::new(Duration::ZERO),
    );
    assert_eq!(count(&outcome, "deflate agreed"), 2);
    // Hold expects none: the message arrived, inflated, as "Hello".
    assert_eq!(only_error(&outcome), "unexpected message");
    assert_eq!(outcome.bytes.payload_received, 2 * 5);
    assert_eq!(outcome.bytes.wire_received, 2 * FRAME.len() as u64);
}

/// A broadcast room on the engine's pub/sub: each binary message to every
/// other member, compressed once per publication where they agreed.
struct Room;

impl Handler for Room {
    type State = ();
    fn upgrade(&mut self, _: &Upgrade<'_>, _: Peer) -> Result<Accept<()>, Reject> {
        Ok(Accept::new(()))
    }
    fn open(&mut self, conn: &mut Conn<'_, ()>) {
        conn.subscribe("room");
    }
    fn message(&mut self, conn: &mut Conn<'_, ()>, message: Message) {
        if let Message::Binary(data) = message {
            conn.publish_to_others("room", &Publication::binary(&data));
        }
    }
}

#[test]
fn fanout_deliveries_inflate_and_check() {
    let engine = Engine::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .workers(2)
        .pin(false)
        .config(EngineConfig {
            compression: shared(),
            ..EngineConfig::default()
        })
        .start(|_| Room)
        .unwrap();
    let fanout = Fanout::new(FanoutConfig {
        size: 512,
        rate: 200.0,
        duration: Duration::from_millis(800),
        drain: Duration::from_millis(500),
        ready_timeout: Duration::from_secs(5),
        ..FanoutConfig::broadcast(12, 2)
    })
    .unwrap();
    let offer = offer(ClientDeflate::default());
    let url = format!("ws://{}/room", engine.local_addrs()[0]);
    let plan = plan(&url, 0, 0.0, Some(&offer));
    let (outcome, report) = fanout
        .run(plan, 2, Arc::new(AtomicBool::new(false)))
        .unwrap();
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(count(&outcome, "deflate agreed"), 12);
    assert!(report.deliveries_received > 500, "{report:?}");
    assert_eq!(report.deliveries_received, report.deliveries_expected);
    assert!(report.clean(), "{report:?}");
    let (sent, received) = ratios(&outcome.bytes);
    assert!(sent < 1.0 && received < 1.0, "{:?}", outcome.bytes);
    engine.shutdown();
    engine.join().unwrap();
}

#[test]
fn the_cli_reports_agreement_and_both_byte_counts() {
    let engine = server(shared());
    let url = echo_url(engine.local_addrs()[0]);
    let json =
        std::env::temp_dir().join(format!("uringws-load-deflate-{}.json", std::process::id()));
    let mut reports = Vec::new();
    for deflate in [true, false] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_uringws-load"));
        command.args([
            "--quiet",
            "--workers",
            "1",
            "--json",
            json.to_str().unwrap(),
        ]);
        if deflate {
            command.args(["--deflate", "--deflate-client-max-window-bits", "12"]);
        }
        command.args(["echo", &url, "-n", "4", "--duration", "0.7"]);
        command.args(["--size", "1024", "--payload", "json"]);
        let output = command.output().expect("uringws-load runs");
        let table = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(output.status.success(), "{table}");
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(report["options"]["deflate"], deflate);
        assert_eq!(
            table.contains("deflate agreed on 4 of 4 connections"),
            deflate,
            "{table}"
        );
        assert!(table.contains("on the wire (frames)"), "{table}");
        reports.push(report);
    }
    let _ = std::fs::remove_file(&json);
    let (with, without) = (&reports[0], &reports[1]);
    assert_eq!(with["counts"]["deflate agreed"], 4);
    assert!(without["counts"].get("deflate agreed").is_none());
    for side in ["sent", "received"] {
        let ratio = |r: &serde_json::Value| {
            r["bytes"][format!("wire_per_payload_{side}")]
                .as_f64()
                .unwrap()
        };
        assert!(ratio(with) < 0.5, "{side}: {}", with["bytes"]);
        assert!(ratio(without) >= 1.0, "{side}: {}", without["bytes"]);
    }
    engine.shutdown();
    engine.join().unwrap();
}

/// The `uringws` binary: `TEST_URINGWS_BIN`, or the one built next to
/// this test (as `cargo test --workspace` builds it).
fn uringws_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("TEST_URINGWS_BIN") {
        return Some(path.into());
    }
    let next_to_us = PathBuf::from(env!("CARGO_BIN_EXE_uringws-load")).with_file_name("uringws");
    next_to_us.exists().then_some(next_to_us)
}

/// The binary on a free port, killed on drop.
struct Uringws(Child, SocketAddr);

impl Uringws {
    fn start(binary: &PathBuf, args: &[&str]) -> Uringws {
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap();
        let child = Command::new(binary)
            .args(["--listen", &addr.to_string(), "--workers", "1", "--no-pin"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("uringws starts");
        let server = Uringws(child, addr);
        let until = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < until, "uringws listening on {addr}");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }
}

impl Drop for Uringws {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn against_the_uringws_binary() {
    let Some(binary) = uringws_binary() else {
        eprintln!(
            "skipped: no uringws binary (cargo build -p uringws-server, or set TEST_URINGWS_BIN)"
        );
        return;
    };
    let offer = offer(ClientDeflate::default());
    for (args, agreed) in [
        (&["--compression", "shared"][..], 6),
        (&["--compression", "dedicated"][..], 6),
        (&["--compression", "off"][..], 0),
    ] {
        let server = Uringws::start(&binary, args);
        let url = echo_url(server.1);
        let (outcome, echo) = go(plan(&url, 6, 1.0, Some(&offer)), json_echo());
        assert_clean_echo(&outcome, &echo, 1024);
        assert_eq!(count(&outcome, "deflate agreed"), agreed, "{args:?}");
        assert_eq!(count(&outcome, "deflate declined"), 6 - agreed, "{args:?}");
        let (sent, received) = ratios(&outcome.bytes);
        eprintln!("uringws {args:?}: 1 KiB JSON echo, wire/payload {sent:.3} sent, {received:.3} received");
        if agreed > 0 {
            assert!(
                sent < 0.5 && received < 0.5,
                "{args:?}: {:?}",
                outcome.bytes
            );
        } else {
            assert!(
                sent >= 1.0 && received >= 1.0,
                "{args:?}: {:?}",
                outcome.bytes
            );
        }
    }
}
