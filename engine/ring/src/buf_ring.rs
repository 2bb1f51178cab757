//! A provided-buffer ring (`IORING_REGISTER_PBUF_RING`): the kernel picks a
//! buffer from it for each multishot recv completion, so an idle connection
//! holds no read buffer at all. What a completion delivered is handed out as
//! a [`Received`]; a buffer goes back to the ring the moment the kernel is
//! done with it and the last `Received` in it is dropped, so the caller can
//! read it while it drives anything else, the ring included. A payload whole
//! in a buffer can be handed on as [`Bytes`] of that buffer
//! ([`Received::split_to`]): read, unmasked and sent without a copy.
//!
//! The ring is consumed incrementally (`IOU_PBUF_RING_INC`, Linux 6.12)
//! where the kernel allows it (`Ring::new` falls back to 16 KiB buffers
//! taken whole): a receive takes only the bytes it needs and
//! the next one, from any socket, goes on in the same buffer. Without that,
//! a 64-byte message takes a whole buffer, and a thousand connections that
//! each send one at the same moment run a ring of 256 dry, which stops
//! their multishot receives until they are re-armed.

use bytes::Bytes;
use io_uring::{
    types::{BufRingEntry, IOU_PBUF_RING_INC},
    IoUring,
};
use std::{
    alloc::{self, Layout},
    io,
    marker::PhantomData,
    ops::Deref,
    ptr::NonNull,
    sync::{
        atomic::{AtomicBool, AtomicU16, AtomicU32, AtomicUsize, Ordering},
        Arc, Mutex, PoisonError,
    },
};

const PAGE: usize = 4096;

/// Payloads shorter than this are copied out rather than shared: the copy
/// costs about what sharing's bookkeeping does, and it pins no buffer.
pub const SHARE_MIN: usize = 1024;

/// In [`BufState::holds`]: the kernel will not write into this buffer
/// again until it is given back.
const DONE: u32 = 1 << 31;

/// The ring's entries and buffers, shared by the ring, the [`Received`]s
/// out and the [`Bytes`] shared from them, so the memory outlives all.
struct Shared {
    entries: NonNull<BufRingEntry>,
    entries_layout: Layout,
    buffers: NonNull<u8>,
    buffers_layout: Layout,
    buf_size: usize,
    count: u16,
    /// Written by the owning thread only (see `give_back`).
    tail: AtomicU16,
    /// Per buffer, while the kernel or a holder uses it.
    state: Box<[BufState]>,
    /// Buffers whose last holder was shared bytes, possibly on another
    /// thread: the owner gives them back at its next [`BufRing::recycle`].
    returned: Mutex<Vec<u16>>,
    any_returned: AtomicBool,
    /// Buffers that shared bytes keep from going back: kept under half the
    /// ring, so the other half stays the kernel's whatever a handler holds
    /// on to.
    pinned: AtomicUsize,
}

// SAFETY: the pointers are to allocations `Shared` owns and frees once.
// Other threads (through `SharedSlice`) read only bytes no one writes while
// they are held, and touch only atomics and the mutex; the entries and the
// tail are written only by `give_back`, which runs only on the thread that
// owns the ring (from `Received::drop` and `BufRing::recycle`, both on
// types that are not `Send`).
unsafe impl Send for Shared {}
// SAFETY: as above.
unsafe impl Sync for Shared {}

#[derive(Default)]
struct BufState {
    /// Where the next receive into this buffer starts (owner only).
    filled: AtomicUsize,
    /// Holders not yet dropped (`Received`s and shared bytes), and
    /// [`DONE`] once the kernel has moved past the buffer.
    holds: AtomicU32,
    /// Of those, shared bytes.
    shares: AtomicU32,
}

impl Shared {
    /// One holder of buffer `bid` let go: whether it was the last and the
    /// kernel is done with the buffer, so it is to be given back.
    fn release(&self, bid: u16) -> bool {
        let state = &self.state[usize::from(bid)];
        // AcqRel: the last holder sees every other holder's reads done.
        state.holds.fetch_sub(1, Ordering::AcqRel) == DONE | 1
    }

