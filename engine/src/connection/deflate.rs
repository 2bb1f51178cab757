//! permessage-deflate for a worker's connections: which compressor and
//! decompressor each uses, and the ones the worker holds.
//!
//! Without context takeover (the default, [`Compression::shared`]) a
//! message owes nothing to the ones before it, so one compressor per window
//! size and one decompressor serve every connection of the worker, and a
//! connection carries one byte for compression: its [`DeflateTag`], in
//! padding. A connection that keeps context either way has its own streams
//! ([`Dedicated`]), by slot in the worker's table, made when first used.

use crate::config::Compression;
use bytes::Bytes;
use std::collections::HashMap;
use uringws_protocol::{
    decoder::Compressed,
    deflate::{Compressor, Decompressor, DeflateParams, MAX_WINDOW_BITS, MIN_WINDOW_BITS},
    Error, FrameHeader, Message, OpCode,
};

/// One connection's agreement, in a byte: the window the server compresses
/// with (0: permessage-deflate not agreed) and whether the connection has
/// streams of its own.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DeflateTag(u8);

const WINDOW: u8 = 0x0F;
const DEDICATED: u8 = 0x10;

impl DeflateTag {
    pub(crate) const OFF: DeflateTag = DeflateTag(0);

    fn new(params: &DeflateParams) -> DeflateTag {
        let dedicated = !(params.server_no_context_takeover && params.client_no_context_takeover);
        let bits = params
            .server_max_window_bits
            .clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS);
        DeflateTag(bits | if dedicated { DEDICATED } else { 0 })
    }

    pub(crate) fn is_on(self) -> bool {
        self.0 != 0
    }

    pub(crate) fn is_dedicated(self) -> bool {
        self.0 & DEDICATED != 0
    }

    fn window_bits(self) -> u8 {
        self.0 & WINDOW
    }
}

/// The streams of a connection that keeps context in one direction or
/// both; the other direction, if any, uses the worker's.
pub(crate) struct Dedicated {
    params: DeflateParams,
    compressor: Option<Compressor>,
    decompressor: Option<Decompressor>,
    /// A message went out that our compressor did not make (a publication
    /// compressed once for many, or one sent as it is after compressing it
    /// made it no smaller): the peer's window no longer matches ours, so
    /// the next message must not refer back.
    stale: bool,
}

/// A worker's compression: its shared streams, made when first needed,
/// and its connections' own.
pub(crate) struct Deflating {
    /// By window bits, 9..=15: a client may ask us for a smaller window.
    compressors: [Option<Compressor>; 7],
    decompressor: Option<Decompressor>,
    dedicated: HashMap<u32, Box<Dedicated>>,
}

impl Deflating {
    pub(crate) fn new() -> Deflating {
        Deflating {
            compressors: Default::default(),
            decompressor: None,
            dedicated: HashMap::new(),
        }
    }

    /// A connection agreed to `params`: its tag, and its own streams if it
    /// keeps context.
    pub(crate) fn open(&mut self, slot: u32, params: &DeflateParams) -> DeflateTag {
        let tag = DeflateTag::new(params);
        if tag.is_dedicated() {
            self.dedicated.insert(
                slot,
                Box::new(Dedicated {
                    params: *params,
                    compressor: None,
                    decompressor: None,
                    stale: false,
                }),
            );
        }
        tag
    }

    /// Connections with streams of their own, and how many of those
    /// streams were made.
    #[cfg(test)]
    pub(crate) fn dedicated_streams(&self) -> (usize, usize) {
        let made = self
            .dedicated
            .values()
            .map(|d| usize::from(d.compressor.is_some()) + usize::from(d.decompressor.is_some()));
        (self.dedicated.len(), made.sum())
    }

    pub(crate) fn close(&mut self, slot: u32, tag: DeflateTag) {
        if tag.is_dedicated() {
            self.dedicated.remove(&slot);
        }
    }

    /// A received compressed message, inflated (see [`Compressed::inflate`]).
    pub(crate) fn inflate(
        &mut self,
        slot: u32,
        tag: DeflateTag,
        message: &Compressed,
        limit: usize,
    ) -> Result<Message, Error> {
        if !tag.is_on() {
            return Err(Error::ReservedBits);
        }
        let own = match tag.is_dedicated() {
            true => self.dedicated.get_mut(&slot),
            false => None,
        };
        let decompressor = match own {
            Some(own) if !own.params.client_no_context_takeover => {
                let bits = own.params.client_max_window_bits;
                own.decompressor
                    .get_or_insert_with(|| Decompressor::new(bits, false))
            }
            _ => self
                .decompressor
                .get_or_insert_with(|| Decompressor::new(MAX_WINDOW_BITS, true)),
        };
        message.inflate(decompressor, limit)
    }

