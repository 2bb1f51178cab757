//! Compressed messages on the wire (RFC 7692 §6): where RSV1 may be, how a
//! compressed message comes out of the decoder, whole or fragmented, and
//! what inflating it refuses.

use bytes::{Buf, Bytes, BytesMut};
use uringws_protocol::{
    decoder::Compressed,
    deflate::{Compressor, Decompressor},
    encoder::write_client_frame,
    Decoder, DecoderConfig, Error, Message, OpCode, Role, Session,
};

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn deflate_config() -> DecoderConfig {
    DecoderConfig {
        allow_rsv1: true,
        ..DecoderConfig::default()
    }
}

/// A masked client frame with header byte `b0` (FIN, RSV bits, opcode).
fn frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    let opcode = OpCode::from_u8(b0 & 0x0F).unwrap();
    write_client_frame(&mut out, opcode, b0 & 0x80 != 0, payload, MASK).unwrap();
    out[0] = b0;
    out.to_vec()
}

fn compress(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    Compressor::new(15, true, 6).compress(payload, &mut out);
    out
}

/// Every message in `input`, by both of the decoder's paths: from the
/// connection's buffer, and straight from a receive buffer when whole.
fn decode_both(config: DecoderConfig, input: &[u8]) -> Result<Vec<Message>, Error> {
    let mut decoder = Decoder::new(Role::Server, config);
    let mut buf = BytesMut::from(input);
    let mut from_buffer = Vec::new();
    while let Some(message) = decoder.decode(&mut buf)? {
        from_buffer.push(message);
    }
    let mut decoder = Decoder::new(Role::Server, config);
    let mut rest = BytesMut::from(input);
    let mut from_slice = Vec::new();
    while let Some(frame) = decoder.decode_in_place(&mut rest)? {
        rest.advance(frame.header_len());
        let payload = rest.split_to(frame.payload_len()).freeze();
        from_slice.push(decoder.finish_in_place(frame, payload)?);
    }
    if rest.is_empty() {
        assert_eq!(from_slice, from_buffer, "the two paths differ");
    }
    Ok(from_buffer)
}

fn inflate(message: &Message) -> Result<Message, Error> {
    let Message::Compressed(compressed) = message else {
        panic!("not compressed: {message:?}");
    };
    compressed.inflate(&mut Decompressor::new(15, true), 1 << 20)
}

#[test]
fn a_compressed_text_message_comes_out_whole_and_inflates() {
    let text = r#"{"symbol":"ABC","price":12.5,"symbol":"ABC","price":12.5}"#;
    let compressed = compress(text.as_bytes());
    let messages = decode_both(deflate_config(), &frame(0xC1, &compressed)).unwrap();
    assert_eq!(
        messages,
        vec![Message::Compressed(Compressed {
            text: true,
            data: Bytes::from(compressed),
        })]
    );
    assert_eq!(inflate(&messages[0]), Ok(Message::Text(text.into())));
}

#[test]
fn compressed_bytes_are_not_checked_as_text_before_inflating() {
    // Not UTF-8 as it stands (0xff), valid text once inflated.
    let compressed = compress("ÿÿÿÿ text".as_bytes());
    assert!(std::str::from_utf8(&compressed).is_err());
    let messages = decode_both(deflate_config(), &frame(0xC1, &compressed)).unwrap();
    assert_eq!(inflate(&messages[0]), Ok(Message::Text("ÿÿÿÿ text".into())));
}

#[test]
fn a_fragmented_compressed_message_is_gathered_across_a_ping() {
    let payload: Vec<u8> = (0..3000u32).flat_map(|i| (i % 7).to_be_bytes()).collect();
    let compressed = compress(&payload);
    let (a, rest) = compressed.split_at(compressed.len() / 3);
    let (b, c) = rest.split_at(rest.len() / 2);
    let mut wire = frame(0x42, a); // binary, RSV1, not final
    wire.extend(frame(0x89, b"hi"));
    wire.extend(frame(0x00, b)); // continuation: RSV1 clear
    wire.extend(frame(0x80, c));
    let messages = decode_both(deflate_config(), &wire).unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0], Message::Ping(Bytes::from_static(b"hi")));
    assert_eq!(
        inflate(&messages[1]),
        Ok(Message::Binary(Bytes::from(payload)))
    );
}

