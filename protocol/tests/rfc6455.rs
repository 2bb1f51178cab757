//! The examples of RFC 6455 §5.7 and every invalid input the decoder must
//! refuse, each with its specific error and close code.

use bytes::{Bytes, BytesMut};
use uringws_protocol::{
    encoder::{encode_shared, server_frame},
    CloseCode, Decoder, DecoderConfig, Error, Message, OpCode, Role,
};

fn decode_all(role: Role, config: DecoderConfig, input: &[u8]) -> Result<Vec<Message>, Error> {
    let mut decoder = Decoder::new(role, config);
    let mut buf = BytesMut::from(input);
    let mut out = Vec::new();
    while let Some(message) = decoder.decode(&mut buf)? {
        out.push(message);
    }
    assert!(buf.is_empty(), "left over: {buf:?}");
    Ok(out)
}

fn client(input: &[u8]) -> Result<Vec<Message>, Error> {
    decode_all(Role::Client, DecoderConfig::default(), input)
}

fn server(input: &[u8]) -> Result<Vec<Message>, Error> {
    decode_all(Role::Server, DecoderConfig::default(), input)
}

fn text(s: &str) -> Message {
    Message::Text(s.into())
}

/// Masks `payload` into a client frame with header byte `b0`.
fn masked(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut out = vec![b0];
    match payload.len() {
        n @ 0..=125 => out.push(0x80 | n as u8),
        n @ 126..=0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

// ---- RFC 6455 §5.7 ----

#[test]
fn single_frame_unmasked_text() {
    let wire = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
    assert_eq!(client(&wire), Ok(vec![text("Hello")]));
    let frame = server_frame(OpCode::Text, true, Bytes::from_static(b"Hello")).unwrap();
    assert_eq!(&frame.to_bytes()[..], &wire);
    assert_eq!(&encode_shared(OpCode::Text, b"Hello").unwrap()[..], &wire);
}

#[test]
fn single_frame_masked_text() {
    let wire = [
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    assert_eq!(server(&wire), Ok(vec![text("Hello")]));
    let mut out = BytesMut::new();
    uringws_protocol::encoder::write_client_frame(
        &mut out,
        OpCode::Text,
        true,
        b"Hello",
        [0x37, 0xfa, 0x21, 0x3d],
    )
    .unwrap();
    assert_eq!(&out[..], &wire);
}

#[test]
fn fragmented_unmasked_text() {
    let wire = [0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f];
    assert_eq!(client(&wire), Ok(vec![text("Hello")]));
}

#[test]
fn unmasked_ping_and_masked_pong() {
    let ping = [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
    assert_eq!(
        client(&ping),
        Ok(vec![Message::Ping(Bytes::from_static(b"Hello"))])
    );
    let pong = [
        0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    assert_eq!(
        server(&pong),
        Ok(vec![Message::Pong(Bytes::from_static(b"Hello"))])
    );
}

#[test]
fn binary_256_bytes_16_bit_length() {
    let payload: Vec<u8> = (0..=255).collect();
    let mut wire = vec![0x82, 0x7E, 0x01, 0x00];
    wire.extend_from_slice(&payload);
    assert_eq!(
        client(&wire),
        Ok(vec![Message::Binary(payload.clone().into())])
    );
    let frame = server_frame(OpCode::Binary, true, payload.into()).unwrap();
    assert_eq!(&frame.to_bytes()[..], &wire[..]);
}

#[test]
fn binary_64_kib_64_bit_length() {
    let payload = vec![0xA5u8; 65536];
    let mut wire = vec![0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0];
    wire.extend_from_slice(&payload);
    assert_eq!(
        client(&wire),
        Ok(vec![Message::Binary(payload.clone().into())])
    );
    let frame = server_frame(OpCode::Binary, true, payload.into()).unwrap();
    assert_eq!(&frame.to_bytes()[..], &wire[..]);
}

// ---- fragmentation and control frames ----

#[test]
fn control_frames_interleave_fragments() {
    let mut wire = masked(0x01, b"Hel");
    wire.extend(masked(0x89, b"ping"));
    wire.extend(masked(0x00, b"l"));
    wire.extend(masked(0x8A, b""));
    wire.extend(masked(0x80, b"o"));
    assert_eq!(
        server(&wire),
        Ok(vec![
            Message::Ping(Bytes::from_static(b"ping")),
            Message::Pong(Bytes::new()),
            text("Hello"),
        ])
    );
}

#[test]
fn empty_fragments_and_empty_messages() {
    let mut wire = masked(0x01, b"");
    wire.extend(masked(0x00, b""));
    wire.extend(masked(0x80, b""));
    wire.extend(masked(0x82, b""));
    assert_eq!(
        server(&wire),
        Ok(vec![text(""), Message::Binary(Bytes::new())])
    );
}

#[test]
fn close_frames() {
    assert_eq!(server(&masked(0x88, b"")), Ok(vec![Message::Close(None)]));
    let mut payload = 1000u16.to_be_bytes().to_vec();
    payload.extend_from_slice("bye ✓".as_bytes());
    let got = server(&masked(0x88, &payload)).unwrap();
    let [Message::Close(Some(close))] = &got[..] else {
        panic!("{got:?}")
    };
    assert_eq!(close.code, CloseCode::NORMAL);
    assert_eq!(close.reason, "bye ✓");
}

#[test]
fn whole_payload_is_a_slice_of_the_input() {
    let wire = masked(0x82, &[7u8; 1000]);
    let mut buf = BytesMut::from(&wire[..]);
    let range = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
    let mut decoder = Decoder::new(Role::Server, DecoderConfig::default());
    let Ok(Some(Message::Binary(payload))) = decoder.decode(&mut buf) else {
        panic!()
    };
    assert!(
        range.contains(&(payload.as_ptr() as usize)),
        "payload was copied"
    );
    assert_eq!(&payload[..], &[7u8; 1000][..]);
}

#[test]
fn need_more_at_every_cut() {
    let mut wire = masked(0x01, "Grüße".as_bytes());
    wire.extend(masked(0x89, b"x"));
    wire.extend(masked(0x80, " an alle".as_bytes()));
    let mut decoder = Decoder::new(Role::Server, DecoderConfig::default());
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for &b in &wire {
        buf.extend_from_slice(&[b]);
        while let Some(m) = decoder.decode(&mut buf).unwrap() {
            got.push(m);
        }
    }
    assert_eq!(
        got,
        vec![
            Message::Ping(Bytes::from_static(b"x")),
            text("Grüße an alle")
        ]
    );
    assert!(!decoder.is_mid_message());
}

// ---- invalid input: each with its own error and close code ----

fn fails(result: Result<Vec<Message>, Error>, expected: Error, code: CloseCode) {
    assert_eq!(result, Err(expected.clone()));
    assert_eq!(expected.close_code(), Some(code));
}

#[test]
fn reserved_opcodes() {
    for op in (0x3..=0x7).chain(0xB..=0xF) {
        fails(
            server(&masked(0x80 | op, b"")),
            Error::ReservedOpcode(op),
            CloseCode::PROTOCOL_ERROR,
        );
    }
}

#[test]
fn reserved_bits_without_extension() {
    for bits in [0x40, 0x20, 0x10] {
        fails(
            server(&masked(0x81 | bits, b"a")),
            Error::ReservedBits,
            CloseCode::PROTOCOL_ERROR,
        );
    }
    let deflate = DecoderConfig {
        allow_rsv1: true,
        ..DecoderConfig::default()
    };
    assert!(decode_all(Role::Server, deflate, &masked(0xC1, b"a")).is_ok());
    assert_eq!(
        decode_all(Role::Server, deflate, &masked(0xA1, b"a")),
        Err(Error::ReservedBits)
    );
}

#[test]
fn control_frame_too_long_or_fragmented() {
    fails(
        server(&masked(0x89, &[0; 126])),
        Error::ControlFrameTooLong(126),
        CloseCode::PROTOCOL_ERROR,
    );
    fails(
        server(&masked(0x09, b"")),
        Error::FragmentedControlFrame,
        CloseCode::PROTOCOL_ERROR,
    );
}

#[test]
fn unmasked_frame_to_server_and_masked_frame_to_client() {
    fails(
        server(&[0x81, 0x01, b'a']),
        Error::UnmaskedClientFrame,
        CloseCode::PROTOCOL_ERROR,
    );
    fails(
        client(&masked(0x81, b"a")),
        Error::MaskedServerFrame,
        CloseCode::PROTOCOL_ERROR,
    );
}

#[test]
fn length_with_top_bit() {
    let mut wire = vec![0x82, 0xFF];
    wire.extend_from_slice(&(u64::MAX).to_be_bytes());
    wire.extend_from_slice(&[0; 4]);
    fails(
        server(&wire),
        Error::LengthTopBitSet,
        CloseCode::PROTOCOL_ERROR,
    );
}

#[test]
fn continuation_rules() {
    fails(
        server(&masked(0x80, b"x")),
        Error::UnexpectedContinuation,
        CloseCode::PROTOCOL_ERROR,
    );
    let mut wire = masked(0x01, b"a");
    wire.extend(masked(0x81, b"b"));
    fails(
        server(&wire),
        Error::ExpectedContinuation,
        CloseCode::PROTOCOL_ERROR,
    );
    let mut wire = masked(0x02, b"a");
    wire.extend(masked(0x02, b"b"));
    fails(
        server(&wire),
        Error::ExpectedContinuation,
        CloseCode::PROTOCOL_ERROR,
    );
}

#[test]
fn size_limits() {
    let config = DecoderConfig {
        max_frame_size: 100,
        max_message_size: 150,
        allow_rsv1: false,
    };
    // Refused on the header alone: the payload never needs to arrive.
    let header_only = &masked(0x82, &[0; 101])[..8];
    let mut decoder = Decoder::new(Role::Server, config);
    assert_eq!(
        decoder.decode(&mut BytesMut::from(header_only)),
        Err(Error::FrameTooLarge {
            size: 101,
            limit: 100
        })
    );
    let mut wire = masked(0x02, &[0; 100]);
    wire.extend(masked(0x80, &[0; 51]));
    fails(
        decode_all(Role::Server, config, &wire),
        Error::MessageTooLarge {
            size: 151,
            limit: 150,
        },
        CloseCode::MESSAGE_TOO_BIG,
    );
    let mut wire = masked(0x02, &[0; 100]);
    wire.extend(masked(0x80, &[0; 50]));
    assert!(decode_all(Role::Server, config, &wire).is_ok());
}

#[test]
fn invalid_utf8() {
    fails(
        server(&masked(0x81, &[0xC3, 0x28])),
        Error::InvalidUtf8,
        CloseCode::INVALID_PAYLOAD,
    );
    // A message that ends inside a code point.
    fails(
        server(&masked(0x81, &[b'a', 0xE2, 0x82])),
        Error::InvalidUtf8,
        CloseCode::INVALID_PAYLOAD,
    );
    // Valid only when both fragments are read together.
    let mut wire = masked(0x01, &[0xE2, 0x82]);
    wire.extend(masked(0x80, &[0xAC]));
    assert_eq!(server(&wire), Ok(vec![text("€")]));
    // Binary is not checked.
    assert!(server(&masked(0x82, &[0xFF])).is_ok());
}

#[test]
fn invalid_utf8_fails_before_the_frame_is_complete() {
    // A 1000-byte text frame whose second byte can never be valid: the error
    // comes with the first chunk, not after the remaining bytes arrive.
    let mut payload = vec![b'a'; 1000];
    payload[1] = 0xFF;
    let wire = masked(0x81, &payload);
    let mut decoder = Decoder::new(Role::Server, DecoderConfig::default());
    let mut buf = BytesMut::from(&wire[..20]);
    assert_eq!(decoder.decode(&mut buf), Err(Error::InvalidUtf8));
    // Likewise in a continuation frame of a fragmented message.
    let mut wire = masked(0x01, b"ok");
    let mut bad = vec![b'b'; 500];
    bad[3] = 0xC0;
    wire.extend(masked(0x80, &bad));
    let mut decoder = Decoder::new(Role::Server, DecoderConfig::default());
    let mut buf = BytesMut::from(&wire[..wire.len() - 400]);
    assert_eq!(decoder.decode(&mut buf), Err(Error::InvalidUtf8));
}

#[test]
fn bad_close_payloads() {
    fails(
        server(&masked(0x88, &[0x03])),
        Error::CloseFrameTooShort,
        CloseCode::PROTOCOL_ERROR,
    );
    for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
        fails(
            server(&masked(0x88, &code.to_be_bytes())),
            Error::InvalidCloseCode(code),
            CloseCode::PROTOCOL_ERROR,
        );
    }
    for code in [
        1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999,
    ] {
        assert!(server(&masked(0x88, &code.to_be_bytes())).is_ok(), "{code}");
    }
    let mut payload = 1000u16.to_be_bytes().to_vec();
    payload.extend_from_slice(&[0xCE, 0xBA, 0xE1]);
    fails(
        server(&masked(0x88, &payload)),
        Error::InvalidUtf8,
        CloseCode::INVALID_PAYLOAD,
    );
}

#[test]
fn text_ending_inside_a_code_point_fails_when_it_arrived_in_pieces() {
    // The same checks as `invalid_utf8`, with the frame split across reads
    // so validation state carries between `decode` calls.
    for payload in [&[b'a', 0xE2, 0x82][..], &[0xCE, 0xBA, 0xCE][..]] {
        let wire = masked(0x81, payload);
        let mut decoder = Decoder::new(Role::Server, DecoderConfig::default());
        let mut buf = BytesMut::from(&wire[..wire.len() - 1]);
        assert_eq!(decoder.decode(&mut buf), Ok(None));
        buf.extend_from_slice(&wire[wire.len() - 1..]);
        assert_eq!(decoder.decode(&mut buf), Err(Error::InvalidUtf8));
    }
    // A fragmented message whose last fragment ends mid code point.
    let mut wire = masked(0x01, b"ok");
    wire.extend(masked(0x80, &[0xE2, 0x82]));
    fails(
        server(&wire),
        Error::InvalidUtf8,
        CloseCode::INVALID_PAYLOAD,
    );
}

#[test]
fn idle_decoder_holds_no_partial_state() {
    // Whole frames, fragments and split frames all leave the decoder idle
    // once their message is out.
    let mut wire = masked(0x01, "Grü".as_bytes());
    wire.extend(masked(0x89, b"p"));
    wire.extend(masked(0x80, "ße".as_bytes()));
    wire.extend(masked(0x82, &[1; 300]));
    let mut decoder = Decoder::new(Role::Server, DecoderConfig::default());
    let mut buf = BytesMut::new();
    let mut got = 0;
    for chunk in wire.chunks(7) {
        buf.extend_from_slice(chunk);
        while decoder.decode(&mut buf).unwrap().is_some() {
            got += 1;
        }
    }
    assert_eq!(got, 3);
    assert!(!decoder.is_mid_message());
}
