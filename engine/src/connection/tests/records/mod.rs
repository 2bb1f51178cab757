//! The TLS byte layer against a real rustls client, in memory: rustls's
//! handshake, then our record layer with its keys, for every suite it
//! takes over; records a client could forge with those keys are in
//! `forged`.

use crate::connection::{noting_server_names, records::Records, Tls};
use bytes::BytesMut;
use rustls::{
    crypto::ring::cipher_suite as suites,
    pki_types::{CertificateDer, PrivateKeyDer, ServerName},
    version::{TLS12, TLS13},
    AlertDescription, ClientConnection, Error, PeerMisbehaved, SupportedCipherSuite,
    SupportedProtocolVersion,
};
use std::{
    io::{Read, Write},
    sync::{Arc, OnceLock},
};
use uringws_protocol::OpCode;

mod forged;

const ALL: [SupportedCipherSuite; 6] = [
    suites::TLS13_AES_128_GCM_SHA256,
    suites::TLS13_AES_256_GCM_SHA384,
    suites::TLS13_CHACHA20_POLY1305_SHA256,
    suites::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    suites::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    suites::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
];

fn is_tls13(suite: SupportedCipherSuite) -> bool {
    suite.tls13().is_some()
}

/// One self-signed ECDSA certificate for all the tests.
fn certificate() -> &'static (CertificateDer<'static>, Vec<u8>) {
    static CERT: OnceLock<(CertificateDer<'static>, Vec<u8>)> = OnceLock::new();
    CERT.get_or_init(|| {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        (cert.der().clone(), key.serialize_der())
    })
}

/// A client and our server side, with the handshake done.
struct Pair {
    client: ClientConnection,
    server: Tls,
    /// Ciphertext the client wrote that the server has not read.
    to_server: Vec<u8>,
}

fn provider(suite: SupportedCipherSuite) -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::CryptoProvider {
        cipher_suites: vec![suite],
        ..rustls::crypto::ring::default_provider()
    })
}

fn pair(suite: SupportedCipherSuite) -> Pair {
    pair_with(suite, |_| {})
}

/// With `ready` called on the client as soon as it may send application
/// data: what it writes then goes out right behind its Finished.
fn pair_with(suite: SupportedCipherSuite, ready: impl FnOnce(&mut ClientConnection)) -> Pair {
    let version: &'static SupportedProtocolVersion = if is_tls13(suite) { &TLS13 } else { &TLS12 };
    let (cert, key) = certificate();
    let server = rustls::ServerConfig::builder_with_provider(provider(suite))
        .with_protocol_versions(&[version])
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], PrivateKeyDer::Pkcs8(key.clone().into()))
        .expect("server config");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone()).expect("root");
    let mut client = rustls::ClientConfig::builder_with_provider(provider(suite))
        .with_protocol_versions(&[version])
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    client.enable_secret_extraction = true;
    let name = ServerName::try_from("localhost").expect("name");
    let mut pair = Pair {
        client: ClientConnection::new(Arc::new(client), name).expect("client"),
        server: Tls::new(noting_server_names(&server)).expect("server"),
        to_server: Vec::new(),
    };
    let mut ready = Some(ready);
    for _ in 0..4 {
        if !pair.client.is_handshaking() {
            if let Some(ready) = ready.take() {
                ready(&mut pair.client);
            }
        }
        pair.send().expect("handshake");
        pair.deliver(usize::MAX).expect("handshake");
        pair.reply(b"").expect("handshake");
    }
    assert!(!pair.client.is_handshaking());
    assert!(
        pair.server.records().is_some(),
        "our record layer took over"
    );
    pair
}

impl Pair {
    /// What the client wants to write joins the stream to the server.
    fn send(&mut self) -> std::io::Result<()> {
        while self.client.wants_write() {
            self.client.write_tls(&mut self.to_server)?;
        }
        Ok(())
    }

    fn write(&mut self, data: &[u8]) {
        self.client.writer().write_all(data).expect("client write");
        self.send().expect("client send");
    }

    /// The server reads the stream in pieces of `piece` bytes: the
    /// plaintext it got, or its error.
    fn deliver(&mut self, piece: usize) -> Result<Vec<u8>, Error> {
        let mut plain = BytesMut::new();
        let stream = std::mem::take(&mut self.to_server);
        for chunk in stream.chunks(piece.max(1)) {
            self.server.receive(&mut chunk.to_vec(), &mut plain)?;
        }
        Ok(plain.to_vec())
    }

    /// The server's own records and `data` encrypted go to the client:
    /// what the client reads of it.
    fn reply(&mut self, data: &[u8]) -> Result<Vec<u8>, Error> {
        let mut wire = BytesMut::new();
        self.server.take_output(&mut wire);
        if !data.is_empty() {
            assert!(self.server.encrypt(data, &mut wire), "encrypt");
        }
        self.pass_to_client(&wire)
    }

