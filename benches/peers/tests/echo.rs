//! Each peer binary, started for real on a loopback port, echoes text and
//! binary messages byte for byte, sends a fragmented message back whole,
//! answers a ping and a close. The client is uringws-protocol's client role
//! over a blocking socket, so nothing but the peers is built for this.
//!
//! The uWebSockets peer (`uws/server.js`) is checked the same way, plus its
//! broadcast route, where Node.js and its `npm ci` install are there; the
//! test says so and passes where they are not, as compare.py skips it.

use bytes::BytesMut;
use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};
use uringws_protocol::{
    close::CloseFrame,
    encoder::write_client_frame,
    handshake::{ClientHandshake, ClientRequest},
    CloseCode, Decoder, DecoderConfig, FrameHeader, Message, OpCode, Role,
};

/// Bounds every wait: start-up, each read and each write.
const TIMEOUT: Duration = Duration::from_secs(10);
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A running peer, killed when the test ends, even by a failed assertion.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `binary` on a port that was free a moment ago and waits until it
/// accepts connections.
fn start(binary: &str) -> Server {
    start_with(binary, &[])
}

/// Starts `program` with `args` first (a script for an interpreter, which
/// then names the server in messages, or options of the peer's own).
fn start_with(program: &str, args: &[&str]) -> Server {
    let binary = match (program, args.last()) {
        ("node", Some(script)) => script,
        _ => program,
    };
    let addr = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port");
    let child = Command::new(program)
        .args(args)
        .args(["--listen", &addr.to_string(), "--threads", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the peer");
    let mut server = Server { child, addr };
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return server;
        }
        if let Some(status) = server.child.try_wait().expect("peer status") {
            panic!("{binary} exited with {status} before accepting");
        }
        assert!(
            Instant::now() < deadline,
            "{binary} never accepted on {addr}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// A socket, plain or wrapped in a TLS client.
trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

/// A client connection: the stream, the bytes read but not yet decoded, and
/// the decoder.
struct Client {
    stream: Box<dyn Stream>,
    buf: BytesMut,
    decoder: Decoder,
}

fn tcp(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect");
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
    stream
}

impl Client {
    fn connect(addr: SocketAddr, path: &str) -> Client {
        Client::upgrade(Box::new(tcp(addr)), addr, path)
    }

    fn upgrade(stream: Box<dyn Stream>, addr: SocketAddr, path: &str) -> Client {
        let mut client = Client {
            stream,
            buf: BytesMut::new(),
            decoder: Decoder::new(Role::Client, DecoderConfig::default()),
        };
        let host = addr.to_string();
        let (handshake, request) =
            ClientHandshake::new(&ClientRequest::new(&host, path)).expect("request");
        client.stream.write_all(&request).expect("send request");
        loop {
            client.read_more();
            if let Some(response) = handshake.parse_response(&client.buf).expect("a 101") {
                // Frames the server sent right after its answer stay.
                let _ = client.buf.split_to(response.head_len());
                return client;
            }
        }
    }

    fn read_more(&mut self) {
        let mut chunk = [0u8; 64 << 10];
        let n = self
            .stream
            .read(&mut chunk)
            .expect("read within the timeout");
        assert!(n > 0, "server closed the connection");
        self.buf.extend_from_slice(&chunk[..n]);
    }

    fn send(&mut self, opcode: OpCode, fin: bool, payload: &[u8]) {
        let mut out = BytesMut::new();
        write_client_frame(&mut out, opcode, fin, payload, MASK).expect("frame");
        self.stream.write_all(&out).expect("send frame");
    }

    /// The header of the next frame, before it is decoded: whether the
    /// server sent a message in one frame.
    fn peek_header(&mut self) -> FrameHeader {
        loop {
            if let Some((header, _)) = FrameHeader::parse(&self.buf).expect("header") {
                return header;
            }
            self.read_more();
        }
    }

    fn receive(&mut self) -> Message {
        loop {
            if let Some(message) = self.decoder.decode(&mut self.buf).expect("valid frames") {
                return message;
            }
            self.read_more();
        }
    }
}

/// A payload that catches reordered, dropped or repeated bytes.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

fn check_echo(binary: &str) {
    check_echo_on(start(binary), binary);
}

fn check_echo_on(server: Server, binary: &str) {
    check_echo_with(Client::connect(server.addr, "/echo"), binary);
}

fn check_echo_with(mut client: Client, binary: &str) {
    let text = "héllo, echo ✓";
    client.send(OpCode::Text, true, text.as_bytes());
    match client.receive() {
        Message::Text(echo) => assert_eq!(echo.as_str(), text),
        other => panic!("{binary}: text came back as {other:?}"),
    }

    let binary_payload = pattern(100 << 10);
    client.send(OpCode::Binary, true, &binary_payload);
    match client.receive() {
        Message::Binary(echo) => assert!(echo[..] == binary_payload[..], "{binary}: binary"),
        other => panic!("{binary}: binary came back as {other:?}"),
    }

    client.send(OpCode::Ping, true, b"are you there");
    assert_eq!(client.receive(), Message::Pong("are you there".into()));

    client.send(OpCode::Close, true, &[0x03, 0xe8]);
    match client.receive() {
        Message::Close(Some(CloseFrame { code, .. })) => assert_eq!(code, CloseCode::NORMAL),
        other => panic!("{binary}: close answered with {other:?}"),
    }
}

fn check_fragmented(binary: &str) {
    check_fragmented_on(start(binary), binary);
}

fn check_fragmented_on(server: Server, binary: &str) {
    let mut client = Client::connect(server.addr, "/");
    let payload = pattern(3000);
    client.send(OpCode::Binary, false, &payload[..1000]);
    // A ping between fragments is answered at once (RFC 6455 §5.4).
    client.send(OpCode::Ping, true, b"mid");
    client.send(OpCode::Continuation, false, &payload[1000..2000]);
    client.send(OpCode::Continuation, true, &payload[2000..]);

    assert_eq!(client.receive(), Message::Pong("mid".into()));
    let header = client.peek_header();
    assert!(
        header.fin && header.opcode == OpCode::Binary && header.payload_len == 3000,
        "{binary}: the fragmented message came back as {header:?}, not as one frame"
    );
    match client.receive() {
        Message::Binary(echo) => assert!(echo[..] == payload[..], "{binary}: fragmented"),
        other => panic!("{binary}: fragmented binary came back as {other:?}"),
    }
}

/// The wss:// peer.
#[test]
fn tungstenite_over_rustls_echoes() {
    check_tls_echo(env!("CARGO_BIN_EXE_peer-tungstenite-tls"));
}

/// `binary` serving wss:// with a certificate made now, through a rustls
/// client that trusts it.
fn check_tls_echo(binary: &str) {
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    // One directory per peer: the tests run at once.
    let peer = std::path::Path::new(binary)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("peer");
    let dir = std::env::temp_dir().join(format!("uringws-{peer}-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).expect("cert file");
    std::fs::write(&key_path, key.serialize_pem()).expect("key file");
    let files = [
        "--tls-cert",
        cert_path.to_str().expect("path"),
        "--tls-key",
        key_path.to_str().expect("path"),
    ];
    let server = start_with(binary, &files);

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der().clone()).expect("root");
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let tls = rustls::ClientConnection::new(std::sync::Arc::new(config), name).expect("client");
    let stream = rustls::StreamOwned::new(tls, tcp(server.addr));
    check_echo_with(
        Client::upgrade(Box::new(stream), server.addr, "/echo"),
        binary,
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn tungstenite_echoes() {
    check_echo(env!("CARGO_BIN_EXE_peer-tungstenite"));
    check_fragmented(env!("CARGO_BIN_EXE_peer-tungstenite"));
}

#[test]
fn fastwebsockets_echoes() {
    check_echo(env!("CARGO_BIN_EXE_peer-fastwebsockets"));
    check_fragmented(env!("CARGO_BIN_EXE_peer-fastwebsockets"));
}

#[test]
fn tokio_websockets_echoes() {
    check_echo(env!("CARGO_BIN_EXE_peer-tokio-websockets"));
    check_fragmented(env!("CARGO_BIN_EXE_peer-tokio-websockets"));
}

#[test]
fn tokio_uring_echoes() {
    check_echo(env!("CARGO_BIN_EXE_peer-tokio-uring"));
    check_fragmented(env!("CARGO_BIN_EXE_peer-tokio-uring"));
}

/// `uws/server.js`, when Node.js and the npm install are there.
fn uws_script() -> Option<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/uws");
    let installed = std::path::Path::new(dir)
        .join("node_modules/uwebsockets/package.json")
        .exists();
    let node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if installed && node {
        Some(format!("{dir}/server.js"))
    } else {
        eprintln!("uws peer skipped: needs node and `npm ci` in {dir}");
        None
    }
}

#[test]
fn uws_echoes() {
    let Some(script) = uws_script() else { return };
    check_echo_on(start_with("node", &[&script]), &script);
    check_fragmented_on(start_with("node", &[&script]), &script);
}

#[test]
fn uws_broadcasts_to_the_others() {
    let Some(script) = uws_script() else { return };
    let server = start_with("node", &[&script]);
    let mut clients: Vec<Client> = (0..3)
        .map(|_| Client::connect(server.addr, "/broadcast"))
        .collect();
    // A subscription is made when the upgrade completes on the server,
    // which may be after the client has read its 101: a round trip through
    // every connection proves all are subscribed before the real publish.
    for (i, client) in clients.iter_mut().enumerate() {
        client.send(OpCode::Ping, true, &[i as u8]);
        assert_eq!(client.receive(), Message::Pong(vec![i as u8].into()));
    }
    clients[0].send(OpCode::Text, true, b"to all");
    for i in [1, 2] {
        match clients[i].receive() {
            Message::Text(text) => assert_eq!(text.as_str(), "to all"),
            other => panic!("client {i}: broadcast text came as {other:?}"),
        }
    }
    clients[2].send(OpCode::Binary, true, &[1, 2, 3]);
    for i in [0, 1] {
        let message = clients[i].receive();
        assert_eq!(message, Message::Binary(vec![1, 2, 3].into()), "client {i}");
    }
    // Neither sender got its own message back: a ping's pong is the next
    // thing each receives.
    for i in [0, 2] {
        clients[i].send(OpCode::Ping, true, b"after");
        assert_eq!(
            clients[i].receive(),
            Message::Pong("after".into()),
            "client {i} got its own message back"
        );
    }
}

/// C++ uWebSockets, where `uws-cpp/build.sh` built it (it needs g++ and
/// OpenSSL's headers, which a machine may not have): the test says so and
/// passes where it is not, as compare.py skips it.
fn uws_cpp() -> Option<String> {
    let binary = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../target/release/peer-uws-cpp"
    );
    if std::path::Path::new(binary).exists() {
        Some(binary.to_string())
    } else {
        eprintln!("uws-cpp peer skipped: run benches/peers/uws-cpp/build.sh");
        None
    }
}

#[test]
fn uws_cpp_echoes() {
    let Some(binary) = uws_cpp() else { return };
    check_echo(&binary);
    check_fragmented(&binary);
    check_tls_echo(&binary);
}

/// The io_uring build, where build.sh made it (it needs liburing's
/// headers). Small messages on one connection only: that backend fails
/// larger ones, which is why compare.py runs it at 64 B × 1 only.
#[test]
fn uws_cpp_on_io_uring_echoes_small_messages() {
    let Some(epoll) = uws_cpp() else { return };
    let binary = format!("{epoll}-uring");
    if !std::path::Path::new(&binary).exists() {
        eprintln!("uws-cpp-uring peer skipped: run benches/peers/uws-cpp/build.sh");
        return;
    }
    let server = start(&binary);
    let mut client = Client::connect(server.addr, "/echo");
    for i in 0..100 {
        let text = format!("message {i} ✓");
        client.send(OpCode::Text, true, text.as_bytes());
        match client.receive() {
            Message::Text(echo) => assert_eq!(echo.as_str(), text),
            other => panic!("{binary}: text came back as {other:?}"),
        }
    }
    let payload = pattern(64);
    client.send(OpCode::Binary, true, &payload);
    assert_eq!(client.receive(), Message::Binary(payload.into()));
    client.send(OpCode::Ping, true, b"are you there");
    assert_eq!(client.receive(), Message::Pong("are you there".into()));
}
