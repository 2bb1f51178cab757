//! One connection's protocol state: the [`Decoder`] plus the close
//! handshake (RFC 6455 §5.5.1, §7). It answers a close exactly once,
//! refuses to send data after its own close, and says when both closes
//! have crossed so the transport can be shut.

use crate::{
    close::{CloseCode, CloseFrame},
    decoder::{Decoder, DecoderConfig, Message},
    encoder::{client_frame, server_frame, Frame},
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
    role: Role,
    decoder: Decoder,
    state: CloseState,
}

impl Session {
    pub fn new(role: Role, config: DecoderConfig) -> Self {
        Session {
            role,
            decoder: Decoder::new(role, config),
            state: CloseState::Open,
        }
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn state(&self) -> CloseState {
        self.state
    }

    pub fn decoder(&self) -> &Decoder {
        &self.decoder
    }

    /// Decodes the next message from `buf` (see [`Decoder::decode`]). A
    /// received close moves the state on; answer it with
    /// [`Session::reply_to_close`]. Anything the peer sends after its close
    /// is a protocol error.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, Error> {
        if matches!(self.state, CloseState::CloseReceived | CloseState::Closed) {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(Error::FrameAfterClose)
            };
        }
        let message = self.decoder.decode(buf)?;
        if let Some(Message::Close(_)) = message {
            self.state = match self.state {
                CloseState::CloseSent => CloseState::Closed,
                _ => CloseState::CloseReceived,
            };
        }
        Ok(message)
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
        if matches!(self.state, CloseState::CloseSent | CloseState::Closed) {
            return Err(Error::SendAfterClose);
        }
        self.frame(opcode, fin, payload)
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
        if self.state != CloseState::CloseReceived {
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
        if !matches!(self.state, CloseState::Open | CloseState::CloseReceived) {
            return None;
        }
        self.close(code, "").ok()
    }

    fn encode_close_payload(&mut self, payload: Bytes) -> Result<Frame, Error> {
        let next = match self.state {
            CloseState::Open => CloseState::CloseSent,
            CloseState::CloseReceived => CloseState::Closed,
            CloseState::CloseSent | CloseState::Closed => return Err(Error::SendAfterClose),
        };
        let frame = self.frame(OpCode::Close, true, payload)?;
        self.state = next;
        Ok(frame)
    }

    fn frame(&self, opcode: OpCode, fin: bool, payload: Bytes) -> Result<Frame, Error> {
        match self.role {
            Role::Server => server_frame(opcode, fin, payload),
            Role::Client => client_frame(opcode, fin, BytesMut::from(payload), rand::random()),
        }
    }
}
