//! A provided-buffer ring (`IORING_REGISTER_PBUF_RING`): the kernel picks a
//! buffer from it for each multishot recv completion, so an idle connection
//! holds no read buffer at all. What a completion delivered is handed out as
//! a [`Received`]; a buffer goes back to the ring the moment the kernel is
//! done with it and the last `Received` in it is dropped, so the caller can
//! read it while it drives anything else, the ring included.
//!
//! The ring is consumed incrementally (`IOU_PBUF_RING_INC`, Linux 6.12)
//! where the kernel allows it: a receive takes only the bytes it needs and
//! the next one, from any socket, goes on in the same buffer. Without that,
//! a 64-byte message takes a whole buffer, and a thousand connections that
//! each send one at the same moment run a ring of 256 dry, which stops
//! their multishot receives until they are re-armed.

use io_uring::{
    types::{BufRingEntry, IOU_PBUF_RING_INC},
    IoUring,
};
use std::{
    alloc::{self, Layout},
    cell::Cell,
    io,
    ops::Deref,
    ptr::NonNull,
    rc::Rc,
    sync::atomic::{AtomicU16, Ordering},
};

const PAGE: usize = 4096;

/// The ring's entries and buffers, shared by the ring and the
/// [`Received`]s out, so the memory outlives both.
struct Shared {
    entries: NonNull<BufRingEntry>,
    entries_layout: Layout,
    buffers: NonNull<u8>,
    buffers_layout: Layout,
    buf_size: usize,
    count: u16,
    tail: Cell<u16>,
    /// Per buffer, while the kernel or a [`Received`] uses it.
    state: Box<[BufState]>,
}

#[derive(Default)]
struct BufState {
    /// Where the next receive into this buffer starts.
    filled: Cell<usize>,
    /// `Received`s in this buffer not yet dropped.
    live: Cell<u32>,
    /// The kernel will not write into this buffer again until it is given
    /// back.
    done: Cell<bool>,
}

impl Shared {
    /// Gives buffer `bid` back to the kernel at once: a buffer returned
    /// late leaves the ring short while the kernel fills others, and a dry
    /// ring stops multishot receives (`ENOBUFS`).
    fn give_back(&self, bid: u16) {
        let state = &self.state[usize::from(bid)];
        state.filled.set(0);
        state.done.set(false);
        let tail = self.tail.get();
        let index = usize::from(tail & (self.count - 1));
        // SAFETY: index < count, inside the entries allocation; the kernel
        // only reads entries between its head and our published tail, and
        // this slot is past the tail until the store below.
        let entry = unsafe { &mut *self.entries.as_ptr().add(index) };
        // SAFETY: bid < count, so the offset stays inside the allocation.
        let addr = unsafe { self.buffers.as_ptr().add(usize::from(bid) * self.buf_size) };
        entry.set_addr(addr as u64);
        entry.set_len(self.buf_size as u32);
        entry.set_bid(bid);
        let tail = tail.wrapping_add(1);
        self.tail.set(tail);
        // SAFETY: the tail field lives in the first entry, inside the
        // allocation, is u16-aligned, and the kernel reads it only
        // atomically; the Release store orders the entry writes before it.
        unsafe {
            let field = BufRingEntry::tail(self.entries.as_ptr()) as *mut u16;
            AtomicU16::from_ptr(field).store(tail, Ordering::Release);
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // SAFETY: allocated in `BufRing::new` with these layouts; dropped
        // only when neither the ring (which unregistered the group first)
        // nor any `Received` uses them.
        unsafe {
            alloc::dealloc(self.entries.as_ptr().cast(), self.entries_layout);
            alloc::dealloc(self.buffers.as_ptr(), self.buffers_layout);
        }
    }
}

pub(crate) struct BufRing {
    shared: Rc<Shared>,
    bgid: u16,
}

/// The bytes one receive completion delivered, in a buffer of the ring.
/// The kernel does not write to them while this lives; the buffer goes back
/// once this and the others in it are dropped and the kernel is done with
/// it.
pub struct Received {
    shared: Rc<Shared>,
    bid: u16,
    start: usize,
    len: usize,
}

impl Deref for Received {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: bid < count and start + len ≤ buf_size (checked when
        // made), so the range lies in the allocation, which `shared` keeps
        // alive; the kernel writes into a buffer only past what it has
        // delivered, and into this range again only after the buffer is
        // given back, which waits for this to be dropped.
        unsafe {
            std::slice::from_raw_parts(
                self.shared
                    .buffers
                    .as_ptr()
                    .add(usize::from(self.bid) * self.shared.buf_size + self.start),
                self.len,
            )
        }
    }
}

impl std::ops::DerefMut for Received {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as for `deref`, and the range is this value's alone:
        // receives are cut from a buffer without overlapping, and a
        // `Received` is neither cloned nor copied, so no other reference
        // to these bytes exists while this one is borrowed.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.shared
                    .buffers
                    .as_ptr()
                    .add(usize::from(self.bid) * self.shared.buf_size + self.start),
                self.len,
            )
        }
    }
}

