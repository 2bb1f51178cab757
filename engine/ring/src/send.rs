//! Vectored sends whose memory the ring holds while the kernel reads it:
//! the caller fills a [`VectoredSend`], hands it to
//! [`Ring::send_vectored`](crate::Ring::send_vectored), and gets it back
//! with the completion ([`Completion::take_vectored`](crate::Completion::take_vectored)),
//! so no pointer the kernel holds can dangle whatever the caller does meanwhile.

use bytes::Bytes;
use std::collections::VecDeque;

/// Most bytes a [`Chunk::Inline`] holds: a WebSocket frame header is at
/// most 14.
pub const INLINE_MAX: usize = 15;

/// One piece of a send: a few bytes held inline (a frame header, so writing
/// one allocates nothing) or shared bytes (a payload many sends point to).
#[derive(Clone)]
pub enum Chunk {
    Inline { bytes: [u8; INLINE_MAX], len: u8 },
    Shared(Bytes),
}

impl Chunk {
    /// A copy of `bytes` held inline; `None` if they are longer than
    /// [`INLINE_MAX`].
    pub fn inline(bytes: &[u8]) -> Option<Chunk> {
        let mut buf = [0; INLINE_MAX];
        buf.get_mut(..bytes.len())?.copy_from_slice(bytes);
        Some(Chunk::Inline {
            bytes: buf,
            len: bytes.len() as u8,
        })
    }

    pub fn as_slice(&self) -> &[u8] {
        match self {
            Chunk::Inline { bytes, len } => &bytes[..usize::from(*len)],
            Chunk::Shared(b) => b,
        }
    }

    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<Bytes> for Chunk {
    fn from(bytes: Bytes) -> Chunk {
        Chunk::Shared(bytes)
    }
}

/// Most pieces handed to one sendmsg; IOV_MAX is 1024, and past a few
/// dozen the kernel's per-send cost no longer shrinks.
pub const MAX_IOVECS: usize = 64;

/// The pieces of one `sendmsg`, the iovecs pointing at them and the
/// message header pointing at the iovecs.
pub struct VectoredSend {
    chunks: Vec<Chunk>,
    /// Bytes of `chunks[0]` already sent.
    offset: usize,
    iovecs: Vec<libc::iovec>,
    msg: libc::msghdr,
}

impl Default for VectoredSend {
    fn default() -> Self {
        VectoredSend {
            chunks: Vec::new(),
            offset: 0,
            iovecs: Vec::new(),
            // SAFETY: msghdr is a plain C struct for which all-zero is the
            // empty message.
            msg: unsafe { std::mem::zeroed() },
        }
    }
}

impl VectoredSend {
    /// Moves pieces from the front of `queue` into this send, up to
    /// [`MAX_IOVECS`]; empty pieces are dropped.
    pub fn fill(&mut self, queue: &mut VecDeque<Chunk>) {
        while self.chunks.len() < MAX_IOVECS {
            match queue.pop_front() {
                Some(chunk) if chunk.is_empty() => {}
                Some(chunk) => self.chunks.push(chunk),
                None => break,
            }
        }
    }

    /// Adds a piece at the end (up to [`MAX_IOVECS`]; more are not sent).
    pub fn push(&mut self, chunk: Chunk) {
        if self.chunks.len() < MAX_IOVECS && !chunk.is_empty() {
            self.chunks.push(chunk);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Bytes not yet sent.
    pub fn len(&self) -> usize {
        self.chunks.iter().map(Chunk::len).sum::<usize>() - self.offset
    }

    /// A copy of the bytes not yet sent, in order: what the next
    /// submission would write (for tests and diagnostics; a cross-crate
    /// caller's tests cannot see a `#[cfg(test)]` item of this crate).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len());
        for (i, chunk) in self.chunks.iter().enumerate() {
            let bytes = chunk.as_slice();
            out.extend_from_slice(if i == 0 { &bytes[self.offset..] } else { bytes });
        }
        out
    }

    /// Accounts `sent` bytes: what is left is sent by the next submission.
    pub fn advance(&mut self, mut sent: usize) {
        let mut done = 0;
        for chunk in &self.chunks {
            let left = chunk.len() - self.offset;
            if sent < left {
                self.offset += sent;
                break;
            }
            sent -= left;
            self.offset = 0;
            done += 1;
        }
        self.chunks.drain(..done);
    }

    pub fn clear(&mut self) {
        self.chunks.clear();
        self.iovecs.clear();
        self.offset = 0;
    }

    /// Points the message at the unsent bytes. The pointers stay valid
    /// while `self` is neither changed nor dropped, which the ring ensures
    /// by holding it (boxed, so it does not move) until the send completes.
    pub(crate) fn prepare(&mut self) -> *const libc::msghdr {
        self.iovecs.clear();
        for (i, chunk) in self.chunks.iter().enumerate() {
            let bytes = chunk.as_slice();
            let bytes = if i == 0 { &bytes[self.offset..] } else { bytes };
            self.iovecs.push(libc::iovec {
                iov_base: bytes.as_ptr() as *mut libc::c_void,
                iov_len: bytes.len(),
            });
        }
        self.msg.msg_iov = self.iovecs.as_mut_ptr();
        self.msg.msg_iovlen = self.iovecs.len() as _;
        &self.msg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(pieces: &[&'static [u8]]) -> VecDeque<Chunk> {
        pieces
            .iter()
            .map(|p| {
                if p.len() <= INLINE_MAX {
                    Chunk::inline(p).unwrap()
                } else {
                    Chunk::Shared(Bytes::from_static(p))
                }
            })
            .collect()
    }

    #[test]
    fn inline_holds_up_to_its_capacity() {
        assert_eq!(Chunk::inline(&[7; INLINE_MAX]).unwrap().len(), INLINE_MAX);
        assert!(Chunk::inline(&[7; INLINE_MAX + 1]).is_none());
        assert!(Chunk::inline(b"").unwrap().is_empty());
    }

    #[test]
    fn fill_skips_empty_pieces_and_stops_at_the_iovec_limit() {
        let mut q: VecDeque<Chunk> = (0..MAX_IOVECS + 3)
            .map(|_| Chunk::inline(b"ab").unwrap())
            .collect();
        q.push_front(Chunk::Shared(Bytes::new()));
        let mut send = VectoredSend::default();
        send.fill(&mut q);
        assert_eq!(send.len(), 2 * MAX_IOVECS);
        assert_eq!(q.len(), 3);
    }

    #[test]
    fn advance_across_and_inside_pieces() {
        let mut q = queue(&[b"abc", b"defgh", &[b'x'; 40]]);
        let mut send = VectoredSend::default();
        send.fill(&mut q);
        assert_eq!(send.len(), 48);
        send.advance(4);
        assert_eq!(send.len(), 44);
        let msg = send.prepare();
        // SAFETY: `msg` points into `send`, alive and unchanged here.
        let first = unsafe { *(*msg).msg_iov };
        assert_eq!(first.iov_len, 4, "the rest of \"defgh\"");
        assert_eq!(send.to_vec(), [&b"efgh"[..], &[b'x'; 40]].concat());
        send.advance(44);
        assert!(send.is_empty());
        assert!(send.to_vec().is_empty());
        assert_eq!(send.len(), 0);
    }
}