    /// Gives buffer `bid` back to the kernel at once: a buffer returned
    /// late leaves the ring short while the kernel fills others, and a dry
    /// ring stops multishot receives (`ENOBUFS`). Only on the owning
    /// thread.
    fn give_back(&self, bid: u16) {
        let state = &self.state[usize::from(bid)];
        state.filled.store(0, Ordering::Relaxed);
        state.holds.store(0, Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Relaxed);
        let index = usize::from(tail & (self.count - 1));
        // SAFETY: index < count, inside the entries allocation; the kernel
        // only reads entries between its head and our published tail, and
        // this slot is past the tail until the store below; only the owning
        // thread writes entries.
        let entry = unsafe { &mut *self.entries.as_ptr().add(index) };
        // SAFETY: bid < count, so the offset stays inside the allocation.
        let addr = unsafe { self.buffers.as_ptr().add(usize::from(bid) * self.buf_size) };
        entry.set_addr(addr as u64);
        entry.set_len(self.buf_size as u32);
        entry.set_bid(bid);
        let tail = tail.wrapping_add(1);
        self.tail.store(tail, Ordering::Relaxed);
        // SAFETY: the tail field lives in the first entry, inside the
        // allocation, is u16-aligned, and the kernel reads it only
        // atomically; the Release store orders the entry writes before it.
        unsafe {
            let field = BufRingEntry::tail(self.entries.as_ptr()) as *mut u16;
            AtomicU16::from_ptr(field).store(tail, Ordering::Release);
        }
    }

    /// Where the bytes `start..start + len` of buffer `bid` begin.
    ///
    /// # Safety
    /// The range must lie in the buffer (`bid < count`,
    /// `start + len ≤ buf_size`); who makes a slice of it answers for who
    /// else reads or writes it.
    unsafe fn bytes(&self, bid: u16, start: usize, len: usize) -> *mut u8 {
        debug_assert!(start + len <= self.buf_size && bid < self.count);
        // SAFETY: the caller's contract keeps the offset in the allocation.
        unsafe {
            self.buffers
                .as_ptr()
                .add(usize::from(bid) * self.buf_size + start)
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // SAFETY: allocated in `BufRing::new` with these layouts; dropped
        // only when neither the ring (which unregistered the group first)
        // nor any holder uses them.
        unsafe {
            alloc::dealloc(self.entries.as_ptr().cast(), self.entries_layout);
            alloc::dealloc(self.buffers.as_ptr(), self.buffers_layout);
        }
    }
}

pub(crate) struct BufRing {
    shared: Arc<Shared>,
    bgid: u16,
    /// Gives buffers back, which only one thread may do.
    _one_thread: PhantomData<*const ()>,
}

/// The bytes one receive completion delivered, in a buffer of the ring.
/// The kernel does not write to them while this lives; the buffer goes back
/// once this and the other holders in it are dropped and the kernel is
/// done with it. The front can be cut off as shared [`Bytes`]
/// ([`split_to`](Self::split_to)), so a payload is handed on without a
/// copy.
pub struct Received {
    shared: Arc<Shared>,
    bid: u16,
    start: usize,
    len: usize,
    /// Its drop may give the buffer back, which only the ring's thread
    /// may do.
    _one_thread: PhantomData<*const ()>,
}

impl Deref for Received {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: bid < count and start + len ≤ buf_size (checked when
        // made, kept by `split_to`/`advance`), so the range lies in the
        // allocation, which `shared` keeps alive; the kernel writes into a
        // buffer only past what it has delivered, and into this range again
        // only after the buffer is given back, which waits for this.
        unsafe {
            std::slice::from_raw_parts(self.shared.bytes(self.bid, self.start, self.len), self.len)
        }
    }
}

impl std::ops::DerefMut for Received {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as for `deref`, and the range is this value's alone:
        // receives are cut from a buffer without overlapping, a `Received`
        // is neither cloned nor copied, and what `split_to` shares is cut
        // off its front first, so no other reference to these bytes exists
        // while this one is borrowed.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.shared.bytes(self.bid, self.start, self.len),
                self.len,
            )
        }
    }
}

