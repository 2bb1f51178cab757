//! C zlib's raw deflate, through libz-sys, for what flate2 cannot ask of
//! it: a memory level. flate2 fixes memLevel at 8, whose hash chains alone
//! are 256 KiB; a connection with a compressor of its own at window 2^9 and
//! memLevel 1 holds about 8 KiB with zlib (`docs/decisions.md`).
//!
//! The `unsafe` here is the FFI and nothing else: every call is on a stream
//! this type initialised and owns, with buffers that outlive the call.

use libz_sys as z;
use std::{ffi::c_int, ptr};

// zlib's allocations go to the C allocator (glibc's, beside the binaries'
// mimalloc), as zlib's default `zcalloc` does with malloc. Rust's allocator
// would need each block's size kept in front of it (zfree is not told it),
// and those 16 bytes push zlib's 2^n-byte blocks into the next size class:
// 10.7 KB a stream instead of 9.8 (measured, 19,000 connections).
unsafe extern "C" fn zalloc(_opaque: z::voidpf, items: z::uInt, size: z::uInt) -> z::voidpf {
    // SAFETY: calloc takes any sizes (it checks their product) and returns
    // NULL when it cannot, which zlib checks.
    unsafe { libc::calloc(items as usize, size as usize) }
}

unsafe extern "C" fn zfree(_opaque: z::voidpf, address: z::voidpf) {
    // SAFETY: zlib frees only what `zalloc` returned (or NULL), once.
    unsafe { libc::free(address) }
}

/// A raw deflate stream (no zlib header), flushed per message.
pub(super) struct RawDeflate {
    // zlib's state points back at its stream (and checks it does), so the
    // stream must not move once initialised.
    stream: Box<z::z_stream>,
}

// SAFETY: the stream and its state are owned by this value alone and zlib
// keeps no thread-local state, so it may move to another thread whole.
unsafe impl Send for RawDeflate {}

impl RawDeflate {
    /// `window_bits` 9..=15, `mem_level` 1..=9, `level` 0..=9; `None` when
    /// zlib cannot allocate its state.
    pub(super) fn new(window_bits: u8, mem_level: u8, level: u32) -> Option<RawDeflate> {
        let mut stream = Box::new(z::z_stream {
            next_in: ptr::null_mut(),
            avail_in: 0,
            total_in: 0,
            next_out: ptr::null_mut(),
            avail_out: 0,
            total_out: 0,
            msg: ptr::null_mut(),
            state: ptr::null_mut(),
            zalloc,
            zfree,
            opaque: ptr::null_mut(),
            data_type: 0,
            adler: 0,
            reserved: 0,
        });
        let bits = c_int::from(window_bits.clamp(9, 15));
        // SAFETY: `stream` is a z_stream with its allocator set and no
        // state yet; the version and size are those of the zlib linked.
        let rc = unsafe {
            z::deflateInit2_(
                &mut *stream,
                level.min(9) as c_int,
                z::Z_DEFLATED,
                -bits,
                c_int::from(mem_level.clamp(1, 9)),
                z::Z_DEFAULT_STRATEGY,
                z::zlibVersion(),
                std::mem::size_of::<z::z_stream>() as c_int,
            )
        };
        (rc == z::Z_OK).then_some(RawDeflate { stream })
    }

    /// `input` (not empty: a flush after nothing writes nothing)
    /// compressed and sync-flushed, appended to `out`.
    pub(super) fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) {
        debug_assert!(!input.is_empty());
        // zlib's counters are 32 bits: a larger message goes in pieces.
        for piece in input.chunks(u32::MAX as usize) {
            // zlib only reads through `next_in`.
            self.stream.next_in = piece.as_ptr().cast_mut();
            self.stream.avail_in = piece.len() as z::uInt;
            loop {
                out.reserve(self.stream.avail_in as usize / 2 + 64);
                let spare = out.spare_capacity_mut();
                let room = spare.len().min(u32::MAX as usize);
                self.stream.next_out = spare.as_mut_ptr().cast();
                self.stream.avail_out = room as z::uInt;
                // SAFETY: the stream was initialised by `new`; `next_in`
                // holds `avail_in` readable bytes of `piece`, `next_out`
                // `avail_out` writable bytes of `out`'s spare capacity,
                // both alive for the call.
                let rc = unsafe { z::deflate(&mut *self.stream, z::Z_SYNC_FLUSH) };
                let written = room - self.stream.avail_out as usize;
                // SAFETY: zlib wrote the first `written` bytes of the
                // spare capacity.
                unsafe { out.set_len(out.len() + written) };
                // Z_BUF_ERROR only says there was nothing left to do. Any
                // other error is a stream zlib refuses (it cannot be, for
                // one `new` made): stop rather than spin, and start afresh.
                if rc != z::Z_OK && rc != z::Z_BUF_ERROR {
                    debug_assert!(false, "deflate: {rc}");
                    self.reset();
                    break;
                }
                // Flushed once all went in and room was left over.
                if self.stream.avail_in == 0 && self.stream.avail_out != 0 {
                    break;
                }
            }
        }
        // No pointers into buffers that are gone.
        self.stream.next_in = ptr::null_mut();
        self.stream.next_out = ptr::null_mut();
    }

    /// The next message refers to nothing before it.
    pub(super) fn reset(&mut self) {
        // SAFETY: the stream was initialised by `new`.
        unsafe { z::deflateReset(&mut *self.stream) };
    }
}

impl Drop for RawDeflate {
    fn drop(&mut self) {
        // SAFETY: the stream was initialised by `new` and is ended once.
        unsafe { z::deflateEnd(&mut *self.stream) };
    }
}
