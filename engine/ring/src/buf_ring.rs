//! A provided-buffer ring (`IORING_REGISTER_PBUF_RING`): the kernel picks a
//! buffer from it for each multishot recv completion, so an idle connection
//! holds no read buffer at all. A filled buffer is handed out as a
//! [`Received`], which puts it back in the ring the moment it is dropped,
//! so the caller can read it while it drives anything else, the ring
//! included.

use io_uring::{types::BufRingEntry, IoUring};
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
}

impl Shared {
    /// Gives buffer `bid` back to the kernel at once: a buffer returned
    /// late leaves the ring short while the kernel fills others, and a dry
    /// ring stops multishot receives (`ENOBUFS`).
    fn give_back(&self, bid: u16) {
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
/// The kernel does not write to it while this lives; dropping it gives it
/// back.
pub struct Received {
    shared: Rc<Shared>,
    bid: u16,
    len: usize,
}

impl Deref for Received {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: bid < count and len ≤ buf_size (checked when made), so
        // the range lies in the allocation, which `shared` keeps alive;
        // the kernel does not write a selected buffer until it is given
        // back, which happens only when this is dropped.
        unsafe {
            std::slice::from_raw_parts(
                self.shared
                    .buffers
                    .as_ptr()
                    .add(usize::from(self.bid) * self.shared.buf_size),
                self.len,
            )
        }
    }
}

impl Drop for Received {
    fn drop(&mut self) {
        self.shared.give_back(self.bid);
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
        let shared = Rc::new(Shared {
            entries,
            entries_layout,
            buffers,
            buffers_layout,
            buf_size,
            count,
            tail: Cell::new(0),
        });
        for bid in 0..count {
            shared.give_back(bid);
        }
        // SAFETY: the entries stay allocated while `shared` lives, past
        // the owner (`Ring`), which unregisters the group before dropping
        // this ring.
        unsafe {
            ring.submitter().register_buf_ring_with_flags(
                entries.as_ptr() as u64,
                count,
                bgid,
                0,
            )?;
        }
        Ok(BufRing { shared, bgid })
    }

    pub(crate) fn bgid(&self) -> u16 {
        self.bgid
    }

    /// The first `len` bytes the kernel wrote into buffer `bid`, which a
    /// completion selected; `None` for a buffer id or length the ring
    /// cannot have given.
    pub(crate) fn take(&self, bid: u16, len: usize) -> Option<Received> {
        (bid < self.shared.count && len <= self.shared.buf_size).then(|| Received {
            shared: self.shared.clone(),
            bid,
            len,
        })
    }
}
