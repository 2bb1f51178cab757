//! Arbitrary bytes, cut into arbitrary chunks, through a server and a client
//! session: no panic, every error maps to a close code, nothing is buffered
//! beyond the configured limits, and the chunking changes nothing: the same
//! messages and the same error come out as when the bytes arrive at once.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use uringws_protocol::{DecoderConfig, Error, Message, Role, Session};

const LIMITS: DecoderConfig = DecoderConfig {
    max_frame_size: 1 << 16,
    max_message_size: 1 << 18,
    allow_rsv1: false,
};

/// What the session made of the input: its messages, then the error if any.
fn run(role: Role, chunk: usize, data: &[u8]) -> (Vec<Message>, Option<Error>) {
    let mut session = Session::new(role, LIMITS);
    let mut buf = BytesMut::new();
    let mut messages = Vec::new();
    for piece in data.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match session.decode(&mut buf) {
                Ok(Some(message)) => {
                    if let Message::Close(close) = &message {
                        let _ = session.reply_to_close(close.as_ref());
                    }
                    messages.push(message);
                }
                Ok(None) => break,
                Err(e) => {
                    assert!(e.close_code().is_some(), "{e:?} has no close code");
                    let _ = session.fail(&e);
                    return (messages, Some(e));
                }
            }
        }
        // A partial frame is at most one header plus one frame's payload.
        assert!(buf.len() <= 14 + LIMITS.max_frame_size + chunk);
    }
    (messages, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first).max(1);
    for role in [Role::Server, Role::Client] {
        let (whole, whole_error) = run(role, rest.len().max(1), rest);
        let (chunked, chunked_error) = run(role, chunk, rest);
        // Invalid text may be caught earlier when it arrives in pieces (that
        // is the point of validating incrementally), so only the messages
        // before it and the error's close code must agree.
        assert_eq!(whole, chunked, "{role:?} chunk {chunk}");
        assert_eq!(
            whole_error.and_then(|e| e.close_code()),
            chunked_error.and_then(|e| e.close_code()),
            "{role:?} chunk {chunk}"
        );
    }
});