#[test]
fn an_uncompressed_message_beside_compressed_ones_is_plain() {
    let mut wire = frame(0x81, b"plain");
    wire.extend(frame(0xC1, &compress(b"packed")));
    let messages = decode_both(deflate_config(), &wire).unwrap();
    assert_eq!(messages[0], Message::Text("plain".into()));
    assert_eq!(inflate(&messages[1]), Ok(Message::Text("packed".into())));
}

#[test]
fn rsv1_is_refused_where_rfc_7692_does_not_allow_it() {
    let compressed = compress(b"abc");
    let cases: [(&str, DecoderConfig, Vec<u8>); 5] = [
        (
            "not negotiated",
            DecoderConfig::default(),
            frame(0xC1, &compressed),
        ),
        ("on a ping", deflate_config(), frame(0xC9, b"x")),
        ("on a close", deflate_config(), frame(0xC8, &[0x03, 0xe8])),
        ("on a continuation", deflate_config(), {
            let mut wire = frame(0x41, &compressed[..1]);
            wire.extend(frame(0xC0, &compressed[1..]));
            wire
        }),
        ("RSV2 beside it", deflate_config(), frame(0xE1, &compressed)),
    ];
    for (case, config, wire) in cases {
        assert_eq!(
            decode_both(config, &wire),
            Err(Error::ReservedBits),
            "{case}"
        );
        assert_eq!(
            Error::ReservedBits.close_code().map(|c| c.0),
            Some(1002),
            "{case}"
        );
    }
}

#[test]
fn invalid_text_inside_is_1007_and_bad_data_is_1007() {
    let mut decompressor = Decompressor::new(15, true);
    let bad_text = Compressed {
        text: true,
        data: Bytes::from(compress(&[0x61, 0xff, 0x62])),
    };
    assert_eq!(
        bad_text.inflate(&mut decompressor, 1 << 20),
        Err(Error::InvalidUtf8)
    );
    let garbage = Compressed {
        text: false,
        data: Bytes::from_static(&[0xff, 0xff, 0xff, 0xff]),
    };
    let error = garbage.inflate(&mut decompressor, 1 << 20).unwrap_err();
    assert_eq!(error, Error::BadCompressedData);
    assert_eq!(error.close_code().map(|c| c.0), Some(1007));
    // The same decompressor serves the next message.
    let good = Compressed {
        text: true,
        data: Bytes::from(compress(b"next")),
    };
    assert_eq!(
        good.inflate(&mut decompressor, 1 << 20),
        Ok(Message::Text("next".into()))
    );
}

#[test]
fn a_bomb_stops_at_the_limit_and_the_decompressor_goes_on() {
    let mut decompressor = Decompressor::new(15, true);
    let bomb = Compressed {
        text: false,
        data: Bytes::from(compress(&vec![0u8; 8 << 20])),
    };
    assert!(bomb.data.len() < 16 << 10, "{}", bomb.data.len());
    let error = bomb.inflate(&mut decompressor, 64 << 10).unwrap_err();
    assert!(
        matches!(error, Error::MessageTooLarge { limit, .. } if limit == 64 << 10),
        "{error:?}"
    );
    assert_eq!(error.close_code().map(|c| c.0), Some(1009));
    let next = Compressed {
        text: false,
        data: Bytes::from(compress(b"after")),
    };
    assert_eq!(
        next.inflate(&mut decompressor, 64 << 10),
        Ok(Message::Binary(Bytes::from_static(b"after")))
    );
}

#[test]
fn a_session_pair_talks_compressed_both_ways() {
    let mut server = Session::new(Role::Server, deflate_config());
    let mut client = Session::new(Role::Client, deflate_config());
    let pass = |from: &mut Session, to: &mut Session| {
        let payload = Bytes::from(compress(b"hello hello hello"));
        let frame = from.encode_compressed(OpCode::Text, payload).unwrap();
        let mut wire = BytesMut::from(&frame.to_bytes()[..]);
        let message = to.decode(&mut wire).unwrap().unwrap();
        assert_eq!(
            inflate(&message),
            Ok(Message::Text("hello hello hello".into()))
        );
    };
    pass(&mut client, &mut server);
    pass(&mut server, &mut client);
    // Only data frames can be compressed.
    assert_eq!(
        server.encode_compressed(OpCode::Ping, Bytes::new()),
        Err(Error::ReservedBits)
    );
}
