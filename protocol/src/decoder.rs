//! Message assembly: bytes in, [`Message`]s out.
//!
//! The decoder takes frames off the front of a caller-owned `BytesMut`,
//! unmasks them in place, checks every rule that depends on the connection
//! (role, negotiated extensions, fragmentation state, size limits), and
//! validates text as it arrives. A message that arrived in one frame is
//! returned as a `Bytes` split off the caller's buffer: no copy. Only
//! fragmented messages are copied, into one buffer per message.

use crate::{
    close::CloseFrame,
    frame::{FrameHeader, OpCode},
    mask::apply_mask,
    utf8::{Utf8Bytes, Utf8Validator},
    Error, Role,
};
use bytes::{Buf, Bytes, BytesMut};

/// A complete message or control frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Text(Utf8Bytes),
    Binary(Bytes),
    Ping(Bytes),
    Pong(Bytes),
    /// `None` when the close frame carried no status code.
    Close(Option<CloseFrame>),
}

/// Limits and negotiated options for one connection's decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecoderConfig {
    /// The largest frame payload accepted; a larger frame is refused as soon
    /// as its header arrives (close 1009).
    pub max_frame_size: usize,
    /// The largest message accepted, over all its fragments (close 1009).
    pub max_message_size: usize,
    /// RSV1 is allowed only when an extension that defines it (such as
    /// permessage-deflate) was negotiated.
    pub allow_rsv1: bool,
}

impl Default for DecoderConfig {
    /// 16 MiB frames and 64 MiB messages, as tungstenite; Autobahn's largest
    /// cases send 16 MiB.
    fn default() -> Self {
        DecoderConfig {
            max_frame_size: 16 << 20,
            max_message_size: 64 << 20,
            allow_rsv1: false,
        }
    }
}

/// The frame whose header has been taken off the buffer and whose payload
/// is (perhaps partly) in it.
#[derive(Debug, Clone, Copy)]
struct CurrentFrame {
    header: FrameHeader,
    len: usize,
    /// Payload bytes at the front of the buffer already unmasked (and
    /// validated, for text).
    done: usize,
    /// Whether the payload is part of a text message.
    text: bool,
}

/// A fragmented message in progress.
#[derive(Debug)]
struct Fragments {
    text: bool,
    data: BytesMut,
}

/// Decodes one direction of one connection.
#[derive(Debug)]
pub struct Decoder {
    role: Role,
    config: DecoderConfig,
    frame: Option<CurrentFrame>,
    fragments: Option<Fragments>,
    utf8: Utf8Validator,
}

impl Decoder {
    /// A decoder for the given side: a server expects masked frames, a
    /// client unmasked ones.
    pub fn new(role: Role, config: DecoderConfig) -> Self {
        Decoder {
            role,
            config,
            frame: None,
            fragments: None,
            utf8: Utf8Validator::new(),
        }
    }

    pub fn config(&self) -> &DecoderConfig {
        &self.config
    }

    /// Whether a frame or a fragmented message is partly received; a peer
    /// that closes the TCP connection now ended mid-message.
    pub fn is_mid_message(&self) -> bool {
        self.frame.is_some() || self.fragments.is_some()
    }

    /// Takes the next message off the front of `buf`, or returns `None` when
    /// `buf` ends before one is complete (what was consumed stays consumed;
    /// call again when more bytes were appended). After an error the
    /// connection must be closed with [`Error::close_code`].
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, Error> {
        loop {
            let frame = match self.frame {
                Some(frame) => frame,
                None => match self.start_frame(buf)? {
                    Some(frame) => frame,
                    None => return Ok(None),
                },
            };
            let available = buf.len().min(frame.len);
            if available > frame.done {
                let mask = frame.header.mask.unwrap_or_default();
                let fresh = &mut buf[frame.done..available];
                if frame.header.mask.is_some() {
                    apply_mask(fresh, mask, frame.done);
                }
                if frame.text {
                    self.utf8.feed(fresh)?;
                }
            }
            if available < frame.len {
                self.frame = Some(CurrentFrame {
                    done: available,
                    ..frame
                });
                return Ok(None);
            }
            self.frame = None;
            let payload = buf.split_to(frame.len);
            if let Some(message) = self.finish_frame(frame.header, payload)? {
                return Ok(Some(message));
            }
        }
    }