impl Drop for Received {
    fn drop(&mut self) {
        let state = &self.shared.state[usize::from(self.bid)];
        state.live.set(state.live.get() - 1);
        if state.live.get() == 0 && state.done.get() {
            self.shared.give_back(self.bid);
        }
    }
}

impl BufRing {
    /// Allocates `count` buffers of `buf_size` bytes, hands them all to the
    /// kernel and registers the ring on `ring` as buffer group `bgid`.
    /// `count` must be a power of two (a kernel rule) no larger than 32768.
    pub(crate) fn new(ring: &IoUring, count: u16, buf_size: usize, bgid: u16) -> io::Result<Self> {
        if !count.is_power_of_two()
            || count > 1 << 15
            || buf_size == 0
            || buf_size > u32::MAX as usize
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "buffer ring: count must be a power of two ≤ 32768 and buffers non-empty",
            ));
        }
        let entries_layout = Layout::from_size_align(
            usize::from(count) * std::mem::size_of::<BufRingEntry>(),
            PAGE,
        )
        .map_err(io::Error::other)?;
        let buffers_layout = Layout::from_size_align(usize::from(count) * buf_size, PAGE)
            .map_err(io::Error::other)?;
        // SAFETY: both layouts have a non-zero size (count ≥ 1, buf_size ≥ 1).
        let entries = NonNull::new(unsafe { alloc::alloc_zeroed(entries_layout) })
            .ok_or_else(|| io::Error::from(io::ErrorKind::OutOfMemory))?
            .cast::<BufRingEntry>();
        // SAFETY: as above. Not zeroed: the kernel writes before we read.
        let buffers = match NonNull::new(unsafe { alloc::alloc(buffers_layout) }) {
            Some(p) => p,
            None => {
                // SAFETY: allocated just above with this layout.
                unsafe { alloc::dealloc(entries.as_ptr().cast(), entries_layout) };
                return Err(io::ErrorKind::OutOfMemory.into());
            }
        };
        // Incremental receives walk through every buffer within the first
        // bursts; faulting the pages in now makes that fixed cost show at
        // start, so the process's RSS stays flat after it.
        for page in (0..buffers_layout.size()).step_by(PAGE) {
            // SAFETY: page < the allocation's size; nothing else uses it yet.
            unsafe { buffers.as_ptr().add(page).write(0) };
        }
        let shared = Rc::new(Shared {
            entries,
            entries_layout,
            buffers,
            buffers_layout,
            buf_size,
            count,
            tail: Cell::new(0),
            state: (0..count).map(|_| BufState::default()).collect(),
        });
        for bid in 0..count {
            shared.give_back(bid);
        }
        let register = |flags| {
            // SAFETY: the entries stay allocated while `shared` lives, past
            // the owner (`Ring`), which unregisters the group before
            // dropping this ring.
            unsafe {
                ring.submitter().register_buf_ring_with_flags(
                    entries.as_ptr() as u64,
                    count,
                    bgid,
                    flags,
                )
            }
        };
        // Kernels before 6.12 refuse the flag: each receive then takes a
        // whole buffer, and no completion says `IORING_CQE_F_BUF_MORE`.
        match register(IOU_PBUF_RING_INC as u16) {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => register(0)?,
            result => result?,
        }
        Ok(BufRing { shared, bgid })
    }

    pub(crate) fn bgid(&self) -> u16 {
        self.bgid
    }

    /// The `len` bytes a completion delivered into buffer `bid`, where the
    /// last one into it ended; `more` when the kernel goes on filling that
    /// buffer (`IORING_CQE_F_BUF_MORE`). `None` for a buffer id or length
    /// the ring cannot have given.
    pub(crate) fn take(&self, bid: u16, len: usize, more: bool) -> Option<Received> {
        let state = self.shared.state.get(usize::from(bid))?;
        let start = state.filled.get();
        if start + len > self.shared.buf_size || state.done.get() {
            return None;
        }
        state.filled.set(start + len);
        state.live.set(state.live.get() + 1);
        state.done.set(!more);
        Some(Received {
            shared: self.shared.clone(),
            bid,
            start,
            len,
        })
    }
}
