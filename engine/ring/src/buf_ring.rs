//! A provided-buffer ring (`IORING_REGISTER_PBUF_RING`): the kernel picks a
//! buffer from it for each multishot recv completion, so an idle connection
//! holds no read buffer at all. A filled buffer is handed out as a
//! [`Received`], which gives it back to the ring when dropped, so the
//! caller can read it while it drives anything else, the ring included.

use io_uring::{types::BufRingEntry, IoUring};
use std::{
    alloc::{self, Layout},
    cell::RefCell,
    io,
    ops::Deref,
    ptr::NonNull,
    rc::Rc,
    sync::atomic::{AtomicU16, Ordering},
};

const PAGE: usize = 4096;

/// The buffers' memory, shared by the ring and the [`Received`]s out, so
/// it outlives both; and the buffers given back since the ring last took
/// them.
struct Buffers {
    ptr: NonNull<u8>,
    layout: Layout,
    buf_size: usize,
    returned: RefCell<Vec<u16>>,
}

impl Drop for Buffers {
    fn drop(&mut self) {
        // SAFETY: allocated in `BufRing::new` with this layout; dropped
        // only when neither the ring (which unregistered the group first)
        // nor any `Received` uses it.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), self.layout) };
    }
}

pub(crate) struct BufRing {
    entries: NonNull<BufRingEntry>,
    entries_layout: Layout,
    buffers: Rc<Buffers>,
    count: u16,
    tail: u16,
    bgid: u16,
}

/// The bytes one receive completion delivered, in a buffer of the ring.
/// The kernel does not write to it while this lives; dropping it gives it
/// back (at the ring's next submit).
pub struct Received {
    buffers: Rc<Buffers>,
    bid: u16,
    len: usize,
}

impl Deref for Received {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: bid < count and len ≤ buf_size (checked when made), so
        // the range lies in the allocation, which `buffers` keeps alive;
        // the kernel does not write a selected buffer until it is pushed
        // back to the ring, which happens only after this is dropped.
        unsafe {
            std::slice::from_raw_parts(
                self.buffers
                    .ptr
                    .as_ptr()
                    .add(usize::from(self.bid) * self.buffers.buf_size),
                self.len,
            )
        }
    }
}

impl Drop for Received {
    fn drop(&mut self) {
        self.buffers.returned.borrow_mut().push(self.bid);
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
        let mut this = BufRing {
            entries,
            entries_layout,
            buffers: Rc::new(Buffers {
                ptr: buffers,
                layout: buffers_layout,
                buf_size,
                returned: RefCell::new(Vec::new()),
            }),
            count,
            tail: 0,
            bgid,
        };
        for bid in 0..count {
            this.push(bid);
        }
        this.publish();
        // SAFETY: the entries stay allocated until `Drop`, and the owner
        // (`Uring`) unregisters the group before dropping this ring.
        unsafe {
            ring.submitter().register_buf_ring_with_flags(
                entries.as_ptr() as u64,
                count,
                bgid,
                0,
            )?;
        }
        Ok(this)
    }

    pub(crate) fn bgid(&self) -> u16 {
        self.bgid
    }

    /// The first `len` bytes the kernel wrote into buffer `bid`, which a
    /// completion selected; `None` for a buffer id or length the ring
    /// cannot have given.
    pub(crate) fn take(&self, bid: u16, len: usize) -> Option<Received> {
        (bid < self.count && len <= self.buffers.buf_size).then(|| Received {
            buffers: self.buffers.clone(),
            bid,
            len,
        })
    }

    /// Hands the buffers given back since the last call to the kernel.
    pub(crate) fn reclaim(&mut self) {
        let returned = std::mem::take(&mut *self.buffers.returned.borrow_mut());
        if returned.is_empty() {
            return;
        }
        for &bid in &returned {
            self.push(bid);
        }
        self.publish();
        // Keep the list's allocation for the next turn.
        let mut list = self.buffers.returned.borrow_mut();
        if list.is_empty() {
            *list = returned;
            list.clear();
        }
    }

    fn push(&mut self, bid: u16) {
        let index = usize::from(self.tail & (self.count - 1));
        // SAFETY: index < count, inside the entries allocation; the kernel
        // only reads entries between its head and our published tail, and
        // this slot is past the tail until `publish`.
        let entry = unsafe { &mut *self.entries.as_ptr().add(index) };
        let size = self.buffers.buf_size;
        // SAFETY: bid < count, so the offset stays inside the allocation.
        let addr = unsafe { self.buffers.ptr.as_ptr().add(usize::from(bid) * size) };
        entry.set_addr(addr as u64);
        entry.set_len(size as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    fn publish(&self) {
        // SAFETY: the tail field lives in the first entry, inside the
        // allocation, is u16-aligned, and the kernel reads it only
        // atomically; the Release store orders the entry writes before it.
        unsafe {
            let tail = BufRingEntry::tail(self.entries.as_ptr()) as *mut u16;
            AtomicU16::from_ptr(tail).store(self.tail, Ordering::Release);
        }
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; the owner
        // unregistered the group (or dropped the ring) first, so the kernel
        // no longer reads it. The buffers go when their last user does.
        unsafe { alloc::dealloc(self.entries.as_ptr().cast(), self.entries_layout) };
    }
}
