//! Message assembly: bytes in, [`Message`]s out.
//!
//! The decoder takes frames off the front of a caller-owned `BytesMut`,
//! unmasks them in place, checks every rule that depends on the connection
//! (role, negotiated extensions, fragmentation state, size limits), and
//! validates text as it arrives. A message that arrived in one frame is
//! returned as a `Bytes` split off the caller's buffer: no copy. Only
//! fragmented messages are copied, into one buffer per message.
//!
//! A message compressed with permessage-deflate (RSV1 on its first frame,
//! when the extension was negotiated) comes out whole and still compressed
//! ([`Message::Compressed`]): its text can only be checked once inflated,
//! and the decompressor may be shared by many connections
//! ([`Compressed::inflate`]).

use crate::{
    close::CloseFrame,
    frame::{FrameHeader, OpCode},
    mask::apply_mask,
    session::CloseState,
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
    /// A text or binary message as permessage-deflate sent it: to be
    /// inflated, and its text validated, by [`Compressed::inflate`].
    Compressed(Compressed),
}

/// A whole message's compressed payload (all its fragments', in order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compressed {
    pub text: bool,
    pub data: Bytes,
}

/// Limits and negotiated options for one connection's decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecoderConfig {
    /// The largest frame payload accepted; a larger frame is refused as soon
    /// as its header arrives (close 1009). Capped at 4 GiB.
    pub max_frame_size: usize,
    /// The largest message accepted, over all its fragments (close 1009).
    /// Capped at 4 GiB.
    pub max_message_size: usize,
    /// RSV1 is allowed only when permessage-deflate, which defines it, was
    /// negotiated, and then only on a data message's first frame (RFC 7692
    /// §6.1): it marks the message compressed.
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
    /// Whether the payload is text to validate as it arrives: part of a
    /// text message that is not compressed.
    text: bool,
}

/// A fragmented message in progress.
#[derive(Debug)]
struct Fragments {
    text: bool,
    compressed: bool,
    data: BytesMut,
}

/// What outlives one `decode` call: a frame split across reads, or a
/// fragmented message. Boxed so that an idle connection's decoder is a few
/// words: most frames arrive whole and never need it.
#[derive(Debug, Default)]
struct Partial {
    frame: Option<CurrentFrame>,
    fragments: Option<Fragments>,
    /// The text message's validator, when its text spans reads or frames.
    utf8: Utf8Validator,
}

/// Decodes one direction of one connection.
#[derive(Debug)]
pub struct Decoder {
    // The limits as u32 (capped at 4 GiB) keep an idle decoder small: a
    // server holds one per connection.
    max_frame_size: u32,
    max_message_size: u32,
    allow_rsv1: bool,
    role: Role,
    partial: Option<Box<Partial>>,
    /// The close handshake of the [`Session`](crate::Session) that owns
    /// this decoder, kept here where it costs no room; unused otherwise.
    pub(crate) close: CloseState,
}

/// Unmasks payload bytes that just arrived and, for text, feeds them to
/// the message's validator.
fn unmask_and_check(
    fresh: &mut [u8],
    frame: &CurrentFrame,
    utf8: &mut Utf8Validator,
) -> Result<(), Error> {
    if let Some(mask) = frame.header.mask {
        apply_mask(fresh, mask, frame.done);
    }
    if frame.text {
        utf8.feed(fresh)?;
    }
    Ok(())
}

impl Decoder {
    /// A decoder for the given side: a server expects masked frames, a
    /// client unmasked ones.
    pub fn new(role: Role, config: DecoderConfig) -> Self {
        let cap = |limit: usize| u32::try_from(limit).unwrap_or(u32::MAX);
        Decoder {
            max_frame_size: cap(config.max_frame_size),
            max_message_size: cap(config.max_message_size),
            allow_rsv1: config.allow_rsv1,
            role,
            partial: None,
            close: CloseState::Open,
        }
    }

