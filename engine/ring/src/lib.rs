//! The io_uring layer of uringws, shared by the engine (`uringws-engine`)
//! and the load generator (`uringws-load`): one [`Ring`] per thread,
//! sockets as direct descriptors ([`Socket`]), multishot receives into a
//! provided-buffer ring consumed incrementally (many small receives share
//! a buffer), vectored sends whose memory the ring holds
//! ([`VectoredSend`]), a `user_data` scheme ([`Token`]), and a [`Bell`]
//! through which other threads end a thread's wait in its ring. Every `unsafe`
//! that io_uring needs lives in this crate, behind safe methods.
//!
//! Each submission carries a caller-chosen `user_data` that comes back in
//! its [`Completion`]. Its top bit is the ring's own: operations whose
//! memory the ring keeps until they complete (addresses, send buffers) are
//! tagged with it, and [`Ring::drain`] gives back the caller's value.
//!
//! ```no_run
//! use uringws_ring::{Ring, RingConfig, Token};
//! # fn main() -> std::io::Result<()> {
//! let mut ring = Ring::new(&RingConfig { entries: 64, recv_buffers: 8, recv_buffer_size: 4096, files: 16, watched: false })?;
//! let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
//! use std::os::fd::AsRawFd;
//! ring.accept_multi(listener.as_raw_fd(), Token::new(1, 0, 0).encode())?;
//! ring.wait(std::time::Duration::from_millis(10))?;
//! let mut completions = Vec::new();
//! ring.drain(&mut completions, 64);
//! for c in &completions {
//!     if let Some(socket) = c.socket() {
//!         ring.recv_multi(socket, Token::new(2, 0, socket.index()).encode())?;
//!     }
//! }
//! # Ok(()) }
//! ```

mod addr;
mod bell;
mod buf_ring;
mod send;
mod token;

pub use bell::Bell;
pub use send::{Chunk, VectoredSend, INLINE_MAX, MAX_IOVECS};
pub use token::Token;

use addr::RawAddr;
use buf_ring::BufRing;
pub use buf_ring::{Received, SHARE_MIN};
use bytes::Bytes;
use io_uring::{
    cqueue, opcode, squeue,
    types::{CancelBuilder, DestinationSlot, Fd, Fixed, SubmitArgs, Timespec},
    IoUring,
};
use slab::Slab;
use std::{io, net::SocketAddr, os::fd::RawFd, time::Duration};

/// The bit of `user_data` the ring keeps for itself.
const OWNED: u64 = 1 << 63;

/// A socket held as a direct descriptor: an index into the ring's
/// registered file table. It takes no slot in the process's fd table, so a
/// thread is not bound by the open-files limit of the process (each ring's
/// table has its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Socket(u32);

impl Socket {
    pub fn index(self) -> u32 {
        self.0
    }
}

/// A completion copied out of the queue, so handling it can submit more.
pub struct Completion {
    pub user_data: u64,
    /// The operation's result: a byte count, a new socket's index, or a
    /// negated errno.
    pub result: i32,
    flags: u32,
    peer: Option<SocketAddr>,
    vectored: Option<Box<VectoredSend>>,
    received: Option<Received>,
}

impl Completion {
    /// Whether a multishot request stays armed after this completion.
    pub fn more(&self) -> bool {
        cqueue::more(self.flags)
    }

    /// The provided buffer this completion filled, if any.
    pub fn buffer(&self) -> Option<u16> {
        cqueue::buffer_select(self.flags)
    }

    /// The socket an accept or socket operation created.
    pub fn socket(&self) -> Option<Socket> {
        u32::try_from(self.result).ok().map(Socket)
    }

    /// The peer of a single-shot [`Ring::accept`].
    pub fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// The bytes a receive delivered, in a buffer of the ring.
    pub fn received(&self) -> Option<&[u8]> {
        self.received.as_deref()
    }

    /// Those bytes, to keep past the completion: their buffer goes back to
    /// the kernel once the kernel has moved past it and every [`Received`]
    /// in it (or, untaken, its completion) is dropped.
    pub fn take_received(&mut self) -> Option<Received> {
        self.received.take()
    }

    /// The buffer of a [`Ring::send_vectored`], back from the kernel: what
    /// was sent is `result` bytes of it.
    pub fn take_vectored(&mut self) -> Option<Box<VectoredSend>> {
        self.vectored.take()
    }

