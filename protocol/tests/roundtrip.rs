//! Property tests: whatever one side encodes, the other decodes to the same
//! messages — every opcode, every length class, any fragmentation, control
//! frames interleaved, the bytes arriving in chunks of any size.

use bytes::{Buf, Bytes, BytesMut};
use proptest::prelude::*;
use uringws_protocol::{
    encoder::{client_frame, server_frame, Frame},
    CloseCode, CloseFrame, Decoder, DecoderConfig, Error, Message, OpCode, Role,
};

#[derive(Debug, Clone)]
enum Input {
    Data {
        text: bool,
        payload: Vec<u8>,
        fragments: Vec<usize>,
    },
    Control(OpCode, Vec<u8>),
    Close(u16, String),
}

fn payload_of_class() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => proptest::collection::vec(any::<u8>(), 0..=125),
        3 => proptest::collection::vec(any::<u8>(), 126..=2000),
        1 => (65_536usize..70_000).prop_map(|n| (0..n).map(|i| (i * 7) as u8).collect()),
    ]
}

fn text_payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "\\PC{0,60}".prop_map(String::into_bytes),
        (126usize..3000).prop_map(|n| "aé€𝄞".repeat(n / 10 + 1).into_bytes()),
    ]
}

fn input() -> impl Strategy<Value = Input> {
    let cuts = proptest::collection::vec(0usize..4000, 0..4);
    prop_oneof![
        (payload_of_class(), cuts.clone()).prop_map(|(payload, fragments)| Input::Data {
            text: false,
            payload,
            fragments
        }),
        (text_payload(), cuts).prop_map(|(payload, fragments)| Input::Data {
            text: true,
            payload,
            fragments
        }),
        (
            prop_oneof![Just(OpCode::Ping), Just(OpCode::Pong)],
            proptest::collection::vec(any::<u8>(), 0..=125)
        )
            .prop_map(|(op, p)| Input::Control(op, p)),
        (
            prop_oneof![1000u16..=1003, 1007u16..=1014, 3000u16..=4999],
            "\\PC{0,30}"
        )
            .prop_map(|(code, reason)| Input::Close(code, reason)),
    ]
}

fn frame(role: Role, opcode: OpCode, fin: bool, payload: &[u8]) -> Frame {
    let result = match role {
        Role::Server => server_frame(opcode, fin, Bytes::copy_from_slice(payload)),
        Role::Client => client_frame(opcode, fin, BytesMut::from(payload), rand::random()),
    };
    result.unwrap()
}

/// Encodes `inputs` from `sender`'s side; returns the wire bytes and the
/// messages the receiver must see. A control frame from `pending` is slipped
/// between fragments of the next data message.
fn encode(sender: Role, inputs: &[Input]) -> (Vec<u8>, Vec<Message>) {
    let mut wire = Vec::new();
    let mut expected = Vec::new();
    let mut put = |f: Frame| {
        wire.extend_from_slice(f.header.as_slice());
        wire.extend_from_slice(&f.payload);
    };
    for input in inputs {
        match input {
            Input::Data {
                text,
                payload,
                fragments,
            } => {
                let mut cuts: Vec<usize> =
                    fragments.iter().map(|&c| c.min(payload.len())).collect();
                cuts.sort_unstable();
                cuts.push(payload.len());
                let mut start = 0;
                for (i, &cut) in cuts.iter().enumerate() {
                    let last = i + 1 == cuts.len();
                    let opcode = match (i, *text) {
                        (0, true) => OpCode::Text,
                        (0, false) => OpCode::Binary,
                        _ => OpCode::Continuation,
                    };
                    put(frame(sender, opcode, last, &payload[start..cut]));
                    start = cut;
                    if !last && i == 0 {
                        put(frame(sender, OpCode::Ping, true, b"mid"));
                        expected.push(Message::Ping(Bytes::from_static(b"mid")));
                    }
                }
                let bytes = Bytes::copy_from_slice(payload);
                expected.push(if *text {
                    Message::Text(bytes.try_into().unwrap())
                } else {
                    Message::Binary(bytes)
                });
            }
            Input::Control(op, payload) => {
                put(frame(sender, *op, true, payload));
                let bytes = Bytes::copy_from_slice(payload);
                expected.push(match op {
                    OpCode::Ping => Message::Ping(bytes),
                    _ => Message::Pong(bytes),
                });
            }
            Input::Close(code, reason) => {
                let payload = CloseFrame::encode_payload(CloseCode(*code), reason);
                match payload {
                    Ok(payload) => {
                        put(frame(sender, OpCode::Close, true, &payload));
                        expected.push(Message::Close(Some(CloseFrame {
                            code: CloseCode(*code),
                            reason: reason.as_str().into(),
                        })));
                    }
                    // Reasons over 123 bytes are refused at encoding.
                    Err(_) => assert!(reason.len() > 123),
                }
            }
        }
    }
    (wire, expected)
}