    fn pass_to_client(&mut self, mut wire: &[u8]) -> Result<Vec<u8>, Error> {
        let mut plain = Vec::new();
        while !wire.is_empty() {
            self.client.read_tls(&mut wire).expect("read_tls");
            self.client.process_new_packets()?;
            // Read as it comes: the client buffers 16 KiB of it at most.
            match self.client.reader().read_to_end(&mut plain) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("client read: {e}"),
            }
        }
        Ok(plain)
    }

    /// The server's output as the client reads it: the error it gets.
    fn alert_to_client(&mut self) -> Error {
        let mut wire = BytesMut::new();
        self.server.take_output(&mut wire);
        self.pass_to_client(&wire).expect_err("an alert")
    }

    /// The client's keys, to forge records with; the client is used up.
    fn forger(self) -> (Records, Tls) {
        let tls13 = self.client.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3);
        let secrets = self.client.dangerous_extract_secrets().expect("secrets");
        (Records::from_secrets(secrets, tls13), self.server)
    }
}

/// The client read close_notify: its stream ended, rather than being cut.
fn assert_clean_end(client: &mut ClientConnection) {
    let mut rest = Vec::new();
    assert_eq!(
        client.reader().read_to_end(&mut rest).unwrap(),
        0,
        "a clean end"
    );
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[test]
fn every_suite_carries_small_and_multi_record_data_both_ways() {
    for suite in ALL {
        let mut p = pair(suite);
        for len in [1, 100, 16 << 10, 40_000] {
            let data = pattern(len);
            p.write(&data);
            assert_eq!(p.deliver(usize::MAX).unwrap(), data, "{suite:?} in, {len}");
            assert_eq!(p.reply(&data).unwrap(), data, "{suite:?} out, {len}");
        }
    }
}

#[test]
fn records_split_anywhere_are_read_whole() {
    for suite in [ALL[0], ALL[3]] {
        let mut p = pair(suite);
        let data = pattern(3000);
        for piece in [1, 7, 4096] {
            p.write(&data);
            p.write(b"and a second record");
            let mut expect = data.clone();
            expect.extend_from_slice(b"and a second record");
            assert_eq!(p.deliver(piece).unwrap(), expect, "{suite:?} in {piece}s");
        }
    }
}

#[test]
fn a_client_key_update_is_followed_and_answered() {
    for suite in [ALL[0], ALL[2]] {
        let mut p = pair(suite);
        p.client.refresh_traffic_keys().expect("key update");
        p.write(b"under the new key");
        assert_eq!(p.deliver(usize::MAX).unwrap(), b"under the new key");
        // It asked for ours: our KeyUpdate goes out before the data
        // sealed under our new key, and the client follows both.
        assert!(p.server.has_output(), "our KeyUpdate is queued");
        assert_eq!(p.reply(b"ours too").unwrap(), b"ours too");
        p.write(b"again");
        assert_eq!(p.deliver(usize::MAX).unwrap(), b"again");
    }
}

#[test]
fn a_key_update_right_behind_the_clients_finished_is_ours_to_answer() {
    // Read by rustls before we took its keys, its answer would stay in
    // rustls's keeping, and our records would be sealed under a key the
    // client never heard of.
    for suite in [ALL[0], ALL[1]] {
        let mut p = pair_with(suite, |client| {
            client.refresh_traffic_keys().expect("key update");
            client.writer().write_all(b"early").expect("write");
        });
        assert_eq!(p.reply(b"answer").unwrap(), b"answer", "{suite:?}");
        p.write(b"more");
        assert_eq!(p.deliver(usize::MAX).unwrap(), b"more");
    }
}

#[test]
fn key_updates_without_end_are_refused() {
    let mut p = pair(ALL[0]);
    for _ in 0..33 {
        p.client.refresh_traffic_keys().expect("key update");
        p.send().unwrap();
        // The client sees our answers, or it would not update again.
        let deliver = p.deliver(usize::MAX);
        if let Err(e) = deliver {
            assert_eq!(e, PeerMisbehaved::TooManyKeyUpdateRequests.into());
            let alert = p.alert_to_client();
            assert_eq!(
                alert,
                Error::AlertReceived(AlertDescription::UnexpectedMessage)
            );
            return;
        }
        p.reply(b"").unwrap();
    }
    panic!("33 key updates in a row were borne");
}

#[test]
fn a_tampered_record_gets_bad_record_mac_and_nothing_more_is_read() {
    for suite in ALL {
        let mut p = pair(suite);
        p.write(b"hello there");
        let last = p.to_server.len() - 1;
        p.to_server[last] ^= 1;
        assert_eq!(p.deliver(usize::MAX), Err(Error::DecryptError), "{suite:?}");
        assert_eq!(
            p.alert_to_client(),
            Error::AlertReceived(AlertDescription::BadRecordMac),
            "{suite:?}"
        );
        p.to_server = vec![23, 3, 3, 0, 1, 0];
        assert_eq!(p.deliver(usize::MAX).unwrap(), b"", "read after failing");
        assert!(!p.server.can_write());
    }
}

#[test]
fn an_oversized_record_gets_record_overflow() {
    let mut p = pair(ALL[0]);
    p.to_server = vec![23, 3, 3, 0x41, 0x01];
    assert_eq!(p.deliver(usize::MAX), Err(Error::PeerSentOversizedRecord));
    assert_eq!(
        p.alert_to_client(),
        Error::AlertReceived(AlertDescription::RecordOverflow)
    );
}

#[test]
fn after_the_peers_close_notify_nothing_is_read_and_ours_still_goes_out() {
    for suite in [ALL[0], ALL[3]] {
        let mut p = pair(suite);
        p.write(b"last words");
        p.client.send_close_notify();
        p.send().unwrap();
        p.to_server.extend_from_slice(b"garbage after the end");
        assert_eq!(p.deliver(usize::MAX).unwrap(), b"last words");
        assert!(p.server.close(), "close_notify queued");
        assert!(!p.server.close(), "once");
        assert_eq!(p.reply(b"").unwrap(), b"");
        assert_clean_end(&mut p.client);
    }
}

#[test]
fn a_worn_out_key_is_updated_in_tls13_and_ends_tls12() {
    for suite in [ALL[0], ALL[3]] {
        let mut p = pair(suite);
        p.server.records().unwrap().wear_out_after(2);
        let data = pattern(40_000); // 3 records
        let mut wire = BytesMut::new();
        let sealed = p.server.encrypt(&data, &mut wire);
        if is_tls13(suite) {
            assert!(sealed);
            assert_eq!(
                p.pass_to_client(&wire).unwrap(),
                data,
                "read across a key update"
            );
        } else {
            assert!(!sealed, "TLS 1.2 cannot update its key");
            assert!(!p.server.can_write());
            assert!(p.server.worn_out());
            // The records sealed before the limit, then close_notify.
            let mut plain = p.pass_to_client(&wire).unwrap();
            plain.extend(p.reply(b"").unwrap());
            assert_eq!(plain, &data[..2 << 14]);
            assert_clean_end(&mut p.client);
        }
    }
}

#[test]
fn quiet_connections_drop_their_expanded_keys_and_make_them_again() {
    let mut p = pair(ALL[0]);
    p.write(b"one");
    p.deliver(usize::MAX).unwrap();
    assert!(p.server.take_listing(), "keys made: listed");
    assert!(!p.server.take_listing(), "once");
    assert!(p.server.age(1), "used since: kept");
    assert!(!p.server.age(1), "a second entry in one sweep leaves");
    assert!(!p.server.age(2), "quiet: dropped");
    p.write(b"two");
    assert_eq!(p.deliver(usize::MAX).unwrap(), b"two");
    assert_eq!(p.reply(b"three").unwrap(), b"three");
    assert!(p.server.take_listing(), "made again: listed again");
}

/// The connection around it: a TLS 1.2 key that wears out mid-message ends
/// the connection (1006 to the handler) with close_notify as its last
/// bytes, rather than leaving it open with nothing able to go out.
#[test]
fn a_connection_whose_tls12_key_wears_out_ends_with_close_notify() {
    use super::{drive, events, outbox, peer, poll_head, written, Ev, Seen, GEN, SLOT, UPGRADE};
    use crate::connection::{Connection, Id};

    let Pair {
        mut client, server, ..
    } = pair(ALL[3]);
    let mut ob = outbox(|_| {});
    let id = Id {
        slot: SLOT,
        gen: GEN,
    };
    let mut conn = Connection::with_tls(id, Some(peer()), Box::new(server), &mut ob);
    let mut to_server = Vec::new();
    client.writer().write_all(UPGRADE.as_bytes()).unwrap();
    client.write_tls(&mut to_server).unwrap();
    conn.receive_records(&mut to_server, &mut ob);
    let Some((Seen::Upgrade { response, .. }, head_len)) = poll_head(&mut conn, &mut ob) else {
        panic!("no upgrade");
    };
    conn.upgrade(response, head_len, None, &mut ob);
    assert_eq!(drive(&mut conn, &mut ob), []);
    let mut to_client = written(&mut conn, &mut ob);
    assert!(conn.is_open());

    let tls = ob.tls.get_mut(&SLOT).unwrap();
    tls.records().unwrap().wear_out_after(1);
    conn.send(OpCode::Binary, vec![7; 40_000].into(), &mut ob);
    to_client.extend(written(&mut conn, &mut ob));
    assert_eq!(
        events(&mut conn, &mut ob),
        [Ev::Closed(1006, "TLS: cannot encrypt message".into())]
    );
    conn.after_input(&mut ob);
    to_client.extend(written(&mut conn, &mut ob));
    assert!(conn.is_done(&ob), "nothing left to wait for");

    let mut reader = &to_client[..];
    while !reader.is_empty() {
        client.read_tls(&mut reader).unwrap();
        client
            .process_new_packets()
            .expect("the client reads it all");
    }
    // read_to_end returns only at close_notify: without it, it would
    // find nothing more to read and fail.
    let mut plain = Vec::new();
    client
        .reader()
        .read_to_end(&mut plain)
        .expect("a clean end: close_notify came");
    assert!(
        plain.starts_with(b"HTTP/1.1 101"),
        "the 101, then a record's worth"
    );
}
