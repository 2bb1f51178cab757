//! One connection's protocol state: the [`Decoder`] plus the close
//! handshake (RFC 6455 §5.5.1, §7). It answers a close exactly once,
//! refuses to send data after its own close, and says when both closes
//! have crossed so the transport can be shut.

use crate::{
    close::{CloseCode, CloseFrame},
    decoder::{Decoder, DecoderConfig, InPlace, Message},
    encoder::{
        client_frame, compressed_client_frame, compressed_server_frame, server_frame, Frame,
    },
    frame::OpCode,
    Error, Role,
};
use bytes::{Bytes, BytesMut};

/// Where the close handshake stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseState {
    /// No close frame sent or received.
    Open,
    /// We sent a close and wait for the peer's.
    CloseSent,
    /// The peer sent a close that we have not answered yet.
    CloseReceived,
    /// Both closes crossed: the transport may be shut.
    Closed,
}

/// The protocol side of one connection.
#[derive(Debug)]
pub struct Session {
    // The close state lives in the decoder's padding (`Decoder::close`):
    // a server holds one session per connection, and this keeps it at
    // three words.
    decoder: Decoder,
}

impl Session {
    pub fn new(role: Role, config: DecoderConfig) -> Self {
        Session {
            decoder: Decoder::new(role, config),
        }
    }

    pub fn role(&self) -> Role {
        self.decoder.role()
    }

    pub fn state(&self) -> CloseState {
        self.decoder.close
    }

    pub fn decoder(&self) -> &Decoder {
        &self.decoder
    }

    /// permessage-deflate was agreed: RSV1 marks compressed messages.
    pub fn set_compressed(&mut self, agreed: bool) {
        self.decoder.set_allow_rsv1(agreed);
    }

