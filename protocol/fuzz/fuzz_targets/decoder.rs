//! Arbitrary bytes, cut into arbitrary chunks, through a server and a client
//! session: no panic, every error maps to a close code, and nothing is
//! buffered beyond the configured limits.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use uringws_protocol::{DecoderConfig, Message, Role, Session};

const LIMITS: DecoderConfig = DecoderConfig {
    max_frame_size: 1 << 16,
    max_message_size: 1 << 18,
    allow_rsv1: false,
};

fn run(role: Role, chunk: usize, data: &[u8]) {
    let mut session = Session::new(role, LIMITS);
    let mut buf = BytesMut::new();
    for piece in data.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match session.decode(&mut buf) {
                Ok(Some(Message::Close(close))) => {
                    let _ = session.reply_to_close(close.as_ref());
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    assert!(e.close_code().is_some(), "{e:?} has no close code");
                    let _ = session.fail(&e);
                    return;
                }
            }
        }
        // A partial frame is at most one header plus one frame's payload.
        assert!(buf.len() <= 14 + LIMITS.max_frame_size + chunk);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first).max(1);
    run(Role::Server, chunk, rest);
    run(Role::Client, chunk, rest);
});
