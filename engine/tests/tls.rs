//! wss: TLS listeners beside plain ones, with certificates made at test
//! time. Real rustls clients (through tokio-rustls) against the engine's
//! sans-IO TLS layer.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::{net::SocketAddr, sync::Arc, time::Duration};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tokio_rustls::{client::TlsStream, TlsConnector};
use tokio_tungstenite::{tungstenite::Message as WsMessage, WebSocketStream};
use uringws_engine::{Engine, EngineConfig, EngineHandle, WorkerContext, WorkerStats};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A test CA and a server certificate it signed for `localhost`.
struct Pki {
    ca: CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

fn pki() -> Pki {
    pki_valid(true)
}

/// With `valid` false, the server certificate expired years ago.
fn pki_valid(valid: bool) -> Pki {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "uringws test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA cert");
    let key = rcgen::KeyPair::generate().expect("server key");
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    if !valid {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let cert = params.signed_by(&key, &ca).expect("server cert");
    Pki {
        ca: ca.der().clone(),
        chain: vec![cert.der().clone()],
        key: PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    }
}

fn server_config(pki: &Pki) -> Arc<rustls::ServerConfig> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(pki.chain.clone(), pki.key.clone_key())
        .expect("certificate");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

fn client_config(
    pki: &Pki,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca.clone()).expect("CA");
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// An echo engine with a plain and a TLS listener.
struct Servers {
    engine: Option<Engine>,
    plain: SocketAddr,
    tls: SocketAddr,
    recorder: Arc<Recorder>,
}

impl Servers {
    fn start(config: EngineConfig, pki: &Pki) -> Servers {
        let recorder = Arc::new(Recorder::default());
        let rec = recorder.clone();
        let engine = Engine::builder()
            .listen("127.0.0.1:0".parse().unwrap())
            .listen_tls("127.0.0.1:0".parse().unwrap(), server_config(pki))
            .workers(2)
            .pin(false)
            .config(config)
            .start(move |context: &WorkerContext| Echo {
                worker: context.worker,
                recorder: rec.clone(),
                hooks: Hooks::default(),
            })
            .expect("engine starts");
        let (plain, tls) = (engine.local_addrs()[0], engine.local_addrs()[1]);
        Servers {
            engine: Some(engine),
            plain,
            tls,
            recorder,
        }
    }

    fn handle(&self) -> EngineHandle {
        self.engine.as_ref().expect("running").handle()
    }