    /// The limits in force; each is capped at `u32::MAX` bytes.
    pub fn config(&self) -> DecoderConfig {
        DecoderConfig {
            max_frame_size: self.max_frame_size as usize,
            max_message_size: self.max_message_size as usize,
            allow_rsv1: self.allow_rsv1,
        }
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// Whether RSV1 may mark a message compressed: set once
    /// permessage-deflate is agreed.
    pub fn set_allow_rsv1(&mut self, allow: bool) {
        self.allow_rsv1 = allow;
    }

    /// Whether a frame or a fragmented message is partly received; a peer
    /// that closes the TCP connection now ended mid-message.
    pub fn is_mid_message(&self) -> bool {
        self.partial.is_some()
    }

    /// Takes the next message off the front of `buf`, or returns `None` when
    /// `buf` ends before one is complete (what was consumed stays consumed;
    /// call again when more bytes were appended). After an error the
    /// connection must be closed with [`Error::close_code`].
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, Error> {
        loop {
            let resumed = self.partial.as_mut().and_then(|p| p.frame.take());
            let frame = match resumed {
                Some(frame) => frame,
                None => match self.start_frame(buf)? {
                    Some(frame) => frame,
                    None => return Ok(None),
                },
            };
            if buf.len() < frame.len {
                // Unmask and check what is here now, so bad text fails
                // before the rest of a large frame arrives.
                let available = buf.len();
                let partial = self.partial.get_or_insert_with(Default::default);
                unmask_and_check(&mut buf[frame.done..available], &frame, &mut partial.utf8)?;
                partial.frame = Some(CurrentFrame {
                    done: available,
                    ..frame
                });
                return Ok(None);
            }
            let mut payload = buf.split_to(frame.len);
            let fresh = &mut payload[frame.done..];
            let ends_text = frame.text && frame.header.fin;
            match self.partial.as_mut() {
                Some(partial) => {
                    unmask_and_check(fresh, &frame, &mut partial.utf8)?;
                    if ends_text {
                        partial.utf8.finish()?;
                    }
                }
                None => {
                    let mut utf8 = Utf8Validator::new();
                    unmask_and_check(fresh, &frame, &mut utf8)?;
                    if ends_text {
                        utf8.finish()?;
                    } else if frame.text {
                        // The first fragment of a text message: its
                        // validator lives on with the fragments.
                        self.partial = Some(Box::new(Partial {
                            utf8,
                            ..Partial::default()
                        }));
                    }
                }
            }
            let message = self.finish_frame(frame.header, payload)?;
            if self
                .partial
                .as_ref()
                .is_some_and(|p| p.frame.is_none() && p.fragments.is_none() && p.utf8.is_complete())
            {
                self.partial = None;
            }
            if let Some(message) = message {
                return Ok(Some(message));
            }
        }
    }

    /// Parses and checks the next header, and takes it off the buffer.
    fn start_frame(&mut self, buf: &mut BytesMut) -> Result<Option<CurrentFrame>, Error> {
        let Some((header, header_len)) = FrameHeader::parse(buf)? else {
            return Ok(None);
        };
        let frame = self.check(header)?;
        buf.advance(header_len);
        Ok(Some(frame))
    }

    /// Checks a header against the connection's rules and limits.
    fn check(&self, header: FrameHeader) -> Result<CurrentFrame, Error> {
        let starts_message = matches!(header.opcode, OpCode::Text | OpCode::Binary);
        if header.rsv2 || header.rsv3 || (header.rsv1 && !(self.allow_rsv1 && starts_message)) {
            return Err(Error::ReservedBits);
        }
        match (self.role, header.mask.is_some()) {
            (Role::Server, false) => return Err(Error::UnmaskedClientFrame),
            (Role::Client, true) => return Err(Error::MaskedServerFrame),
            _ => {}
        }
        let limit = self.max_frame_size as usize;
        if header.payload_len > limit as u64 {
            return Err(Error::FrameTooLarge {
                size: header.payload_len,
                limit,
            });
        }
        // Checked above: the length fits in usize.
        let len = header.payload_len as usize;
        let fragments = self.partial.as_ref().and_then(|p| p.fragments.as_ref());
        let text = match (header.opcode, fragments) {
            (OpCode::Continuation, None) => return Err(Error::UnexpectedContinuation),
            (OpCode::Text | OpCode::Binary, Some(_)) => return Err(Error::ExpectedContinuation),
            (OpCode::Continuation, Some(fragments)) => fragments.text && !fragments.compressed,
            (OpCode::Text, None) => !header.rsv1,
            _ => false,
        };
        if !header.opcode.is_control() {
            let so_far = fragments.map_or(0, |f| f.data.len());
            let limit = self.max_message_size as usize;
            if so_far + len > limit {
                return Err(Error::MessageTooLarge {
                    size: (so_far + len) as u64,
                    limit,
                });
            }
        }
        Ok(CurrentFrame {
            header,
            len,
            done: 0,
            text,
        })
    }

    /// Reads the next frame where it lies in `input`, a receive buffer the
    /// caller owns, when it is a whole unfragmented message or control frame
    /// and nothing is pending: its payload is unmasked and checked in
    /// `input` itself. The caller then cuts the frame off its buffer (the
    /// header's [`InPlace::header_len`] bytes, then
    /// [`InPlace::payload_len`] of payload, shared or copied as it likes)
    /// and turns the payload into the message with
    /// [`finish_in_place`](Self::finish_in_place). `Ok(None)` leaves
    /// `input` untouched: the frame is not whole in it, or it is a
    /// fragment; append `input` to the connection's buffer and go on with
    /// [`decode`](Self::decode). Errors are those of `decode`, found as
    /// early.
    pub fn decode_in_place(&mut self, input: &mut [u8]) -> Result<Option<InPlace>, Error> {
        if self.partial.is_some() {
            return Ok(None);
        }
        let Some((header, header_len)) = FrameHeader::parse(input)? else {
            return Ok(None);
        };
        let frame = self.check(header)?;
        if header.opcode == OpCode::Continuation || !header.fin {
            return Ok(None);
        }
        let Some(payload) = input.get_mut(header_len..header_len + frame.len) else {
            return Ok(None);
        };
        let mut utf8 = Utf8Validator::new();
        unmask_and_check(payload, &frame, &mut utf8)?;
        if frame.text {
            utf8.finish()?;
        }
        Ok(Some(InPlace {
            header,
            header_len,
            payload_len: frame.len,
        }))
    }

    /// The message of a frame read by [`decode_in_place`](Self::decode_in_place),
    /// from its payload (the unmasked bytes, cut from the caller's buffer).
    pub fn finish_in_place(&mut self, frame: InPlace, payload: Bytes) -> Result<Message, Error> {
        debug_assert_eq!(payload.len(), frame.payload_len);
        whole_message(frame.header, payload)
    }

    /// How many bytes the frame at the front of `buf` (or, while a frame
    /// is partly decoded, its payload) takes in all, if its header is
    /// there: room to reserve so that its pieces are appended without the
    /// buffer growing by steps. Not checked against the limits.
    pub fn frame_len_hint(&self, buf: &[u8]) -> Option<usize> {
        if let Some(frame) = self.partial.as_ref().and_then(|p| p.frame.as_ref()) {
            return Some(frame.len);
        }
        let (header, header_len) = FrameHeader::parse(buf).ok()??;
        usize::try_from(header.payload_len)
            .ok()
            .map(|len| len.saturating_add(header_len))
    }

    /// Turns a complete, unmasked payload into a message, or folds it into
    /// the fragmented message in progress.
    fn finish_frame(
        &mut self,
        header: FrameHeader,
        payload: BytesMut,
    ) -> Result<Option<Message>, Error> {
        let data = match header.opcode {
            OpCode::Text | OpCode::Binary if !header.fin => {
                let fragments = Fragments {
                    text: header.opcode == OpCode::Text,
                    compressed: header.rsv1,
                    data: payload,
                };
                self.partial.get_or_insert_with(Default::default).fragments = Some(fragments);
                return Ok(None);
            }
            OpCode::Continuation => payload,
            _ => return whole_message(header, payload.freeze()).map(Some),
        };
        let Some(partial) = self.partial.as_mut() else {
            return Err(Error::UnexpectedContinuation);
        };
        let Some(fragments) = partial.fragments.as_mut() else {
            return Err(Error::UnexpectedContinuation);
        };
        fragments.data.extend_from_slice(&data);
        if !header.fin {
            return Ok(None);
        }
        let Some(fragments) = partial.fragments.take() else {
            return Err(Error::UnexpectedContinuation);
        };
        Ok(Some(fragments.complete()))
    }
}

impl Fragments {
    /// The whole message; its text, unless compressed, was validated by
    /// `decode`.
    fn complete(self) -> Message {
        data_message(self.compressed, self.text, self.data.freeze())
    }
}

/// The message of one final frame that is not a continuation, from its
/// checked, unmasked payload.
fn whole_message(header: FrameHeader, payload: Bytes) -> Result<Message, Error> {
    Ok(match header.opcode {
        OpCode::Ping => Message::Ping(payload),
        OpCode::Pong => Message::Pong(payload),
        OpCode::Close => Message::Close(CloseFrame::parse(payload)?),
        OpCode::Text | OpCode::Binary | OpCode::Continuation => {
            data_message(header.rsv1, header.opcode == OpCode::Text, payload)
        }
    })
}

/// A data message; its text, unless compressed, already validated.
fn data_message(compressed: bool, text: bool, data: Bytes) -> Message {
    match (compressed, text) {
        (true, text) => Message::Compressed(Compressed { text, data }),
        (false, true) => Message::Text(Utf8Bytes::from_validated(data)),
        (false, false) => Message::Binary(data),
    }
}

/// A frame whole in the caller's buffer, unmasked and checked there
/// ([`Decoder::decode_in_place`]).
#[derive(Debug)]
#[must_use = "the frame is to be cut off the buffer and finished"]
pub struct InPlace {
    header: FrameHeader,
    header_len: usize,
    payload_len: usize,
}

impl InPlace {
    /// Bytes of the frame's header, at the front of the buffer.
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// Bytes of its payload, right after the header.
    pub fn payload_len(&self) -> usize {
        self.payload_len
    }
}