impl Received {
    /// Cuts the first `n` bytes off (all, if fewer are left) and returns
    /// them as [`Bytes`] that share the ring's buffer, which then goes back
    /// only once they are dropped, on whatever thread. Short runs are
    /// copied instead ([`SHARE_MIN`]), as is everything that would pin a
    /// buffer more while half the ring is pinned, so holding on to such
    /// bytes never leaves the kernel without buffers.
    pub fn split_to(&mut self, n: usize) -> Bytes {
        let n = n.min(self.len);
        let shared = &self.shared;
        let state = &shared.state[usize::from(self.bid)];
        // Length first: short payloads, the common case, skip the loads.
        let may_share = n >= SHARE_MIN
            && (state.shares.load(Ordering::Relaxed) > 0
                || shared.pinned.load(Ordering::Relaxed) < usize::from(shared.count) / 2);
        let bytes = if may_share {
            // Relaxed: this `Received` is a holder, so the buffer cannot
            // go back meanwhile.
            state.holds.fetch_add(1, Ordering::Relaxed);
            if state.shares.fetch_add(1, Ordering::Relaxed) == 0 {
                shared.pinned.fetch_add(1, Ordering::Relaxed);
            }
            Bytes::from_owner(SharedSlice {
                shared: shared.clone(),
                bid: self.bid,
                start: self.start,
                len: n,
            })
        } else {
            Bytes::copy_from_slice(&self[..n])
        };
        self.start += n;
        self.len -= n;
        bytes
    }

    /// Drops the first `n` bytes (all, if fewer are left).
    pub fn advance(&mut self, n: usize) {
        let n = n.min(self.len);
        self.start += n;
        self.len -= n;
    }
}

impl Drop for Received {
    fn drop(&mut self) {
        if self.shared.release(self.bid) {
            self.shared.give_back(self.bid);
        }
    }
}

/// Bytes of a ring buffer handed on by [`Received::split_to`]: read-only
/// from then on, and movable to other threads.
struct SharedSlice {
    shared: Arc<Shared>,
    bid: u16,
    start: usize,
    len: usize,
}

impl AsRef<[u8]> for SharedSlice {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: the range was part of a `Received`, so it lies in the
        // allocation `shared` keeps alive; it was cut off that `Received`
        // before this was made, so nothing writes to it, and the kernel
        // writes into the buffer again only after it is given back, which
        // waits for this to be dropped.
        unsafe {
            std::slice::from_raw_parts(self.shared.bytes(self.bid, self.start, self.len), self.len)
        }
    }
}

impl Drop for SharedSlice {
    fn drop(&mut self) {
        let state = &self.shared.state[usize::from(self.bid)];
        if state.shares.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.shared.pinned.fetch_sub(1, Ordering::Relaxed);
        }
        if self.shared.release(self.bid) {
            // Maybe on another thread: the ring's own gives it back.
            self.shared
                .returned
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(self.bid);
            self.shared.any_returned.store(true, Ordering::Release);
        }
    }
}

impl BufRing {
    /// Allocates `count` buffers of `buf_size` bytes, hands them all to the
    /// kernel and registers the ring on `ring` as buffer group `bgid`.
    /// `count` must be a power of two (a kernel rule) no larger than 32768.
    /// `incremental`: consumed as described above (Linux 6.12); a kernel
    /// without it refuses with `EINVAL`.
    pub(crate) fn new(
        ring: &IoUring,
        count: u16,
        buf_size: usize,
        bgid: u16,
        incremental: bool,
    ) -> io::Result<Self> {
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
        let shared = Arc::new(Shared {
            entries,
            entries_layout,
            buffers,
            buffers_layout,
            buf_size,
            count,
            tail: AtomicU16::new(0),
            state: (0..count).map(|_| BufState::default()).collect(),
            returned: Mutex::new(Vec::new()),
            any_returned: AtomicBool::new(false),
            pinned: AtomicUsize::new(0),
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
        let flags = if incremental {
            IOU_PBUF_RING_INC as u16
        } else {
            0
        };
        register(flags)?;
        Ok(BufRing {
            shared,
            bgid,
            _one_thread: PhantomData,
        })
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
        let start = state.filled.load(Ordering::Relaxed);
        if start + len > self.shared.buf_size || state.holds.load(Ordering::Acquire) & DONE != 0 {
            return None;
        }
        state.filled.store(start + len, Ordering::Relaxed);
        let done = if more { 0 } else { DONE };
        state.holds.fetch_add(1 | done, Ordering::AcqRel);
        Some(Received {
            shared: self.shared.clone(),
            bid,
            start,
            len,
            _one_thread: PhantomData,
        })
    }

    /// Gives back the buffers whose last holder was dropped as shared
    /// bytes since the last call. Cheap when there are none.
    pub(crate) fn recycle(&self) {
        // A load first: the swap is a locked instruction, and this runs on
        // every submit.
        if !self.shared.any_returned.load(Ordering::Relaxed)
            || !self.shared.any_returned.swap(false, Ordering::Acquire)
        {
            return;
        }
        let mut returned = self
            .shared
            .returned
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for bid in returned.drain(..) {
            self.shared.give_back(bid);
        }
    }
}