    /// Parses and checks the next header, and takes it off the buffer.
    fn start_frame(&mut self, buf: &mut BytesMut) -> Result<Option<CurrentFrame>, Error> {
        let Some((header, header_len)) = FrameHeader::parse(buf)? else {
            return Ok(None);
        };
        if header.rsv2 || header.rsv3 || (header.rsv1 && !self.config.allow_rsv1) {
            return Err(Error::ReservedBits);
        }
        match (self.role, header.mask.is_some()) {
            (Role::Server, false) => return Err(Error::UnmaskedClientFrame),
            (Role::Client, true) => return Err(Error::MaskedServerFrame),
            _ => {}
        }
        let limit = self.config.max_frame_size;
        if header.payload_len > limit as u64 {
            return Err(Error::FrameTooLarge {
                size: header.payload_len,
                limit,
            });
        }
        // Checked above: the length fits in usize.
        let len = header.payload_len as usize;
        let text = match (header.opcode, &self.fragments) {
            (OpCode::Continuation, None) => return Err(Error::UnexpectedContinuation),
            (OpCode::Text | OpCode::Binary, Some(_)) => return Err(Error::ExpectedContinuation),
            (OpCode::Continuation, Some(fragments)) => fragments.text,
            (OpCode::Text, None) => true,
            _ => false,
        };
        if !header.opcode.is_control() {
            let so_far = self.fragments.as_ref().map_or(0, |f| f.data.len());
            let limit = self.config.max_message_size;
            if so_far + len > limit {
                return Err(Error::MessageTooLarge {
                    size: (so_far + len) as u64,
                    limit,
                });
            }
        }
        buf.advance(header_len);
        let frame = CurrentFrame {
            header,
            len,
            done: 0,
            text,
        };
        self.frame = Some(frame);
        Ok(Some(frame))
    }

    /// Turns a complete, unmasked payload into a message, or folds it into
    /// the fragmented message in progress.
    fn finish_frame(
        &mut self,
        header: FrameHeader,
        payload: BytesMut,
    ) -> Result<Option<Message>, Error> {
        let data = match header.opcode {
            OpCode::Ping => return Ok(Some(Message::Ping(payload.freeze()))),
            OpCode::Pong => return Ok(Some(Message::Pong(payload.freeze()))),
            OpCode::Close => {
                return CloseFrame::parse(payload.freeze()).map(|c| Some(Message::Close(c)))
            }
            OpCode::Text | OpCode::Binary if header.fin => {
                return self
                    .complete(header.opcode == OpCode::Text, payload)
                    .map(Some);
            }
            OpCode::Text | OpCode::Binary => {
                self.fragments = Some(Fragments {
                    text: header.opcode == OpCode::Text,
                    data: payload,
                });
                return Ok(None);
            }
            OpCode::Continuation => payload,
        };
        let Some(fragments) = self.fragments.as_mut() else {
            return Err(Error::UnexpectedContinuation);
        };
        fragments.data.extend_from_slice(&data);
        if !header.fin {
            return Ok(None);
        }
        let Some(Fragments { text, data }) = self.fragments.take() else {
            return Err(Error::UnexpectedContinuation);
        };
        self.complete(text, data).map(Some)
    }

    fn complete(&mut self, text: bool, data: BytesMut) -> Result<Message, Error> {
        let data = data.freeze();
        if text {
            self.utf8.finish()?;
            Ok(Message::Text(Utf8Bytes::from_validated(data)))
        } else {
            Ok(Message::Binary(data))
        }
    }
}
