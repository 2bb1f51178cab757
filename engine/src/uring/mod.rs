//! The io_uring submission layer: one ring per worker, the provided-buffer
//! ring its recvs draw from, and typed submissions. All of the engine's
//! `unsafe` lives here and in `buf_ring`.

mod buf_ring;

use io_uring::{cqueue, opcode, squeue, types::Fd, IoUring};
use std::{io, os::fd::RawFd};

/// What a completion belongs to, packed into `user_data`: the kind, the
/// slot's generation (so a late completion for a reused slot is ignored)
/// and the slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Token {
    pub kind: Kind,
    pub gen: u32,
    pub slot: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    Accept = 1,
    Recv = 2,
    Send = 3,
    Close = 4,
    /// Completions nobody waits for (cancellations).
    Ignore = 5,
}

const GEN_MASK: u32 = (1 << 24) - 1;

impl Token {
    pub(crate) fn new(kind: Kind, gen: u32, slot: u32) -> Self {
        Token {
            kind,
            gen: gen & GEN_MASK,
            slot,
        }
    }

    fn encode(self) -> u64 {
        (u64::from(self.kind as u8) << 56)
            | (u64::from(self.gen & GEN_MASK) << 32)
            | u64::from(self.slot)
    }

    fn decode(data: u64) -> Option<Token> {
        let kind = match (data >> 56) as u8 {
            1 => Kind::Accept,
            2 => Kind::Recv,
            3 => Kind::Send,
            4 => Kind::Close,
            5 => Kind::Ignore,
            _ => return None,
        };
        Some(Token {
            kind,
            gen: ((data >> 32) as u32) & GEN_MASK,
            slot: data as u32,
        })
    }

    /// Generations wrap at 24 bits.
    pub(crate) fn next_gen(gen: u32) -> u32 {
        gen.wrapping_add(1) & GEN_MASK
    }
}

/// A completion copied out of the queue, so handling it can submit more.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Completion {
    pub token: Token,
    pub result: i32,
    pub flags: u32,
}

impl Completion {
    /// Whether a multishot request stays armed after this completion.
    pub(crate) fn more(&self) -> bool {
        cqueue::more(self.flags)
    }

    /// The provided buffer this completion filled, if any.
    pub(crate) fn buffer(&self) -> Option<u16> {
        cqueue::buffer_select(self.flags)
    }
}

pub(crate) use buf_ring::BufRing;

pub(crate) struct Uring {
    // Dropped before `bufs`: the kernel must let go of the buffers first.
    ring: IoUring,
    bufs: BufRing,
}

impl Uring {
    pub(crate) fn new(entries: u32, buf_count: u16, buf_size: usize) -> io::Result<Self> {
        let ring = IoUring::builder()
            .setup_cqsize(entries.saturating_mul(4))
            .setup_single_issuer()
            .build(entries)?;
        let bufs = BufRing::new(&ring, buf_count, buf_size, 0)?;
        Ok(Uring { ring, bufs })
    }

