//! A provided-buffer ring (`IORING_REGISTER_PBUF_RING`): the kernel picks a
//! buffer from it for each multishot recv completion, so an idle connection
//! holds no read buffer at all.

use io_uring::{types::BufRingEntry, IoUring};
use std::{
    alloc::{self, Layout},
    io,
    ptr::NonNull,
    sync::atomic::{AtomicU16, Ordering},
};

const PAGE: usize = 4096;

pub(crate) struct BufRing {
    entries: NonNull<BufRingEntry>,
    entries_layout: Layout,
    buffers: NonNull<u8>,
    buffers_layout: Layout,
    buf_size: usize,
    count: u16,
    tail: u16,
    bgid: u16,
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
            buffers,
            buffers_layout,
            buf_size,
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

    /// The first `len` bytes the kernel wrote into buffer `bid`.
    ///
    /// # Safety
    /// `bid` must come from a completion that selected it and `len` must be
    /// that completion's result, and the buffer must not have been given
    /// back with [`recycle`](Self::recycle) since.
    pub(crate) unsafe fn get(&self, bid: u16, len: usize) -> &[u8] {
        debug_assert!(bid < self.count && len <= self.buf_size);
        // SAFETY: bid < count and len ≤ buf_size (the kernel never writes
        // more than the buffer's registered length), so the range lies in
        // the buffers allocation; the kernel does not touch a selected
        // buffer until it is recycled (caller's contract).
        unsafe {
            std::slice::from_raw_parts(
                self.buffers.as_ptr().add(usize::from(bid) * self.buf_size),
                len,
            )
        }
    }

    /// Gives buffer `bid` back to the kernel.
    pub(crate) fn recycle(&mut self, bid: u16) {
        self.push(bid);
        self.publish();
    }

    fn push(&mut self, bid: u16) {
        let index = usize::from(self.tail & (self.count - 1));
        // SAFETY: index < count, inside the entries allocation; the kernel
        // only reads entries between its head and our published tail, and
        // this slot is past the tail until `publish`.
        let entry = unsafe { &mut *self.entries.as_ptr().add(index) };
        // SAFETY: bid < count, so the offset stays inside the allocation.
        let addr = unsafe { self.buffers.as_ptr().add(usize::from(bid) * self.buf_size) };
        entry.set_addr(addr as u64);
        entry.set_len(self.buf_size as u32);
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
        // SAFETY: allocated in `new` with exactly these layouts; the owner
        // unregistered the group (or dropped the ring) first, so the kernel
        // no longer reads or writes them.
        unsafe {
            alloc::dealloc(self.entries.as_ptr().cast(), self.entries_layout);
            alloc::dealloc(self.buffers.as_ptr(), self.buffers_layout);
        }
    }
}
