//! permessage-deflate on one connection: what it inflates and refuses,
//! what it compresses and leaves as it is, and how the shared and the
//! dedicated streams keep in step with the peer's.

use super::*;
use crate::config::Compression;
use uringws_protocol::{
    deflate::{Compressor, Decompressor, ServerDeflate},
    encoder::write_compressed_client_frame,
    handshake::parse_extensions,
};

const OFFER: &str = "permessage-deflate; client_max_window_bits";

/// An open connection that agreed to what `compression`'s policy says to
/// Chromium's offer.
fn open_deflate(compression: Compression) -> (Connection, Outbox) {
    let (mut conn, mut ob) = open_with(|c| c.compression = Some(compression));
    let agreed = compression
        .policy
        .negotiate(parse_extensions(OFFER))
        .expect("agreed");
    // `open_with` upgraded without the extension: as the worker would
    // have with it, from a fresh connection.
    conn.output.deflate = ob.deflate.open(conn.id.slot, &agreed.params);
    conn.session.set_compressed(true);
    (conn, ob)
}

fn shared() -> Compression {
    Compression {
        min_size: 16,
        ..Compression::shared()
    }
}

fn dedicated() -> Compression {
    Compression {
        min_size: 16,
        ..Compression::dedicated(9)
    }
}

/// A decompressor per connection too: clients keep their context.
fn dedicated_both() -> Compression {
    let mut compression = dedicated();
    compression.policy.client_no_context_takeover = false;
    compression
}

fn compressed_client(opcode: OpCode, payload: &[u8], compressor: &mut Compressor) -> Vec<u8> {
    let mut packed = Vec::new();
    compressor.compress(payload, &mut packed);
    let mut out = BytesMut::new();
    write_compressed_client_frame(&mut out, opcode, &packed, MASK).unwrap();
    out.to_vec()
}

/// A server frame's payload as a client with `decompressor` reads it.
#[derive(Debug, PartialEq)]
enum Seen {
    Plain(Vec<u8>),
    Inflated(Vec<u8>),
}

fn plain(message: impl AsRef<[u8]>) -> Seen {
    Seen::Plain(message.as_ref().to_vec())
}

fn inflated(message: impl AsRef<[u8]>) -> Seen {
    Seen::Inflated(message.as_ref().to_vec())
}