/// Decodes `wire` arriving in chunks of the given sizes. `in_place`: as
/// a server reads from receive buffers it reuses, whole frames straight
/// from each chunk, unmasked where they lie (`decode_in_place`), and the
/// rest through its own buffer;
/// otherwise everything through one buffer.
fn decode_in_chunks(receiver: Role, wire: &[u8], chunks: &[usize], in_place: bool) -> Vec<Message> {
    let mut decoder = Decoder::new(receiver, DecoderConfig::default());
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    let mut rest = wire;
    let mut sizes = chunks.iter().cycle();
    while !rest.is_empty() {
        let n = (*sizes.next().unwrap_or(&usize::MAX)).clamp(1, rest.len());
        let mut chunk = BytesMut::from(&rest[..n]);
        rest = &rest[n..];
        if in_place && buf.is_empty() {
            while let Some(m) = decode_front(&mut decoder, &mut chunk).unwrap() {
                got.push(m);
            }
            if let Some(hint) = decoder.frame_len_hint(&chunk) {
                buf.reserve(hint);
            }
        }
        buf.extend_from_slice(&chunk);
        while let Some(m) = decoder.decode(&mut buf).unwrap() {
            got.push(m);
        }
    }
    assert!(buf.is_empty());
    assert!(!decoder.is_mid_message());
    got
}

/// The next frame if it is whole at the front of `input`, read in place
/// and cut off it, as a server reads from its receive buffers.
fn decode_front(decoder: &mut Decoder, input: &mut BytesMut) -> Result<Option<Message>, Error> {
    let Some(frame) = decoder.decode_in_place(input)? else {
        return Ok(None);
    };
    input.advance(frame.header_len());
    let payload = input.split_to(frame.payload_len()).freeze();
    decoder.finish_in_place(frame, payload).map(Some)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Reading whole frames from reused buffers gives what reading
    /// everything through one buffer gives.
    #[test]
    fn client_to_server_from_slices(
        inputs in proptest::collection::vec(input(), 1..6),
        chunks in proptest::collection::vec(1usize..5000, 1..5),
    ) {
        let (wire, expected) = encode(Role::Client, &inputs);
        prop_assert_eq!(decode_in_chunks(Role::Server, &wire, &chunks, true), expected);
    }

    #[test]
    fn client_to_server(
        inputs in proptest::collection::vec(input(), 1..6),
        chunks in proptest::collection::vec(1usize..5000, 1..5),
    ) {
        let (wire, expected) = encode(Role::Client, &inputs);
        prop_assert_eq!(decode_in_chunks(Role::Server, &wire, &chunks, false), expected);
    }

    #[test]
    fn server_to_client(
        inputs in proptest::collection::vec(input(), 1..6),
        chunks in proptest::collection::vec(1usize..5000, 1..5),
    ) {
        let (wire, expected) = encode(Role::Server, &inputs);
        prop_assert_eq!(decode_in_chunks(Role::Client, &wire, &chunks, false), expected);
    }

    /// Garbage never panics, and whatever the decoder refuses maps to a
    /// close code.
    #[test]
    fn garbage_is_refused_with_a_close_code(
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        role in prop_oneof![Just(Role::Server), Just(Role::Client)],
    ) {
        let mut decoder = Decoder::new(role, DecoderConfig { max_frame_size: 1 << 16, max_message_size: 1 << 17, allow_rsv1: false });
        let mut buf = BytesMut::from(&bytes[..]);
        let by_buffer = loop {
            match decoder.decode(&mut buf) {
                Ok(Some(_)) => continue,
                Ok(None) => break None,
                Err(e) => { prop_assert!(e.close_code().is_some(), "{:?}", e); break Some(e); }
            }
        };
        // The same bytes read in place fail with the same error.
        let mut decoder = Decoder::new(role, DecoderConfig { max_frame_size: 1 << 16, max_message_size: 1 << 17, allow_rsv1: false });
        let mut input = BytesMut::from(&bytes[..]);
        let in_place = loop {
            match decode_front(&mut decoder, &mut input) {
                Ok(Some(_)) => continue,
                Ok(None) => {
                    let mut buf = input;
                    break loop {
                        match decoder.decode(&mut buf) {
                            Ok(Some(_)) => continue,
                            Ok(None) => break None,
                            Err(e) => break Some(e),
                        }
                    };
                }
                Err(e) => break Some(e),
            }
        };
        prop_assert_eq!(by_buffer, in_place);
    }
}