    /// `payload` compressed for the connection, if it is long enough to be
    /// worth it and came out shorter; `None`: send it as it is.
    pub(crate) fn compress(
        &mut self,
        slot: u32,
        tag: DeflateTag,
        payload: &[u8],
        config: &Compression,
    ) -> Option<Bytes> {
        let own = match tag.is_dedicated() && worth(tag, payload, config) {
            true => self.dedicated.get_mut(&slot),
            false => None,
        };
        let packed = match own {
            Some(own) if !own.params.server_no_context_takeover => {
                let bits = own.params.server_max_window_bits;
                let compressor = own.compressor.get_or_insert_with(|| {
                    Compressor::with_mem_level(bits, config.mem_level, false, config.level)
                });
                if std::mem::take(&mut own.stale) {
                    compressor.reset();
                }
                let mut out = Vec::new();
                compressor.compress(payload, &mut out);
                if out.len() >= payload.len() {
                    // Sent as it is, it never reaches the peer's window.
                    own.stale = true;
                    return None;
                }
                out
            }
            _ => self.compress_shared(tag, payload, config)?,
        };
        Some(Bytes::from(packed))
    }

    /// `payload` compressed by the worker's stream for `tag`'s window, if
    /// worth it: for a connection without a compressor of its own, or once
    /// for every receiver of a publication (each that keeps context must
    /// then start afresh: [`sent_shared`](Self::sent_shared)).
    pub(crate) fn compress_shared(
        &mut self,
        tag: DeflateTag,
        payload: &[u8],
        config: &Compression,
    ) -> Option<Vec<u8>> {
        if !worth(tag, payload, config) {
            return None;
        }
        let mut out = Vec::new();
        shared(&mut self.compressors, tag.window_bits(), config).compress(payload, &mut out);
        (out.len() < payload.len()).then_some(out)
    }

    /// A message the connection's own compressor did not make went out
    /// compressed: the compressor's context is of no more use, and its
    /// memory is given back until the connection's next send.
    pub(crate) fn sent_shared(&mut self, slot: u32, tag: DeflateTag) {
        if tag.is_dedicated() {
            if let Some(own) = self.dedicated.get_mut(&slot) {
                own.compressor = None;
                own.stale = false;
            }
        }
    }

    /// A message this compressor made was not sent after all.
    pub(crate) fn unsent(&mut self, slot: u32, tag: DeflateTag) {
        if tag.is_dedicated() {
            if let Some(own) = self.dedicated.get_mut(&slot) {
                own.stale = true;
            }
        }
    }
}

/// Whether a message is to be compressed at all.
fn worth(tag: DeflateTag, payload: &[u8], config: &Compression) -> bool {
    tag.is_on() && payload.len() >= config.min_size
}

fn shared<'a>(
    compressors: &'a mut [Option<Compressor>; 7],
    bits: u8,
    config: &Compression,
) -> &'a mut Compressor {
    let bits = bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS);
    // C zlib at its default memory level, as uWebSockets' shared
    // compressor: per 1 KiB JSON echo it took 0.91× the CPU of zlib-rs
    // (whose reset clears larger hash tables), for 1 % fewer bytes.
    compressors[usize::from(bits - MIN_WINDOW_BITS)].get_or_insert_with(|| {
        Compressor::with_mem_level(bits, SHARED_MEM_LEVEL, true, config.level)
    })
}

const SHARED_MEM_LEVEL: u8 = 8;

/// One publication's compressed frames, made as a fan-out first needs
/// each: by window bits, and `None` inside when compressing did not pay.
#[derive(Default)]
pub(crate) struct Published {
    frames: [Option<Option<Bytes>>; 7],
}

impl Published {
    /// The compressed frame for connections with `tag`, made by `make`
    /// from the opcode and payload of `frame` (a final data frame of ours)
    /// the first time.
    pub(crate) fn get(
        &mut self,
        tag: DeflateTag,
        frame: &Bytes,
        make: impl FnOnce(OpCode, &[u8]) -> Option<Bytes>,
    ) -> Option<Bytes> {
        let bits = tag.window_bits().clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS);
        self.frames[usize::from(bits - MIN_WINDOW_BITS)]
            .get_or_insert_with(|| {
                let (header, len) = FrameHeader::parse(frame).ok()??;
                make(header.opcode, frame.get(len..)?)
            })
            .clone()
    }
}