    /// The error, if the operation failed.
    pub fn error(&self) -> Option<io::Error> {
        (self.result < 0).then(|| io::Error::from_raw_os_error(-self.result))
    }
}

/// Sizes of a [`Ring`].
#[derive(Debug, Clone, Copy)]
pub struct RingConfig {
    /// Submission queue entries (completion queue: four times as many).
    pub entries: u32,
    /// Provided receive buffers (a power of two, at most 32768) and their
    /// size; all of it is faulted in when the ring is made.
    pub recv_buffers: u16,
    pub recv_buffer_size: usize,
    /// Direct descriptors; capped by the open-files limit, as the kernel
    /// caps it.
    pub files: u32,
    /// The thread sleeps in an event loop ([`Ring::watch`]) rather than in
    /// [`Ring::wait`]: the kernel then leaves completion work for the
    /// thread's next submit (`DEFER_TASKRUN`) and rings an eventfd when
    /// there is some, instead of interrupting the thread's sleep.
    pub watched: bool,
}

/// Memory the kernel uses until an operation completes.
enum Owned {
    /// An address to read (bind, connect) or to fill (accept).
    Addr(Box<RawAddr>),
    /// The bytes of a send.
    Send(#[allow(dead_code, reason = "held for the kernel, never read here")] Bytes),
    /// The pieces, iovecs and msghdr of a vectored send.
    Vectored(Box<VectoredSend>),
    /// A socket option's value.
    Int(#[allow(dead_code, reason = "held for the kernel, never read here")] Box<libc::c_int>),
}

/// Direct descriptors a ring holds at most: the kernel refuses a larger
/// table (IORING_MAX_FIXED_FILES), so a slot index fits in 20 bits.
pub const MAX_FILES: u32 = 1 << 20;

/// One io_uring with its provided buffers and direct-descriptor table.
pub struct Ring {
    // `Drop` unregisters the buffer ring before `bufs` goes, so the kernel
    // lets go of its entries first.
    ring: IoUring,
    bufs: BufRing,
    /// Memory of operations in flight, keyed by the tagged user_data; each
    /// entry remembers the caller's user_data.
    owned: Slab<(Owned, u64)>,
    files: u32,
    /// The eventfd the kernel signals when work waits ([`RingConfig::watched`]).
    doorbell: Option<std::os::fd::OwnedFd>,
}

impl Ring {
    pub fn new(config: &RingConfig) -> io::Result<Ring> {
        let mut builder = IoUring::builder();
        builder
            .setup_cqsize(config.entries.saturating_mul(4))
            .setup_single_issuer()
            .setup_taskrun_flag();
        if config.watched {
            builder.setup_defer_taskrun();
        } else {
            builder.setup_coop_taskrun();
        }
        let mut ring = builder.build(config.entries).map_err(unavailable)?;
        let doorbell = config.watched.then(|| doorbell(&mut ring)).transpose()?;
        let files = config.files.min(open_files_limit()).clamp(1, MAX_FILES);
        ring.submitter().register_files_sparse(files)?;
        let (count, size) = (config.recv_buffers, config.recv_buffer_size);
        let bufs = match BufRing::new(&ring, count, size, 0, true) {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                // Before Linux 6.12 every receive takes a whole buffer: a
                // few large ones would run dry at once, so the same memory
                // goes into 16 KiB buffers.
                let (count, size) = whole_buffers(count, size);
                BufRing::new(&ring, count, size, 0, false)?
            }
            bufs => bufs?,
        };
        Ok(Ring {
            ring,
            bufs,
            owned: Slab::new(),
            files,
            doorbell,
        })
    }

    /// How many sockets this ring can hold at once.
    pub fn files(&self) -> u32 {
        self.files
    }

    /// The eventfd of a [`watched`](RingConfig::watched) ring, for an
    /// event loop to wait on: readable once the kernel has work for this
    /// thread (a receive to finish, a completion to post) and the thread
    /// said it may sleep ([`Ring::may_sleep`]). Never read by the ring:
    /// wait on it edge-triggered, as tokio and mio do.
    pub fn doorbell(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        self.doorbell.as_ref().map(|fd| fd.as_fd())
    }

    #[cfg(feature = "tokio")]
    /// A tokio registration of the [`doorbell`](Ring::doorbell), so a
    /// thread sleeps in tokio's driver (and its timers and channels keep
    /// working) instead of in `io_uring_enter`. Only for a watched ring.
    pub fn watch(&self) -> io::Result<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>> {
        let Some(doorbell) = self.doorbell() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the ring was not made to be watched (RingConfig::watched)",
            ));
        };
        let fd = doorbell.try_clone_to_owned()?;
        // SAFETY: the registration owns `fd`, a duplicate of the doorbell,
        // so it stays open and the same for the registration's lifetime.
        unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)
        }
        .map_err(|e| e.into_parts().1)
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

    /// Keeps `owned` until the operation completes; returns the user_data
    /// to submit with.
    fn own(&mut self, owned: Owned, user_data: u64) -> u64 {
        debug_assert_eq!(
            user_data & OWNED,
            0,
            "the top bit of user_data is the ring's"
        );
        OWNED | self.owned.insert((owned, user_data)) as u64
    }

    /// Queues an operation whose memory the ring keeps until it completes.
    ///
    /// # Safety
    /// `entry` may point only into `owned` (whose heap contents do not
    /// move when it is stored) or into nothing of the caller's.
    unsafe fn push_owned(
        &mut self,
        owned: Owned,
        user_data: u64,
        entry: squeue::Entry,
    ) -> io::Result<()> {
        let tagged = self.own(owned, user_data);
        // SAFETY: what the entry points to is kept in `owned` until its
        // completion is drained (the caller's contract).
        let pushed = unsafe { self.push(entry.user_data(tagged)) };
        if pushed.is_err() {
            self.owned.try_remove((tagged & !OWNED) as usize);
        }
        pushed
    }

    /// Hands queued entries to the kernel without waiting. No syscall when
    /// there is nothing to hand over and the kernel asks for nothing.
    pub fn submit(&mut self) -> io::Result<()> {
        // Before the kernel runs receives, not after it found the ring dry.
        self.bufs.recycle();
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

    /// Submits what is queued and sleeps in the kernel until a completion
    /// arrives or `timeout` passes: for threads that do not run tokio (the
    /// load generator's workers).
    pub fn wait(&mut self, timeout: Duration) -> io::Result<()> {
        self.bufs.recycle();
        let ts = Timespec::from(timeout);
        let args = SubmitArgs::new().timespec(&ts);
        match self.ring.submitter().submit_with_args(1, &args) {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Like [`Ring::wait`], for a thread that must look up from the ring
    /// now and then (an event loop's other work): waits at least `min`,
    /// and the wait's end falls just past a scheduler tick. A timer that
    /// is the CPU's earliest is programmed into the timer device when the
    /// thread sleeps and again when a completion cancels it: under a
    /// hypervisor, two exits per wait. One just behind a tick never is
    /// the earliest while the tick runs (`benches/RESULTS.md`, "what the
    /// wait's timeout costs").
    pub fn wait_past_tick(&mut self, min: Duration) -> io::Result<()> {
        // Ticks fall on multiples of the tick period in CLOCK_MONOTONIC
        // (the kernel aligns them at boot). 4 ms is one tick at HZ=250
        // (Debian's) and four at HZ=1000.
        const TICK_NS: u64 = 4_000_000;
        const PAST_NS: u64 = 50_000;
        let now = monotonic_ns();
        let end = (now + min.as_nanos() as u64).div_ceil(TICK_NS) * TICK_NS + PAST_NS;
        self.wait(Duration::from_nanos(end - now))
    }

    /// Moves up to `max` completions into `out`.
    pub fn drain(&mut self, out: &mut Vec<Completion>, max: usize) {
        self.bufs.recycle();
        let mut cq = self.ring.completion();
        cq.sync();
        for cqe in cq.take(max) {
            let mut completion = Completion {
                user_data: cqe.user_data(),
                result: cqe.result(),
                flags: cqe.flags(),
                peer: None,
                vectored: None,
                received: None,
            };
            if let Some(bid) = completion.buffer() {
                let len = usize::try_from(completion.result).unwrap_or(0);
                let more = cqueue::buffer_more(completion.flags);
                completion.received = self.bufs.take(bid, len, more);
            }
            if completion.user_data & OWNED != 0 {
                let key = (completion.user_data & !OWNED) as usize;
                if let Some((owned, user_data)) = self.owned.try_remove(key) {
                    completion.user_data = user_data;
                    match owned {
                        Owned::Addr(addr) => completion.peer = addr.to_socket_addr(),
                        Owned::Vectored(send) => completion.vectored = Some(send),
                        Owned::Send(_) | Owned::Int(_) => {}
                    }
                }
            }
            out.push(completion);
        }
    }

    /// Gives back the memory a burst of operations holding buffers (a
    /// fan-out's sends) left, once none is in flight. Cheap to call often.
    pub fn trim(&mut self, keep: usize) {
        if self.owned.is_empty() && self.owned.capacity() > keep {
            self.owned.shrink_to_fit();
            self.owned.reserve(keep);
        }
    }

    /// About to sleep in the event loop: whether nothing waits, so the
    /// thread may. From here on the kernel rings the doorbell for new
    /// work; [`Ring::woke`] quiets it again.
    pub fn may_sleep(&mut self) -> bool {
        if self.doorbell.is_none() {
            return !self.has_completions();
        }
        self.ring.completion().enable_eventfd();
        // Pairs with the kernel's barrier between queueing work (setting
        // the TASKRUN flag) and reading the disabled flag: either it sees
        // the doorbell on or this sees the work.
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        let idle = !self.ring.submission().taskrun() && !self.has_completions();
        if !idle {
            self.woke();
        }
        idle
    }

    /// Back from sleep: the thread looks at the ring itself until it
    /// sleeps again, so the kernel need not ring (each ring would wake the
    /// event loop once more for nothing).
    pub fn woke(&mut self) {
        if self.doorbell.is_some() {
            self.ring.completion().disable_eventfd();
        }
    }

    pub fn has_completions(&mut self) -> bool {
        let mut cq = self.ring.completion();
        cq.sync();
        !cq.is_empty()
    }

    /// Accepts connections on `listener` into direct descriptors until
    /// cancelled; peers' addresses are not reported.
    pub fn accept_multi(&mut self, listener: RawFd, user_data: u64) -> io::Result<()> {
        let entry = opcode::AcceptMulti::new(Fd(listener))
            .allocate_file_index(true)
            .build()
            .user_data(user_data);
        // SAFETY: a multishot accept refers to no memory of ours.
        unsafe { self.push(entry) }
    }

    /// Watches `fd` for readability until cancelled: a completion each
    /// time it is signalled (a [`Bell`]'s eventfd).
    pub fn poll_multi(&mut self, fd: RawFd, user_data: u64) -> io::Result<()> {
        let entry = opcode::PollAdd::new(Fd(fd), libc::POLLIN as u32)
            .multi(true)
            .build()
            .user_data(user_data);
        // SAFETY: a poll refers to no memory of ours.
        unsafe { self.push(entry) }
    }

    /// Accepts one connection into a direct descriptor; its completion
    /// carries the peer's address ([`Completion::peer`]).
    pub fn accept(&mut self, listener: RawFd, user_data: u64) -> io::Result<()> {
        let mut addr = Box::new(RawAddr::empty());
        let (ptr, len) = (
            (&mut addr.storage as *mut libc::sockaddr_storage).cast(),
            &mut addr.len as *mut libc::socklen_t,
        );
        let entry = opcode::Accept::new(Fd(listener), ptr, len)
            .file_index(Some(DestinationSlot::auto_target()))
            .build();
        // SAFETY: the entry points into the address box only.
        unsafe { self.push_owned(Owned::Addr(addr), user_data, entry) }
    }

    /// A new TCP socket for `addr`'s family, as a direct descriptor
    /// ([`Completion::socket`]).
    pub fn tcp_socket(&mut self, addr: SocketAddr, user_data: u64) -> io::Result<()> {
        let domain = if addr.is_ipv4() {
            libc::AF_INET
        } else {
            libc::AF_INET6
        };
        let entry = opcode::Socket::new(domain, libc::SOCK_STREAM, libc::IPPROTO_TCP)
            .file_index(Some(DestinationSlot::auto_target()))
            .build()
            .user_data(user_data);
        // SAFETY: creating a socket refers to no memory of ours.
        unsafe { self.push(entry) }
    }

    /// Binds `socket` to a local address (port 0: the kernel picks).
    pub fn bind(&mut self, socket: Socket, addr: SocketAddr, user_data: u64) -> io::Result<()> {
        let addr = Box::new(RawAddr::from_socket_addr(addr));
        let (ptr, len) = (addr.ptr(), addr.len);
        let entry = opcode::Bind::new(Fixed(socket.0), ptr, len).build();
        // SAFETY: the entry points into the address box only.
        unsafe { self.push_owned(Owned::Addr(addr), user_data, entry) }
    }

    pub fn connect(&mut self, socket: Socket, addr: SocketAddr, user_data: u64) -> io::Result<()> {
        let addr = Box::new(RawAddr::from_socket_addr(addr));
        let (ptr, len) = (addr.ptr(), addr.len);
        let entry = opcode::Connect::new(Fixed(socket.0), ptr, len).build();
        // SAFETY: the entry points into the address box only.
        unsafe { self.push_owned(Owned::Addr(addr), user_data, entry) }
    }

    /// Sets `TCP_NODELAY`, which a direct descriptor cannot get through a
    /// plain `setsockopt`.
    pub fn set_nodelay(&mut self, socket: Socket, user_data: u64) -> io::Result<()> {
        self.set_int_option(socket, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1, user_data)
    }

    /// Sets an integer socket option (`setsockopt(level, name, &value)`)
    /// on a direct descriptor.
    pub fn set_int_option(
        &mut self,
        socket: Socket,
        level: libc::c_int,
        name: libc::c_int,
        value: libc::c_int,
        user_data: u64,
    ) -> io::Result<()> {
        let value = Box::new(value);
        let ptr = (&*value as *const libc::c_int).cast();
        let entry = opcode::SetSockOpt::new(
            Fixed(socket.0),
            level as u32,
            name as u32,
            ptr,
            std::mem::size_of::<libc::c_int>() as u32,
        )
        .build();
        // SAFETY: the entry points into the value's box only.
        unsafe { self.push_owned(Owned::Int(value), user_data, entry) }
    }

    /// Receives into provided buffers until cancelled, an error, or the
    /// ring runs out of buffers (`ENOBUFS`; re-arm once some are back).
    pub fn recv_multi(&mut self, socket: Socket, user_data: u64) -> io::Result<()> {
        let entry = opcode::RecvMulti::new(Fixed(socket.0), self.bufs.bgid())
            .build()
            .user_data(user_data);
        // SAFETY: the kernel writes only into registered provided buffers,
        // which live as long as the ring.
        unsafe { self.push(entry) }
    }

    /// Sends all of `data`; the ring keeps it until the send completes. A
    /// short write is retried by the kernel (`MSG_WAITALL`), so a success
    /// means everything went.
    pub fn send(&mut self, socket: Socket, data: Bytes, user_data: u64) -> io::Result<()> {
        let (ptr, len) = (data.as_ptr(), data.len() as u32);
        let entry = opcode::Send::new(Fixed(socket.0), ptr, len)
            .flags(libc::MSG_NOSIGNAL | libc::MSG_WAITALL)
            .build();
        // SAFETY: the entry points into the bytes only, and `Bytes` never
        // moves its contents.
        unsafe { self.push_owned(Owned::Send(data), user_data, entry) }
    }

    /// Sends the pieces of `send` with one `sendmsg`; the ring holds it
    /// until the completion, which hands it back
    /// ([`Completion::take_vectored`]) with the count of bytes sent (a short
    /// send is possible: [`VectoredSend::advance`] and send the rest).
    pub fn send_vectored(
        &mut self,
        socket: Socket,
        mut send: Box<VectoredSend>,
        user_data: u64,
    ) -> io::Result<()> {
        let msg = send.prepare();
        let entry = opcode::SendMsg::new(Fixed(socket.0), msg)
            .flags(libc::MSG_NOSIGNAL as u32)
            .build();
        // SAFETY: the entry points into the boxed send only (its msghdr,
        // iovecs, and the chunks they point to, whose heap contents do not
        // move), and the ring keeps the box unchanged until the completion.
        unsafe { self.push_owned(Owned::Vectored(send), user_data, entry) }
    }

    /// Cancels every request on `socket`.
    pub fn cancel_socket(&mut self, socket: Socket) -> io::Result<()> {
        let entry = opcode::AsyncCancel2::new(CancelBuilder::fd(Fixed(socket.0)).all())
            .build()
            .user_data(IGNORED);
        // SAFETY: a cancellation refers to no memory of ours.
        unsafe { self.push(entry) }
    }

    /// Cancels every request on a plain fd (a listener's accepts).
    pub fn cancel_fd(&mut self, fd: RawFd) -> io::Result<()> {
        let entry = opcode::AsyncCancel2::new(CancelBuilder::fd(Fd(fd)).all())
            .build()
            .user_data(IGNORED);
        // SAFETY: a cancellation refers to no memory of ours.
        unsafe { self.push(entry) }
    }

    pub fn close(&mut self, socket: Socket, user_data: u64) -> io::Result<()> {
        let entry = opcode::Close::new(Fixed(socket.0))
            .build()
            .user_data(user_data);
        // SAFETY: a close refers to no memory of ours.
        unsafe { self.push(entry) }
    }

    /// Closes a socket at once, for when no close can be queued.
    pub fn close_now(&mut self, socket: Socket) -> io::Result<()> {
        self.ring
            .submitter()
            .register_files_update(socket.0, &[-1])
            .map(drop)
    }
}

/// The user_data of cancellations: completions nobody waits for. Callers
/// should not use it for their own operations.
pub const IGNORED: u64 = OWNED - 1;

impl Drop for Ring {
    fn drop(&mut self) {
        // Taking the buffers back before they are freed; errors only mean
        // the ring is already gone.
        let _ = self.ring.submitter().unregister_buf_ring(self.bufs.bgid());
        // Closing the ring cancels what is still in flight, but not
        // synchronously: memory such operations point to is leaked rather
        // than freed under the kernel.
        if !self.owned.is_empty() {
            std::mem::forget(std::mem::take(&mut self.owned));
        }
    }
}

/// A new eventfd, registered as the ring's doorbell and quiet until the
/// thread first goes to sleep ([`Ring::may_sleep`]).
fn doorbell(ring: &mut IoUring) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: eventfd takes no pointers; a non-negative result is a new
    // descriptor that nothing else owns.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor (above), owned from here on.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    ring.submitter().register_eventfd(fd.as_raw_fd())?;
    ring.completion().disable_eventfd();
    Ok(fd)
}

/// `io_uring_setup` refused: say what usually refuses it, since the bare
/// "Operation not permitted" names no cause.
fn unavailable(error: io::Error) -> io::Error {
    let why = match error.raw_os_error() {
        Some(libc::EPERM) => {
            "io_uring is blocked: a seccomp profile refuses it (the default ones of \
             Docker 25+, containerd and Kubernetes do) or the kernel disables it \
             (sysctl kernel.io_uring_disabled)"
        }
        Some(libc::ENOSYS) => {
            "io_uring is missing: the kernel is built without it, or a sandbox \
             (gVisor, a seccomp profile) hides it"
        }
        Some(libc::EINVAL) => {
            "the kernel refuses the ring's setup flags: uringws needs Linux 6.1 or \
             later (single issuer, deferred task work)"
        }
        _ => return error,
    };
    io::Error::new(error.kind(), format!("io_uring_setup: {error}: {why}"))
}

/// The same memory as `count` buffers of `size`, in buffers of at most
/// 16 KiB, for rings where each receive takes a whole buffer.
fn whole_buffers(count: u16, size: usize) -> (u16, usize) {
    const SMALL: usize = 16 << 10;
    if size <= SMALL {
        return (count, size);
    }
    let total = usize::from(count).saturating_mul(size);
    let count = (total / SMALL).clamp(1, 1 << 15);
    // A power of two (a kernel rule), rounded down.
    let count = 1u16 << (usize::BITS - 1 - count.leading_zeros());
    (count, SMALL)
}

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to fill; CLOCK_MONOTONIC
    // always exists, so the call cannot fail.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The soft limit on open files, which also caps a ring's file table.
fn open_files_limit() -> u32 {
    rlimit::getrlimit(rlimit::Resource::NOFILE)
        .map_or(1024, |(soft, _)| u32::try_from(soft).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::whole_buffers;

    #[test]
    fn large_buffers_become_16_kib_ones_of_the_same_memory() {
        assert_eq!(whole_buffers(16, 256 << 10), (256, 16 << 10));
        assert_eq!(whole_buffers(256, 16 << 10), (256, 16 << 10));
        assert_eq!(whole_buffers(32, 4096), (32, 4096));
        // Rounded down to a power of two, within the kernel's 32768.
        assert_eq!(whole_buffers(3 * 2, 64 << 10), (16, 16 << 10));
        assert_eq!(whole_buffers(1 << 15, 1 << 20), (1 << 15, 16 << 10));
        assert_eq!(whole_buffers(1, 20 << 10), (1, 16 << 10));
    }
}
