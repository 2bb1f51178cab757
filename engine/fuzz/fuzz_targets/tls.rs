//! A TLS connection's byte layer fed arbitrary records: a real rustls
//! client on one side, TLS 1.3 or 1.2 (its handshake, then arbitrary
//! application data it encrypts: request heads, frames, garbage; key
//! updates), arbitrary bytes injected into the stream at any point (before,
//! during and after the handshake, so into rustls's handshake and into our
//! record layer after it), sends completed in full or in part, time
//! passing, the end of the stream.
//!
//! Invariants: no panic; one send in flight at a time (the harness checks);
//! while nothing was injected, every byte the server sends is valid TLS to
//! the client (no error when it reads them); once the server is done with
//! a clean close, the client has seen its close_notify; nothing is sent
//! once the connection is done.
#![no_main]

use libfuzzer_sys::{arbitrary, arbitrary::Arbitrary, fuzz_target};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::{
    io::{Read, Write},
    sync::{Arc, OnceLock},
};
use uringws_engine::{
    fuzzing::{Answer, Event, Harness, Head, Script},
    protocol::http::Response,
    Conn, EngineConfig, Message,
};

#[derive(Arbitrary, Debug)]
enum Op {
    /// The client encrypts these bytes as application data.
    Send(Vec<u8>),
    /// These bytes go to the server as they are, amid the client's.
    Inject(Vec<u8>),
    /// The server receives the next bytes in the stream to it (up to this
    /// many; 0: all).
    Receive(u16),
    /// The server's send completes, in full or with this many bytes.
    Complete(Option<u16>),
    /// The client reads what the server sent so far.
    ClientRead,
    /// The client sends its close_notify.
    ClientClose,
    /// The client updates its key and asks for ours to be (TLS 1.3).
    KeyUpdate,
    Advance(u16),
    EndOfStream,
}

struct Pki {
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
    client12: Arc<rustls::ClientConfig>,
}

#[derive(Arbitrary, Debug)]
struct Input {
    tls12: bool,
    ops: Vec<Op>,
}

/// One CA and certificate for the whole run, made at start.
fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        let der: CertificateDer<'static> = cert.der().clone();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![der.clone()],
                PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .expect("server config");
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der).expect("root");
        let client = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        let client12 = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS12])
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Pki {
            server: Arc::new(server),
            client: Arc::new(client),
            client12: Arc::new(client12),
        }
    })
}

/// Upgrades every request that asks for it, answers 404 to the rest, and
/// echoes messages.
struct Echo;

impl Script for Echo {
    fn decide(&mut self, head: Head<'_>) -> Answer {
        match head {
            Head::Upgrade(upgrade) => match upgrade.response(None, None) {
                Ok(response) => Answer::Upgrade(response, None),
                Err(e) => Answer::Respond(Response::from(&e).encode()),
            },
            Head::Http { .. } => Answer::Respond(Response::text(404, "no").encode()),
            Head::Invalid(error) => Answer::Respond(Response::from(&error).encode()),
        }
    }

    fn open(&mut self, _: &mut Conn<'_, ()>) {}

    fn event(&mut self, conn: &mut Conn<'_, ()>, event: Event) {
        if let Event::Message(message) = event {
            match message {
                Message::Text(text) => {
                    conn.send_text(text);
                }
                Message::Binary(data) => {
                    conn.send_binary(data);
                }
            }
        }
    }
}

fuzz_target!(|input: Input| {
    let Input { tls12, ops } = input;
    let pki = pki();
    let config = EngineConfig {
        handshake_timeout: std::time::Duration::from_millis(500),
        ..EngineConfig::default()
    };
    let Ok(mut h) = Harness::with_tls(config, pki.server.clone(), 0) else {
        return;
    };
    let name = ServerName::try_from("localhost").expect("name");
    let config = if tls12 { &pki.client12 } else { &pki.client };
    let mut client = rustls::ClientConnection::new(config.clone(), name).expect("client");
    let mut script = Echo;
    // Bytes on their way to the server, and whether any were injected.
    let mut to_server: Vec<u8> = Vec::new();
    let mut injected = false;
    let mut key_updates = 0;
    let mut to_client: Vec<u8> = Vec::new();
    let mut client_failed = false;
    let mut now = 0u64;
    for op in ops.into_iter().take(64) {
        let done_before = h.is_done();
        match op {
            Op::Send(bytes) => {
                let _ = client.writer().write_all(&bytes);
            }
            Op::Inject(bytes) => {
                injected |= !bytes.is_empty();
                to_server.extend_from_slice(&bytes);
            }
            Op::Receive(max) => {
                let n = match usize::from(max) {
                    0 => to_server.len(),
                    max => max.min(to_server.len()),
                };
                if n > 0 && !h.is_shut() {
                    let bytes: Vec<u8> = to_server.drain(..n).collect();
                    h.receive(&bytes, &mut script);
                }
            }
            Op::Complete(part) => {
                if let Some(len) = h.flush() {
                    let result = part.map_or(len, |p| usize::from(p).min(len));
                    let wrote = h.complete(result as i32, &mut script);
                    assert!(!done_before || wrote.is_empty(), "sent after done");
                    to_client.extend_from_slice(&wrote);
                }
            }
            Op::ClientRead => {
                let mut reader = &to_client[..];
                while !reader.is_empty() && !client_failed {
                    match client.read_tls(&mut reader) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            if let Err(e) = client.process_new_packets() {
                                assert!(
                                    injected || client_failed,
                                    "the server sent what a client cannot read: {e}"
                                );
                                client_failed = true;
                            }
                        }
                    }
                }
                let used = to_client.len() - reader.len();
                to_client.drain(..used);
                let mut plain = Vec::new();
                let _ = client.reader().read_to_end(&mut plain);
            }
            Op::ClientClose => {
                // Mid-handshake a close_notify is an odd thing to get, and
                // the server may answer it with an alert.
                injected |= client.is_handshaking();
                client.send_close_notify();
            }
            // Refused before the handshake ends and in TLS 1.2.
            Op::KeyUpdate => {
                // More than 32 in a row are refused (as rustls refuses
                // them): past that many, counted loosely, an alert of the
                // server's is the client's doing.
                if client.refresh_traffic_keys().is_ok() {
                    key_updates += 1;
                    injected |= key_updates >= 32;
                }
            }
            Op::Advance(ms) => {
                now += u64::from(ms);
                h.set_now(now);
                h.run_timers(8, &mut script);
            }
            Op::EndOfStream => {
                if !h.is_shut() {
                    h.end_of_stream(&mut script);
                }
            }
        }
        // What the client wrote joins the stream to the server.
        while client.wants_write() {
            if client.write_tls(&mut to_server).is_err() {
                break;
            }
        }
        if h.is_done() && !h.is_shut() {
            h.teardown(&mut script);
        }
    }
});