    /// Decodes the next message from `buf` (see [`Decoder::decode`]). A
    /// received close moves the state on; answer it with
    /// [`Session::reply_to_close`]. Anything the peer sends after its close
    /// is a protocol error.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, Error> {
        if self.peer_closed() {
            return Self::after_close(buf.is_empty()).map(|()| None);
        }
        let message = self.decoder.decode(buf)?;
        self.saw(message.as_ref());
        Ok(message)
    }

    /// [`Decoder::decode_in_place`] with the close handshake's rules, as
    /// [`decode`](Self::decode).
    pub fn decode_in_place(&mut self, input: &mut [u8]) -> Result<Option<InPlace>, Error> {
        if self.peer_closed() {
            return Self::after_close(input.is_empty()).map(|()| None);
        }
        self.decoder.decode_in_place(input)
    }

    /// [`Decoder::finish_in_place`]; a close moves the state on.
    pub fn finish_in_place(&mut self, frame: InPlace, payload: Bytes) -> Result<Message, Error> {
        let message = self.decoder.finish_in_place(frame, payload)?;
        self.saw(Some(&message));
        Ok(message)
    }

    fn peer_closed(&self) -> bool {
        matches!(
            self.decoder.close,
            CloseState::CloseReceived | CloseState::Closed
        )
    }

    /// Once the peer has closed, any byte more is a protocol error.
    fn after_close(empty: bool) -> Result<(), Error> {
        match empty {
            true => Ok(()),
            false => Err(Error::FrameAfterClose),
        }
    }

    /// A received close moves the close handshake on.
    fn saw(&mut self, message: Option<&Message>) {
        if let Some(Message::Close(_)) = message {
            self.decoder.close = match self.decoder.close {
                CloseState::CloseSent => CloseState::Closed,
                _ => CloseState::CloseReceived,
            };
        }
    }

    /// A data or control frame to send. Fails once our close has been sent.
    /// Client frames are masked with a fresh random mask, which copies the
    /// payload; a server frame shares it.
    pub fn encode(&mut self, opcode: OpCode, fin: bool, payload: Bytes) -> Result<Frame, Error> {
        if opcode == OpCode::Close {
            // Checked like a received close, so we never send what we
            // would refuse.
            CloseFrame::parse(payload.clone())?;
            return self.encode_close_payload(payload);
        }
        self.may_send()?;
        self.frame(opcode, fin, payload)
    }

    /// Data goes out only until our close has.
    fn may_send(&self) -> Result<(), Error> {
        match self.decoder.close {
            CloseState::CloseSent | CloseState::Closed => Err(Error::SendAfterClose),
            CloseState::Open | CloseState::CloseReceived => Ok(()),
        }
    }

    /// A whole text or binary message whose `payload` permessage-deflate
    /// compressed (RSV1 set). Fails once our close has been sent.
    pub fn encode_compressed(&mut self, opcode: OpCode, payload: Bytes) -> Result<Frame, Error> {
        self.may_send()?;
        match self.role() {
            Role::Server => compressed_server_frame(opcode, payload),
            Role::Client => {
                compressed_client_frame(opcode, BytesMut::from(payload), rand::random())
            }
        }
    }

    /// Our close frame, sent first or as the answer to the peer's.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<Frame, Error> {
        let payload = CloseFrame::encode_payload(code, reason)?;
        self.encode_close_payload(payload)
    }

    /// The answer to a close the peer sent: its status code echoed (or an
    /// empty close if it sent none). `None` when there is nothing to answer
    /// (no close received, or already answered).
    pub fn reply_to_close(&mut self, received: Option<&CloseFrame>) -> Option<Frame> {
        if self.decoder.close != CloseState::CloseReceived {
            return None;
        }
        let payload = match received {
            Some(frame) => CloseFrame::encode_payload(frame.code, "").ok()?,
            None => Bytes::new(),
        };
        self.encode_close_payload(payload).ok()
    }

    /// The close frame that reports `error` to the peer, if the error is the
    /// peer's doing and our close has not been sent yet.
    pub fn fail(&mut self, error: &Error) -> Option<Frame> {
        let code = error.close_code()?;
        if !matches!(
            self.decoder.close,
            CloseState::Open | CloseState::CloseReceived
        ) {
            return None;
        }
        self.close(code, "").ok()
    }

    fn encode_close_payload(&mut self, payload: Bytes) -> Result<Frame, Error> {
        let next = match self.decoder.close {
            CloseState::Open => CloseState::CloseSent,
            CloseState::CloseReceived => CloseState::Closed,
            CloseState::CloseSent | CloseState::Closed => return Err(Error::SendAfterClose),
        };
        let frame = self.frame(OpCode::Close, true, payload)?;
        self.decoder.close = next;
        Ok(frame)
    }

    fn frame(&self, opcode: OpCode, fin: bool, payload: Bytes) -> Result<Frame, Error> {
        match self.role() {
            Role::Server => server_frame(opcode, fin, payload),
            Role::Client => client_frame(opcode, fin, BytesMut::from(payload), rand::random()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decoder::DecoderConfig, encoder::Frame};

    fn wire(frame: &Frame) -> BytesMut {
        BytesMut::from(&frame.to_bytes()[..])
    }

    fn pair() -> (Session, Session) {
        (
            Session::new(Role::Server, DecoderConfig::default()),
            Session::new(Role::Client, DecoderConfig::default()),
        )
    }

    #[test]
    fn peer_initiated_close_is_answered_once_with_its_code() {
        let (mut server, mut client) = pair();
        let close = client.close(CloseCode(4000), "done").unwrap();
        assert_eq!(client.state(), CloseState::CloseSent);
        // No more data from the side that sent its close.
        assert_eq!(
            client.encode(OpCode::Text, true, Bytes::from_static(b"x")),
            Err(Error::SendAfterClose)
        );
        let Ok(Some(Message::Close(received))) = server.decode(&mut wire(&close)) else {
            panic!()
        };
        assert_eq!(server.state(), CloseState::CloseReceived);
        let reply = server.reply_to_close(received.as_ref()).unwrap();
        assert_eq!(server.state(), CloseState::Closed);
        assert!(
            server.reply_to_close(received.as_ref()).is_none(),
            "answered twice"
        );
        assert_eq!(
            server.close(CloseCode::NORMAL, ""),
            Err(Error::SendAfterClose)
        );
        let Ok(Some(Message::Close(Some(echo)))) = client.decode(&mut wire(&reply)) else {
            panic!()
        };
        assert_eq!(echo.code, CloseCode(4000));
        assert_eq!(client.state(), CloseState::Closed);
    }

    #[test]
    fn empty_close_is_answered_with_an_empty_close() {
        let (mut server, mut client) = pair();
        let close = client.encode(OpCode::Close, true, Bytes::new()).unwrap();
        let Ok(Some(Message::Close(None))) = server.decode(&mut wire(&close)) else {
            panic!()
        };
        let reply = server.reply_to_close(None).unwrap();
        assert!(reply.payload.is_empty());
    }

    #[test]
    fn data_after_peer_close_is_a_protocol_error() {
        let (mut server, mut client) = pair();
        let mut buf = wire(&client.close(CloseCode::NORMAL, "").unwrap());
        buf.extend_from_slice(&client_frame_bytes(b"late"));
        assert!(matches!(
            server.decode(&mut buf),
            Ok(Some(Message::Close(_)))
        ));
        assert_eq!(server.decode(&mut buf), Err(Error::FrameAfterClose));
    }

    fn client_frame_bytes(payload: &[u8]) -> BytesMut {
        let mut out = BytesMut::new();
        crate::encoder::write_client_frame(&mut out, OpCode::Text, true, payload, [1, 2, 3, 4])
            .unwrap();
        out
    }

    #[test]
    fn data_still_flows_to_us_after_our_close() {
        let (mut server, mut client) = pair();
        let _ = server.close(CloseCode::GOING_AWAY, "bye").unwrap();
        let mut buf = client_frame_bytes(b"in flight");
        assert!(matches!(
            server.decode(&mut buf),
            Ok(Some(Message::Text(_)))
        ));
        let reply = client.close(CloseCode::GOING_AWAY, "").unwrap();
        assert!(matches!(
            server.decode(&mut wire(&reply)),
            Ok(Some(Message::Close(_)))
        ));
        assert_eq!(server.state(), CloseState::Closed);
    }

    #[test]
    fn failure_sends_the_mapped_close_code_once() {
        let (mut server, _) = pair();
        let err = server
            .decode(&mut BytesMut::from(&[0x81u8, 0x00][..]))
            .unwrap_err();
        let frame = server.fail(&err).unwrap();
        assert_eq!(&frame.payload[..], &1002u16.to_be_bytes());
        assert!(server.fail(&err).is_none());
        assert!(
            server.fail(&Error::InvalidKey).is_none(),
            "not a connection error"
        );
    }

    #[test]
    fn invalid_outgoing_close_is_refused_without_changing_state() {
        let (mut server, _) = pair();
        assert_eq!(
            server.close(CloseCode(1005), ""),
            Err(Error::InvalidCloseCode(1005))
        );
        assert_eq!(
            server.encode(OpCode::Close, true, Bytes::from_static(&[0x03, 0xE8, 0xFF])),
            Err(Error::InvalidUtf8)
        );
        assert_eq!(
            server.close(CloseCode::NORMAL, &"x".repeat(124)),
            Err(Error::ControlPayloadTooLong(126))
        );
        assert_eq!(server.state(), CloseState::Open);
        assert_eq!(
            server.encode(OpCode::Ping, true, Bytes::from(vec![0; 126])),
            Err(Error::ControlPayloadTooLong(126))
        );
    }

    #[test]
    fn client_frames_are_masked_server_frames_are_not() {
        let (mut server, mut client) = pair();
        let from_client = client
            .encode(OpCode::Binary, true, Bytes::from_static(b"abc"))
            .unwrap();
        assert!(from_client.header.as_slice()[1] & 0x80 != 0);
        let from_server = server
            .encode(OpCode::Binary, true, Bytes::from_static(b"abc"))
            .unwrap();
        assert_eq!(from_server.header.as_slice(), &[0x82, 3]);
        assert!(
            matches!(server.decode(&mut wire(&from_client)), Ok(Some(Message::Binary(b))) if b == "abc")
        );
    }
}