/// Bytes no compressor can shrink.
fn random(len: usize) -> Vec<u8> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn seen(bytes: &[u8], decompressor: &mut Decompressor) -> Vec<Seen> {
    let config = DecoderConfig {
        allow_rsv1: true,
        ..DecoderConfig::default()
    };
    let mut decoder = Decoder::new(Role::Client, config);
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    while let Some(frame) = decoder.decode(&mut buf).expect("a valid server frame") {
        out.push(match frame {
            Frame::Text(t) => plain(t.as_bytes()),
            Frame::Binary(b) => plain(b),
            Frame::Compressed(c) => match c.inflate(decompressor, 1 << 20).unwrap() {
                Frame::Text(t) => inflated(t.as_bytes()),
                Frame::Binary(b) => inflated(b),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        });
    }
    assert!(buf.is_empty());
    out
}

fn json(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                r#"{{"id":{i},"symbol":"SYM{}","price":{}.5}}"#,
                i % 5,
                i * 3
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn a_compressed_message_is_inflated_for_the_handler() {
    let (mut conn, mut ob) = open_deflate(shared());
    let mut client = Compressor::new(15, true, 6);
    let message = json(20);
    let evs = feed(
        &mut conn,
        &mut ob,
        &compressed_client(OpCode::Text, message.as_bytes(), &mut client),
    );
    assert_eq!(evs, [Ev::Text(message)]);
    assert_eq!(ob.counters.messages_in, 1);
}

#[test]
fn a_compressed_message_split_across_reads_is_inflated_once_whole() {
    let (mut conn, mut ob) = open_deflate(shared());
    let mut client = Compressor::new(15, true, 6);
    let message = json(400);
    let wire = compressed_client(OpCode::Text, message.as_bytes(), &mut client);
    let (a, b) = wire.split_at(wire.len() / 2);
    assert_eq!(feed(&mut conn, &mut ob, a), []);
    assert_eq!(feed(&mut conn, &mut ob, b), [Ev::Text(message)]);
}

#[test]
fn a_bomb_closes_with_1009_and_bad_data_with_1007() {
    let limit = 64 << 10;
    for (payload, code) in [
        (vec![b'a'; 4 << 20], 1009),
        // Valid UTF-8 inflated from nothing that is DEFLATE.
        (Vec::new(), 1007),
    ] {
        let (mut conn, mut ob) = open_with(|c| {
            c.compression = Some(shared());
            c.decoder.max_message_size = limit;
        });
        let agreed = ServerDeflate::shared()
            .negotiate(parse_extensions(OFFER))
            .unwrap();
        conn.output.deflate = ob.deflate.open(conn.id.slot, &agreed.params);
        conn.session.set_compressed(true);
        let wire = if payload.is_empty() {
            let mut out = BytesMut::new();
            write_compressed_client_frame(&mut out, OpCode::Text, &[0xff; 8], MASK).unwrap();
            out.to_vec()
        } else {
            compressed_client(OpCode::Binary, &payload, &mut Compressor::new(15, true, 6))
        };
        assert!(wire.len() < limit, "the bomb itself is small");
        let evs = feed(&mut conn, &mut ob, &wire);
        assert!(
            matches!(&evs[..], [Ev::Closed(c, _)] if *c == code),
            "{code}: {evs:?}"
        );
        let sent = written(&mut conn, &mut ob);
        assert_eq!(&sent[..4], &[0x88, 0x02, (code >> 8) as u8, code as u8]);
    }
}

#[test]
fn sends_are_compressed_from_the_minimum_size_and_only_if_they_shrink() {
    let (mut conn, mut ob) = open_deflate(shared());
    let mut client = Decompressor::new(15, true);
    let long = json(10);
    conn.send(OpCode::Text, Bytes::from(long.clone()), &mut ob);
    conn.send(OpCode::Text, Bytes::from_static(b"short"), &mut ob);
    conn.send(OpCode::Binary, Bytes::from(random(200)), &mut ob);
    let sent = written(&mut conn, &mut ob);
    assert_eq!(
        seen(&sent, &mut client),
        [inflated(&long), plain("short"), plain(random(200))]
    );
    assert!(sent.len() < long.len(), "{} on the wire", sent.len());
}

#[test]
fn a_publication_is_compressed_once_for_its_subscribers() {
    let (mut a, mut ob) = open_deflate(shared());
    let mut b = Connection::new(Id { slot: 4, gen: 1 }, None, &mut ob);
    b.output.io = None;
    b.state = State::Open {
        ping_out: false,
        drain: Drain::Idle,
        dropped: 0,
    };
    b.output.deflate = a.output.deflate;
    b.session.set_compressed(true);
    let message = json(10);
    let frame = encode_shared(OpCode::Text, message.as_bytes()).unwrap();
    let mut published = Published::default();
    a.send_publication(&frame, &mut published, &mut ob);
    b.send_publication(&frame, &mut published, &mut ob);
    let direct: Vec<Bytes> = ob.direct.iter().map(|(_, _, f)| f.clone()).collect();
    assert_eq!(direct.len(), 2);
    assert_eq!(
        direct[0].as_ptr(),
        direct[1].as_ptr(),
        "compressed twice, or copied"
    );
    assert!(direct[0].len() < frame.len());
    let mut client = Decompressor::new(15, true);
    assert_eq!(seen(&direct[0], &mut client), [inflated(message)]);
}

#[test]
fn dedicated_streams_keep_context_and_refer_back() {
    let (mut conn, mut ob) = open_deflate(dedicated_both());
    let agreed = dedicated_both()
        .policy
        .negotiate(parse_extensions(OFFER))
        .unwrap();
    assert!(!agreed.params.server_no_context_takeover);
    assert!(!agreed.params.client_no_context_takeover);
    assert_eq!(agreed.params.server_max_window_bits, 9);
    let mut client = Decompressor::new(9, false);
    let message = json(3);
    conn.send(OpCode::Text, Bytes::from(message.clone()), &mut ob);
    let first = written(&mut conn, &mut ob);
    conn.send(OpCode::Text, Bytes::from(message.clone()), &mut ob);
    let second = written(&mut conn, &mut ob);
    assert!(
        second.len() < first.len() / 2,
        "no reference back: {} then {} bytes",
        first.len(),
        second.len()
    );
    assert_eq!(seen(&first, &mut client), [inflated(&message)]);
    assert_eq!(seen(&second, &mut client), [inflated(&message)]);
    // The client keeps context too.
    let mut compressor = Compressor::new(9, false, 6);
    for _ in 0..3 {
        let wire = compressed_client(OpCode::Text, message.as_bytes(), &mut compressor);
        assert_eq!(feed(&mut conn, &mut ob, &wire), [Ev::Text(message.clone())]);
    }
    assert_eq!(ob.deflate.dedicated_streams(), (1, 2));
}

#[test]
fn by_default_dedicated_compressors_share_the_decompressor() {
    let (mut conn, mut ob) = open_deflate(dedicated());
    let agreed = dedicated()
        .policy
        .negotiate(parse_extensions(OFFER))
        .unwrap();
    assert!(!agreed.params.server_no_context_takeover);
    assert!(agreed.params.client_no_context_takeover);
    let mut client = Compressor::new(15, true, 6);
    let wire = compressed_client(OpCode::Text, json(3).as_bytes(), &mut client);
    assert_eq!(feed(&mut conn, &mut ob, &wire), [Ev::Text(json(3))]);
    assert_eq!(
        ob.deflate.dedicated_streams(),
        (1, 0),
        "a decompressor of its own"
    );
}

#[test]
fn after_a_shared_publication_a_dedicated_stream_starts_afresh() {
    let (mut conn, mut ob) = open_deflate(dedicated());
    let mut client = Decompressor::new(9, false);
    let message = json(3);
    let mut sent = Vec::new();
    conn.send(OpCode::Text, Bytes::from(message.clone()), &mut ob);
    sent.extend(written(&mut conn, &mut ob));
    // Compressed by the worker's stream: in the client's window, not in
    // the connection's compressor's.
    let publication = encode_shared(OpCode::Text, json(4).as_bytes()).unwrap();
    conn.send_publication(&publication, &mut Published::default(), &mut ob);
    sent.extend(written(&mut conn, &mut ob));
    conn.send(OpCode::Text, Bytes::from(message.clone()), &mut ob);
    sent.extend(written(&mut conn, &mut ob));
    assert_eq!(
        seen(&sent, &mut client),
        [inflated(&message), inflated(json(4)), inflated(&message)]
    );
}

#[test]
fn a_message_that_did_not_shrink_leaves_the_streams_in_step() {
    let (mut conn, mut ob) = open_deflate(dedicated());
    let mut client = Decompressor::new(9, false);
    let mut sent = Vec::new();
    for message in [json(3).into_bytes(), random(100), json(3).into_bytes()] {
        conn.send(OpCode::Binary, Bytes::from(message), &mut ob);
        sent.extend(written(&mut conn, &mut ob));
    }
    assert_eq!(
        seen(&sent, &mut client),
        [inflated(json(3)), plain(random(100)), inflated(json(3))]
    );
}

#[test]
fn dedicated_streams_are_made_when_used_and_go_with_the_connection() {
    let (mut conn, mut ob) = open_deflate(dedicated());
    assert!(conn.output.deflate.is_dedicated());
    assert_eq!(ob.deflate.dedicated_streams(), (1, 0));
    conn.send(OpCode::Text, Bytes::from(json(3)), &mut ob);
    written(&mut conn, &mut ob);
    assert_eq!(ob.deflate.dedicated_streams(), (1, 1));
    conn.free(&mut ob);
    assert_eq!(ob.deflate.dedicated_streams(), (0, 0));
}

#[test]
fn without_the_extension_rsv1_is_a_protocol_error() {
    let (mut conn, mut ob) = open_with(|c| c.compression = Some(shared()));
    let wire = compressed_client(OpCode::Text, b"hello", &mut Compressor::new(15, true, 6));
    let evs = feed(&mut conn, &mut ob, &wire);
    assert!(matches!(&evs[..], [Ev::Closed(1002, _)]), "{evs:?}");
}

#[test]
fn rsv1_in_the_settings_without_an_agreement_is_still_refused() {
    let (mut conn, mut ob) = open_with(|c| c.decoder.allow_rsv1 = true);
    let wire = compressed_client(OpCode::Text, b"hello", &mut Compressor::new(15, true, 6));
    let evs = feed(&mut conn, &mut ob, &wire);
    assert!(matches!(&evs[..], [Ev::Closed(1002, _)]), "{evs:?}");
}

#[test]
fn a_compressed_frame_goes_only_where_deflate_was_agreed() {
    let frame = uringws_protocol::encoder::encode_shared_compressed(OpCode::Text, &[0x00]).unwrap();
    let (mut plain, mut ob) = open_conn();
    assert_eq!(
        plain.send_encoded(frame.clone(), &mut ob),
        SendStatus::Dropped
    );
    assert_eq!(written(&mut plain, &mut ob), b"");
    let (mut agreed, mut ob) = open_deflate(shared());
    assert_eq!(
        agreed.send_encoded(frame.clone(), &mut ob),
        SendStatus::Sent
    );
    assert_eq!(written(&mut agreed, &mut ob), frame);
}
