//! What a scenario sends through ([`Outbox`]): frames appended to the
//! connection's output, each message in one final frame, data messages
//! compressed when the connection agreed to permessage-deflate. The
//! scenario writes messages, not frames, so it stays the same with
//! `--deflate` or without, and the payload it sent can be counted apart
//! from the bytes that went on the wire.

use crate::deflate::{ConnDeflate, SharedDeflate};
use bytes::BytesMut;
use uringws_protocol::{
    encoder::{write_client_frame, write_compressed_client_frame},
    OpCode,
};

/// One connection's output for one call of a scenario.
///
/// ```
/// use bytes::BytesMut;
/// use uringws_load::outbox::Outbox;
/// use uringws_protocol::OpCode;
///
/// let mut frames = BytesMut::new();
/// let mut out = Outbox::new(&mut frames);
/// out.send(OpCode::Text, b"hello");
/// out.send(OpCode::Ping, b"alive?");
/// assert_eq!(out.payload_bytes(), 5, "control frames carry no payload of the scenario's");
/// assert_eq!(frames.len(), (2 + 4 + 5) + (2 + 4 + 6));
/// ```
pub struct Outbox<'a> {
    frames: &'a mut BytesMut,
    deflate: Option<(&'a mut ConnDeflate, &'a mut SharedDeflate)>,
    payload: u64,
}

impl<'a> Outbox<'a> {
    /// Frames as they are, appended to `frames`.
    pub fn new(frames: &'a mut BytesMut) -> Outbox<'a> {
        Outbox {
            frames,
            deflate: None,
            payload: 0,
        }
    }

    /// Data messages compressed as `conn` agreed, with the worker's
    /// `shared` streams where it takes no context.
    pub(crate) fn compressing(
        frames: &'a mut BytesMut,
        conn: Option<&'a mut ConnDeflate>,
        shared: &'a mut SharedDeflate,
    ) -> Outbox<'a> {
        Outbox {
            frames,
            deflate: conn.map(|conn| (conn, shared)),
            payload: 0,
        }
    }

    /// Sends one message (text, binary) or control frame, masked with a
    /// fresh key. A frame the protocol does not allow (a control payload
    /// over 125 bytes) is not sent.
    pub fn send(&mut self, opcode: OpCode, payload: &[u8]) {
        let mask = rand::random();
        let data = matches!(opcode, OpCode::Text | OpCode::Binary);
        let written = match &mut self.deflate {
            // RFC 7692 compresses data messages only; control frames stay
            // as they are.
            Some((conn, shared)) if data => {
                let compressed = shared.compress(conn, payload);
                write_compressed_client_frame(self.frames, opcode, compressed, mask)
            }
            _ => write_client_frame(self.frames, opcode, true, payload, mask),
        };
        if data && written.is_ok() {
            self.payload += payload.len() as u64;
        }
    }

    /// Payload bytes of the data messages sent through it, before any
    /// compression.
    pub fn payload_bytes(&self) -> u64 {
        self.payload
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deflate::DeflateOffer;
    use uringws_protocol::{
        deflate::{ClientDeflate, Decompressor, DeflateParams},
        Decoder, DecoderConfig, Message, Role,
    };

    #[test]
    fn data_is_compressed_and_control_frames_are_not() {
        let offer = DeflateOffer::new(ClientDeflate::default(), 6);
        let mut conn = ConnDeflate::new(DeflateParams::default(), &offer);
        let mut shared = SharedDeflate::default();
        let mut frames = BytesMut::new();
        let text = "ab".repeat(500);
        let mut out = Outbox::compressing(&mut frames, Some(&mut conn), &mut shared);
        out.send(OpCode::Text, text.as_bytes());
        out.send(OpCode::Ping, b"alive?");
        assert_eq!(out.payload_bytes(), 1000);
        assert!(frames.len() < 100, "{} bytes on the wire", frames.len());

        // What a server reads from it.
        let mut server = Decoder::new(
            Role::Server,
            DecoderConfig {
                allow_rsv1: true,
                ..DecoderConfig::default()
            },
        );
        let Ok(Some(Message::Compressed(compressed))) = server.decode(&mut frames) else {
            panic!("a compressed message first");
        };
        let mut inflate = Decompressor::new(15, false);
        assert_eq!(
            compressed.inflate(&mut inflate, 1 << 20),
            Ok(Message::Text(text.as_str().into()))
        );
        assert_eq!(
            server.decode(&mut frames),
            Ok(Some(Message::Ping(b"alive?"[..].into())))
        );
    }
}
