//! The io_uring submission layer: one ring per worker, the provided-buffer
//! ring its recvs draw from, and typed submissions. All of the engine's
//! `unsafe` lives here and in `buf_ring`.

mod buf_ring;

use io_uring::{
    cqueue, opcode, squeue,
    types::{DestinationSlot, Fd, Fixed},
    IoUring,
};
use std::{io, net::SocketAddr, os::fd::RawFd};

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

/// Where a single-shot accept writes the peer's address.
struct AcceptAddr {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
}

/// A connection's socket: a direct descriptor, an index into the ring's
/// registered file table. It takes no slot in the process's fd table, so a
/// worker is not bound by the open-files limit of the process (each ring's
/// table has its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Socket(pub u32);

pub(crate) struct Uring {
    // Dropped before `bufs`: the kernel must let go of the buffers first.
    ring: IoUring,
    bufs: BufRing,
    /// Boxed so their addresses stay put while accepts are in flight;
    /// indexed by the accept token's slot.
    #[allow(clippy::vec_box, reason = "the kernel holds pointers into each box")]
    accept_addrs: Vec<Box<AcceptAddr>>,
    files: u32,
}

impl Uring {
    /// A ring with `entries` submission entries, `buf_count` provided
    /// buffers of `buf_size` bytes, and a table of up to `files` direct
    /// descriptors (capped by the open-files limit, as the kernel caps it).
    pub(crate) fn new(
        entries: u32,
        buf_count: u16,
        buf_size: usize,
        files: u32,
    ) -> io::Result<Self> {
        let ring = IoUring::builder()
            .setup_cqsize(entries.saturating_mul(4))
            .setup_single_issuer()
            .setup_coop_taskrun()
            .setup_taskrun_flag()
            .build(entries)?;
        let files = files.min(open_files_limit()).max(1);
        ring.submitter().register_files_sparse(files)?;
        let bufs = BufRing::new(&ring, buf_count, buf_size, 0)?;
        Ok(Uring {
            ring,
            bufs,
            accept_addrs: Vec::new(),
            files,
        })
    }

    /// How many connections this ring can hold at once.
    pub(crate) fn files(&self) -> u32 {
        self.files
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

    /// Hands queued entries to the kernel without waiting. No syscall when
    /// there is nothing to hand over and the kernel asks for nothing.
    pub(crate) fn submit(&mut self) -> io::Result<()> {
        let mut sq = self.ring.submission();
        sq.sync();
        if sq.is_empty() && !sq.taskrun() && !sq.cq_overflow() {
            return Ok(());
        }
        drop(sq);
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

    /// Accepts connections on `listener` into direct descriptors until
    /// cancelled; the peer's address is not reported.
    pub(crate) fn accept_multi(&mut self, listener: RawFd, token: Token) -> io::Result<()> {
        let entry = opcode::AcceptMulti::new(Fd(listener))
            .allocate_file_index(true)
            .build()
            .user_data(token.encode());
        // SAFETY: a multishot accept refers to no memory of ours.
        unsafe { self.push(entry) }
    }

    /// Accepts one connection into a direct descriptor and records the
    /// peer's address for [`take_peer`](Self::take_peer) under `token.slot`.
    /// Only one accept per token slot may be in flight.
    pub(crate) fn accept_one(&mut self, listener: RawFd, token: Token) -> io::Result<()> {
        let index = token.slot as usize;
        while self.accept_addrs.len() <= index {
            self.accept_addrs.push(Box::new(AcceptAddr {
                // SAFETY: all-zero is a valid (empty) sockaddr_storage.
                storage: unsafe { std::mem::zeroed() },
                len: 0,
            }));
        }
        let addr = &mut self.accept_addrs[index];
        addr.len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        let entry = opcode::Accept::new(
            Fd(listener),
            (&mut addr.storage as *mut libc::sockaddr_storage).cast(),
            &mut addr.len,
        )
        .file_index(Some(DestinationSlot::auto_target()))
        .build()
        .user_data(token.encode());
        // SAFETY: the address and length live in a Box owned by `self` that
        // is never freed or moved while the ring lives, and one accept at a
        // time uses each (the caller's contract).
        unsafe { self.push(entry) }
    }

    /// The peer address the accept of token slot `index` wrote.
    pub(crate) fn take_peer(&self, index: u32) -> Option<SocketAddr> {
        let addr = self.accept_addrs.get(index as usize)?;
        let len = usize::try_from(addr.len).ok()?;
        match i32::from(addr.storage.ss_family) {
            libc::AF_INET if len >= std::mem::size_of::<libc::sockaddr_in>() => {
                // SAFETY: the kernel wrote an AF_INET address of this size,
                // and sockaddr_storage is aligned for every sockaddr type.
                let v4 = unsafe {
                    &*(&addr.storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>()
                };
                let ip = std::net::Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr));
                Some(SocketAddr::from((ip, u16::from_be(v4.sin_port))))
            }
            libc::AF_INET6 if len >= std::mem::size_of::<libc::sockaddr_in6>() => {
                // SAFETY: as above, for AF_INET6.
                let v6 = unsafe {
                    &*(&addr.storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
                };
                let ip = std::net::Ipv6Addr::from(v6.sin6_addr.s6_addr);
                Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                    ip,
                    u16::from_be(v6.sin6_port),
                    v6.sin6_flowinfo,
                    v6.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }

    pub(crate) fn recv_multi(&mut self, socket: Socket, token: Token) -> io::Result<()> {
        let entry = opcode::RecvMulti::new(Fixed(socket.0), self.bufs.bgid())
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
        socket: Socket,
        msg: *const libc::msghdr,
        token: Token,
    ) -> io::Result<()> {
        let entry = opcode::SendMsg::new(Fixed(socket.0), msg)
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

    pub(crate) fn close(&mut self, socket: Socket, token: Token) -> io::Result<()> {
        let entry = opcode::Close::new(Fixed(socket.0))
            .build()
            .user_data(token.encode());
        // SAFETY: a close refers to no memory of ours.
        unsafe { self.push(entry) }
    }

    /// Closes a direct descriptor at once, for when no close can be queued.
    pub(crate) fn close_now(&mut self, socket: Socket) -> io::Result<()> {
        self.ring
            .submitter()
            .register_files_update(socket.0, &[-1])
            .map(drop)
    }
}

impl Drop for Uring {
    fn drop(&mut self) {
        // Taking the buffers back before they are freed; errors only mean
        // the ring is already gone.
        let _ = self.ring.submitter().unregister_buf_ring(self.bufs.bgid());
    }
}

/// The soft limit on open files, which also caps a ring's file table.
fn open_files_limit() -> u32 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 1024;
    }
    u32::try_from(limit.rlim_cur).unwrap_or(u32::MAX)
}