    /// A tokio registration that turns readable when completions are
    /// waiting, so the worker sleeps in tokio's driver (and its timers and
    /// channels keep working) instead of in `io_uring_enter`.
    pub(crate) fn watch(&self) -> io::Result<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>> {
        use std::os::fd::{AsFd, AsRawFd};
        let fd = self.ring.as_fd().try_clone_to_owned()?;
        debug_assert_ne!(fd.as_raw_fd(), self.ring.as_raw_fd());
        // SAFETY: the registration owns `fd`, a duplicate of the ring's fd,
        // so it stays open and the same for the registration's lifetime.
        unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)
        }
        .map_err(|e| e.into_parts().1)
    }

    pub(crate) fn bufs(&mut self) -> &mut BufRing {
        &mut self.bufs
    }

    /// Pushes an entry, submitting first when the queue is full.
    ///
    /// # Safety
    /// Every buffer or pointer the entry refers to must stay valid until its
    /// completion arrives.
    unsafe fn push(&mut self, entry: squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: the caller guarantees the entry's memory outlives the
            // operation.
            if unsafe { self.ring.submission().push(&entry) }.is_ok() {
                return Ok(());
            }
            self.submit()?;
        }
    }

    /// Hands queued entries to the kernel without waiting.
    pub(crate) fn submit(&mut self) -> io::Result<()> {
        loop {
            match self.ring.submit() {
                Ok(_) => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                // The completion queue is full: the caller drains it next.
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }

    /// Moves up to `max` completions into `out`.
    pub(crate) fn drain(&mut self, out: &mut Vec<Completion>, max: usize) {
        let mut cq = self.ring.completion();
        cq.sync();
        for cqe in cq.take(max) {
            if let Some(token) = Token::decode(cqe.user_data()) {
                out.push(Completion {
                    token,
                    result: cqe.result(),
                    flags: cqe.flags(),
                });
            }
        }
    }

    pub(crate) fn has_completions(&mut self) -> bool {
        let mut cq = self.ring.completion();
        cq.sync();
        !cq.is_empty()
    }

    pub(crate) fn accept_multi(&mut self, listener: RawFd, token: Token) -> io::Result<()> {
        let entry = opcode::AcceptMulti::new(Fd(listener))
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(token.encode());
        // SAFETY: a multishot accept refers to no memory of ours.
        unsafe { self.push(entry) }
    }

    pub(crate) fn recv_multi(&mut self, fd: RawFd, token: Token) -> io::Result<()> {
        let entry = opcode::RecvMulti::new(Fd(fd), self.bufs.bgid())
            .build()
            .user_data(token.encode());
        // SAFETY: the kernel writes only into registered provided buffers,
        // which live as long as the ring.
        unsafe { self.push(entry) }
    }

    /// # Safety
    /// `msg`, its iovec array and every buffer it points to must stay valid
    /// and unmoved until this send's completion arrives.
    pub(crate) unsafe fn send_msg(
        &mut self,
        fd: RawFd,
        msg: *const libc::msghdr,
        token: Token,
    ) -> io::Result<()> {
        let entry = opcode::SendMsg::new(Fd(fd), msg)
            .flags(libc::MSG_NOSIGNAL as u32)
            .build()
            .user_data(token.encode());
        // SAFETY: forwarded from this function's contract.
        unsafe { self.push(entry) }
    }

    /// Cancels every request that carries `token`.
    pub(crate) fn cancel(&mut self, token: Token) -> io::Result<()> {
        let entry = opcode::AsyncCancel::new(token.encode())
            .build()
            .user_data(Token::new(Kind::Ignore, 0, 0).encode());
        // SAFETY: a cancellation refers to no memory of ours.
        unsafe { self.push(entry) }
    }

    pub(crate) fn close(&mut self, fd: RawFd, token: Token) -> io::Result<()> {
        let entry = opcode::Close::new(Fd(fd)).build().user_data(token.encode());
        // SAFETY: a close refers to no memory of ours.
        unsafe { self.push(entry) }
    }
}

impl Drop for Uring {
    fn drop(&mut self) {
        // Taking the buffers back before they are freed; errors only mean
        // the ring is already gone.
        let _ = self.ring.submitter().unregister_buf_ring(self.bufs.bgid());
    }
}

/// Runs `f` on the socket behind `fd` without taking ownership of it.
pub(crate) fn with_socket<T>(fd: RawFd, f: impl FnOnce(socket2::SockRef<'_>) -> T) -> T {
    // SAFETY: callers pass the fd of a live connection slot; the engine
    // closes it only when the slot is torn down, after this returns.
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    f(socket2::SockRef::from(&borrowed))
}

/// Closes `fd` with a plain syscall, for when no close can be queued.
pub(crate) fn close_now(fd: RawFd) -> io::Result<()> {
    // SAFETY: callers own `fd` (a connection's socket) and close it exactly
    // once: the slot is marked dead before and never closes it again.
    if unsafe { libc::close(fd) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