    /// A counter of the workers' stats, summed over them.
    fn total(&self, counter: fn(&WorkerStats) -> u64) -> u64 {
        self.handle().stats().iter().map(|s| counter(s)).sum()
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        if let Some(engine) = self.engine.take() {
            engine.handle().shutdown();
            let _ = engine.join();
        }
    }
}

type Wss = WebSocketStream<TlsStream<TcpStream>>;

async fn tls_connect(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").expect("name");
    TlsConnector::from(config).connect(name, tcp).await
}

async fn wss_connect(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> Wss {
    let tls = within(WAIT, "TLS handshake", tls_connect(addr, config))
        .await
        .expect("TLS handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (ws, response) = within(
        WAIT,
        "websocket upgrade over TLS",
        tokio_tungstenite::client_async("wss://localhost/", tls),
    )
    .await
    .expect("websocket handshake");
    assert_eq!(response.status(), 101);
    ws
}

async fn echo(ws: &mut Wss, message: WsMessage) {
    within(WAIT, "send", ws.send(message.clone()))
        .await
        .expect("send");
    loop {
        let got = within(WAIT, "echo", ws.next())
            .await
            .expect("stream open")
            .expect("no error");
        match got {
            WsMessage::Ping(_) | WsMessage::Pong(_) => continue,
            got => {
                assert!(got == message, "echo differs from what was sent");
                return;
            }
        }
    }
}

/// Closes with 1000, reads the server's close, then checks that the TLS
/// stream ends with the server's close_notify (a clean end of stream: a
/// rustls client reports an end without it as an error).
async fn close_cleanly(mut ws: Wss) {
    within(WAIT, "close", ws.close(None))
        .await
        .expect("close sent");
    loop {
        match within(WAIT, "close reply", ws.next()).await {
            Some(Ok(WsMessage::Close(_))) | None => break,
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("error before the close reply: {e}"),
        }
    }
    let mut tls = ws.into_inner();
    let mut rest = Vec::new();
    let read = within(WAIT, "end of the TLS stream", tls.read_to_end(&mut rest)).await;
    assert!(
        read.is_ok(),
        "the server ended TLS with close_notify: {read:?}"
    );
    assert!(rest.is_empty(), "nothing after the close: {rest:?}");
}

#[tokio::test]
async fn wss_echoes_text_and_binary_and_closes_with_close_notify() {
    let pki = pki();
    let servers = Servers::start(test_config(), &pki);
    let mut ws = wss_connect(servers.tls, client_config(&pki, &[&rustls::version::TLS13])).await;
    echo(&mut ws, WsMessage::text("hello over TLS")).await;
    echo(&mut ws, WsMessage::binary(vec![7u8; 300])).await;
    close_cleanly(ws).await;
    // The plain listener beside it is unaffected.
    ws_check_echo(servers.plain, "plain beside TLS").await;
    wait_until(WAIT, "both closes reported", || {
        servers.recorder.closes().len() >= 2
    })
    .await;
    // The handler saw which connection came through TLS, and its SNI name.
    let peers = servers.recorder.peers.lock().unwrap().clone();
    let seen: Vec<_> = peers
        .iter()
        .map(|(_, p)| (p.tls, p.server_name.as_deref().map(str::to_owned)))
        .collect();
    assert_eq!(seen, [(true, Some("localhost".to_owned())), (false, None)]);
}

#[tokio::test]
async fn wss_over_tls12_too() {
    let pki = pki();
    let servers = Servers::start(test_config(), &pki);
    let mut ws = wss_connect(servers.tls, client_config(&pki, &[&rustls::version::TLS12])).await;
    echo(&mut ws, WsMessage::text("hello over TLS 1.2")).await;
    close_cleanly(ws).await;
}

/// After the handshake our own record layer carries the connection; one
/// that goes quiet drops its expanded keys (the worker sweeps every
/// 250 ms) and makes them again for the next record; a client's key
/// update is followed and answered.
#[tokio::test]
async fn a_quiet_connection_and_a_key_update_keep_working() {
    let pki = pki();
    let servers = Servers::start(test_config(), &pki);
    let mut tls13 = wss_connect(servers.tls, client_config(&pki, &[&rustls::version::TLS13])).await;
    let mut tls12 = wss_connect(servers.tls, client_config(&pki, &[&rustls::version::TLS12])).await;
    for ws in [&mut tls13, &mut tls12] {
        echo(ws, WsMessage::text("before the quiet")).await;
    }
    let keyed = || servers.total(WorkerStats::tls_keyed_connections);
    assert_eq!(keyed(), 2, "busy: both hold expanded keys");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(keyed(), 0, "quiet: both dropped them");
    for ws in [&mut tls13, &mut tls12] {
        echo(ws, WsMessage::text("after the quiet")).await;
    }
    for round in 0..3 {
        let (_, client) = tls13.get_mut().get_mut();
        client.refresh_traffic_keys().expect("key update");
        echo(&mut tls13, WsMessage::text(format!("new keys {round}"))).await;
    }
    close_cleanly(tls13).await;
    close_cleanly(tls12).await;
}

/// Messages larger than a record and than a send's worth of records, in
/// both directions, and many small ones in a burst.
#[tokio::test]
async fn wss_carries_large_messages_and_bursts() {
    let pki = pki();
    let servers = Servers::start(test_config(), &pki);
    let mut ws = wss_connect(servers.tls, client_config(&pki, &[&rustls::version::TLS13])).await;
    for size in [16 << 10, (16 << 10) + 1, 100_000, 1 << 20] {
        let payload: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
        echo(&mut ws, WsMessage::binary(payload)).await;
    }
    for i in 0..200 {
        ws.feed(WsMessage::text(format!("burst {i}")))
            .await
            .expect("feed");
    }
    ws.flush().await.expect("flush");
    for i in 0..200 {
        let got = within(WAIT, "burst echo", ws.next())
            .await
            .expect("open")
            .expect("ok");
        assert_eq!(got, WsMessage::text(format!("burst {i}")));
    }
    close_cleanly(ws).await;
    let _ = servers.handle();
}

/// Reads what the server sends until it closes, for at most `limit`.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Vec<u8> {
    let mut got = Vec::new();
    let _ = within(limit, "the server closes", stream.read_to_end(&mut got)).await;
    got
}

/// The records of a TLS 1.3 ClientHello for `localhost`.
fn client_hello(pki: &Pki) -> Vec<u8> {
    let mut hello = Vec::new();
    let mut client = rustls::ClientConnection::new(
        client_config(pki, &[&rustls::version::TLS13]),
        ServerName::try_from("localhost").expect("name"),
    )
    .expect("client");
    client.write_tls(&mut hello).expect("hello");
    hello
}

/// A TLS alert record: content type 21.
fn is_alert(bytes: &[u8]) -> bool {
    bytes.first() == Some(&21)
}

#[tokio::test]
async fn plain_http_garbage_and_truncated_hellos_to_a_tls_port_are_refused_alone() {
    let pki = pki();
    let config = EngineConfig {
        handshake_timeout: Duration::from_millis(500),
        ..test_config()
    };
    let servers = Servers::start(config, &pki);
    // A wss client that stays connected through all of it.
    let mut ws = wss_connect(servers.tls, client_config(&pki, &[&rustls::version::TLS13])).await;

    // A plain WebSocket upgrade sent to the TLS port.
    let mut plain = TcpStream::connect(servers.tls).await.expect("connect");
    plain
        .write_all(upgrade_request("/").as_bytes())
        .await
        .expect("write");
    let answer = read_until_closed(&mut plain, WAIT).await;
    assert!(
        is_alert(&answer),
        "an alert, not an HTTP answer: {answer:?}"
    );

    // Random bytes.
    let mut garbage = TcpStream::connect(servers.tls).await.expect("connect");
    let noise: Vec<u8> = (0..512u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    garbage.write_all(&noise).await.expect("write");
    let answer = read_until_closed(&mut garbage, WAIT).await;
    assert!(answer.is_empty() || is_alert(&answer), "{answer:?}");

    // The start of a ClientHello, then silence: closed by the handshake
    // timeout.
    let hello = client_hello(&pki);
    let mut truncated = TcpStream::connect(servers.tls).await.expect("connect");
    truncated
        .write_all(&hello[..hello.len() / 2])
        .await
        .expect("write");
    let started = std::time::Instant::now();
    let answer = read_until_closed(&mut truncated, WAIT).await;
    assert!(answer.is_empty(), "no answer to half a hello: {answer:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "closed by the timeout"
    );

    // A client that does not trust the server's certificate gives up; the
    // server sees the client's alert.
    let stranger = self::pki();
    let refused = tls_connect(
        servers.tls,
        client_config(&stranger, &[&rustls::version::TLS13]),
    )
    .await;
    assert!(
        refused.is_err(),
        "an unknown issuer is refused by the client"
    );

    // An expired certificate: the client refuses it, with an alert the
    // server counts.
    let expired = self::pki_valid(false);
    let stale = Servers::start(test_config(), &expired);
    let refused = tls_connect(
        stale.tls,
        client_config(&expired, &[&rustls::version::TLS13]),
    )
    .await;
    let error = refused.expect_err("an expired certificate is refused by the client");
    assert!(error.to_string().contains("xpired"), "{error}");
    wait_until(WAIT, "the expired one counted", || {
        stale.total(WorkerStats::tls_failures) == 1
    })
    .await;

    echo(&mut ws, WsMessage::text("still here")).await;
    wait_until(WAIT, "the failures counted", || {
        servers.total(WorkerStats::tls_failures) >= 3
    })
    .await;
    close_cleanly(ws).await;
}

/// A ClientHello and a malformed handshake record behind it, in one
/// write: rustls fails on the second while its handshake reader still
/// holds the first. The alert goes out and the worker serves on.
#[tokio::test]
async fn a_hello_with_a_bad_record_behind_it_gets_an_alert_and_the_worker_goes_on() {
    let pki = pki();
    let servers = Servers::start(test_config(), &pki);
    let mut hello = client_hello(&pki);
    // A handshake record (22) whose message claims more than it holds.
    hello.extend_from_slice(&[22, 3, 3, 0, 5, 1, 0xff, 0xff, 0xff, 0]);
    for _ in 0..3 {
        let mut stream = TcpStream::connect(servers.tls).await.expect("connect");
        stream.write_all(&hello).await.expect("write");
        // Its first flight and the alert, then the end of the stream.
        let answer = read_until_closed(&mut stream, WAIT).await;
        assert!(!answer.is_empty(), "no answer before the close");
    }
    wait_until(WAIT, "the failures counted", || {
        servers.total(WorkerStats::tls_failures) == 3
    })
    .await;
    let mut ws = wss_connect(servers.tls, client_config(&pki, &[&rustls::version::TLS13])).await;
    echo(&mut ws, WsMessage::text("still serving")).await;
    close_cleanly(ws).await;
}

/// A client that comes back with the session ticket it was given resumes,
/// and the worker counts full and resumed handshakes apart.
#[tokio::test]
async fn a_returning_client_resumes_and_handshakes_are_counted_by_kind() {
    let pki = pki();
    let servers = Servers::start(test_config(), &pki);
    // One client configuration, whose session store keeps the tickets.
    let config = client_config(&pki, &[&rustls::version::TLS13]);
    for round in 0..3 {
        let mut ws = wss_connect(servers.tls, config.clone()).await;
        let kind = ws.get_ref().get_ref().1.handshake_kind();
        let expected = if round == 0 {
            rustls::HandshakeKind::Full
        } else {
            rustls::HandshakeKind::Resumed
        };
        assert_eq!(kind, Some(expected), "round {round}");
        echo(&mut ws, WsMessage::text("again")).await;
        close_cleanly(ws).await;
    }
    wait_until(WAIT, "the handshakes counted", || {
        let full = servers.total(WorkerStats::tls_handshakes_full);
        let resumed = servers.total(WorkerStats::tls_handshakes_resumed);
        (full, resumed) == (1, 2)
    })
    .await;
}
