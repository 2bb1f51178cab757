//! Payload masking (RFC 6455 §5.3).
//!
//! Every byte a client sends is XORed with a 4-byte key, so a server pays for
//! this on every byte it reads; together with UTF-8 validation it is the whole
//! per-byte cost of the read path. Hence SIMD: AVX2 or SSE2 on x86_64 (picked
//! once at run time), NEON on aarch64, and 8 bytes at a time everywhere else
//! and for the heads and tails the vector loops leave.
//!
//! Every path first rotates the key by `offset` into a `u32` whose bytes in
//! memory order line up with the buffer, then steps through the buffer in
//! multiples of 4 bytes, so inside the loops the offset can be forgotten.

/// Below this the word path wins. The compiler vectorizes it with SSE2 on
/// its own, and it inlines into the caller, whereas a `target_feature`
/// vector path is an out-of-line call that cannot inline into code built
/// without that feature. Measured on Zen 3 with the payload 6 bytes past a
/// cache line: 64 B at ≈ 12 GB/s through words against ≈ 10 GB/s through
/// AVX2; from about 128 B on AVX2 pulls ahead.
const SIMD_MIN_LEN: usize = 128;

/// XORs `buf` in place with `mask`, as if `buf` started `offset` bytes into
/// the payload (so byte `i` of `buf` is XORed with `mask[(offset + i) % 4]`).
///
/// Applying it twice with the same arguments restores the original bytes, and
/// a payload can be unmasked piecewise: `buf[..k]` at `offset`, then
/// `buf[k..]` at `offset + k`.
#[inline]
pub fn apply_mask(buf: &mut [u8], mask: [u8; 4], offset: usize) {
    let key = rotate_key(u32::from_ne_bytes(mask), offset);
    if buf.len() < SIMD_MIN_LEN {
        mask_words(buf, key);
    } else {
        simd::mask_with_key(buf, key);
    }
}

/// The portable path, 8 bytes at a time; same contract as [`apply_mask`].
///
/// Public so benchmarks can compare it with the vector paths.
#[doc(hidden)]
pub fn apply_mask_fallback(buf: &mut [u8], mask: [u8; 4], offset: usize) {
    mask_words(buf, rotate_key(u32::from_ne_bytes(mask), offset));
}

/// Returns `key` as seen from `offset` bytes further on: byte `i` (in memory
/// order) of the result is byte `(offset + i) % 4` of `key`.
#[inline]
fn rotate_key(key: u32, offset: usize) -> u32 {
    // `& 3` keeps the shift below 32; the cast cannot truncate.
    let shift = 8 * (offset & 3) as u32;
    // Memory order is low byte first on little-endian targets, high byte
    // first on big-endian ones, so "the next byte" is a different direction.
    if cfg!(target_endian = "little") {
        key.rotate_right(shift)
    } else {
        key.rotate_left(shift)
    }
}

/// Masks `buf` with a key already rotated to line up with `buf[0]`.
#[inline]
fn mask_words(buf: &mut [u8], key: u32) {
    // 8 is a multiple of 4, so every chunk starts at key byte 0 and one word
    // serves them all.
    let word = u64::from(key) | (u64::from(key) << 32);
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        // Never fails (chunks_exact yields 8-byte slices); the conversion is
        // there so the compiler sees a fixed-size array and emits one load and
        // one store.
        if let Ok(bytes) = <&mut [u8; 8]>::try_from(chunk) {
            *bytes = (u64::from_ne_bytes(*bytes) ^ word).to_ne_bytes();
        }
    }
    mask_short_tail(chunks.into_remainder(), key);
}

/// Masks the fewer than 8 bytes a word loop leaves, starting at key byte 0,
/// in at most three steps (4, 2, 1 bytes) picked by the bits of the length,
/// rather than up to seven byte steps behind as many branches.
#[inline]
fn mask_short_tail(tail: &mut [u8], key: u32) {
    debug_assert!(tail.len() < 8);
    let k = key.to_ne_bytes();
    let (word, rest) = tail.split_at_mut(tail.len() & 4);
    if let Ok(word) = <&mut [u8; 4]>::try_from(word) {
        *word = (u32::from_ne_bytes(*word) ^ key).to_ne_bytes();
    }
    // `rest` starts 0 or 4 bytes in: key byte 0 either way.
    let pair_len = rest.len() & 2;
    let (pair, last) = rest.split_at_mut(pair_len);
    if let Ok(pair) = <&mut [u8; 2]>::try_from(pair) {
        *pair = (u16::from_ne_bytes(*pair) ^ u16::from_ne_bytes([k[0], k[1]])).to_ne_bytes();
    }
    if let Some(b) = last.first_mut() {
        *b ^= k[pair_len];
    }
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use core::arch::x86_64::{
        __m128i, __m256i, _mm256_loadu_si256, _mm256_storeu_si256, _mm256_xor_si256,
        _mm_loadu_si128, _mm_storeu_si128, _mm_xor_si128,
    };
    use std::sync::atomic::{AtomicU8, Ordering};

    use super::{mask_words, rotate_key};

    /// From this length on the vector paths first mask the bytes up to the
    /// next vector-aligned address with words, so that no vector access
    /// straddles two cache lines. Payloads follow a 2–14 byte header, so they
    /// are almost never aligned. Measured on Zen 3 (AVX2, payload 8 or 14
    /// bytes past a cache line): 1 KiB ≈ 59 → 71 GB/s, 64 KiB ≈ 56 → 88 GB/s,
    /// 1 MiB ≈ 51 → 57 GB/s, SSE2 gains alike; at 512 B and below the head
    /// costs more than it saves.
    pub(super) const ALIGN_MIN_LEN: usize = 1024;

    const UNKNOWN: u8 = 0;
    const SCALAR: u8 = 1;
    const SSE2: u8 = 2;
    const AVX2: u8 = 3;

    /// The best path this CPU supports, detected on first use. An atomic byte
    /// rather than a function pointer: after the first call it costs one
    /// relaxed load and a predictable branch, and no `unsafe` is needed to
    /// turn a stored address back into a function. Relaxed is enough because
    /// every thread computes the same value; a race only means detecting
    /// twice.
    static LEVEL: AtomicU8 = AtomicU8::new(UNKNOWN);

    #[cold]
    fn detect() -> u8 {
        let level = if is_x86_feature_detected!("avx2") {
            AVX2
        } else if is_x86_feature_detected!("sse2") {
            SSE2
        } else {
            SCALAR
        };
        LEVEL.store(level, Ordering::Relaxed);
        level
    }

    #[inline]
    pub(super) fn mask_with_key(buf: &mut [u8], key: u32) {
        let mut level = LEVEL.load(Ordering::Relaxed);
        if level == UNKNOWN {
            level = detect();
        }
        match level {
            // SAFETY: LEVEL only ever holds AVX2 after `detect` saw AVX2 on
            // this CPU.
            AVX2 => unsafe { mask_avx2(buf, key) },
            // SAFETY: LEVEL only ever holds SSE2 after `detect` saw SSE2 on
            // this CPU.
            SSE2 => unsafe { mask_sse2(buf, key) },
            _ => mask_words(buf, key),
        }
    }

    /// Splits off the bytes before the first `align`-aligned address of a
    /// long `buf`, masks them with words, and returns the rest with the key
    /// rotated to match it. See [`ALIGN_MIN_LEN`] for why.
    #[inline]
    fn mask_unaligned_head(buf: &mut [u8], key: u32, align: usize) -> (&mut [u8], u32) {
        if buf.len() < ALIGN_MIN_LEN {
            return (buf, key);
        }
        // align_offset may answer usize::MAX ("cannot"); `min` turns that
        // into "mask it all with words", which is still correct.
        let head_len = buf.as_ptr().align_offset(align).min(buf.len());
        let (head, body) = buf.split_at_mut(head_len);
        mask_words(head, key);
        (body, rotate_key(key, head_len))
    }

    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn mask_avx2(buf: &mut [u8], key: u32) {
        let (buf, key) = mask_unaligned_head(buf, key, 32);
        let lanes = [key; 8];
        // SAFETY: `lanes` is 32 readable bytes and loadu has no alignment
        // requirement.
        let k = unsafe { _mm256_loadu_si256(lanes.as_ptr().cast::<__m256i>()) };
        // Four vectors per iteration so the loop overhead is paid once per
        // 128 bytes and the loads and stores of different vectors overlap.
        let mut blocks = buf.chunks_exact_mut(128);
        for block in &mut blocks {
            let p = block.as_mut_ptr().cast::<__m256i>();
            // SAFETY: `block` is exactly 128 writable bytes, so the four
            // 32-byte accesses at p, p+1, p+2, p+3 stay inside it; loadu and
            // storeu accept any alignment.
            unsafe {
                let a = _mm256_loadu_si256(p);
                let b = _mm256_loadu_si256(p.add(1));
                let c = _mm256_loadu_si256(p.add(2));
                let d = _mm256_loadu_si256(p.add(3));
                _mm256_storeu_si256(p, _mm256_xor_si256(a, k));
                _mm256_storeu_si256(p.add(1), _mm256_xor_si256(b, k));
                _mm256_storeu_si256(p.add(2), _mm256_xor_si256(c, k));
                _mm256_storeu_si256(p.add(3), _mm256_xor_si256(d, k));
            }
        }
        // 128, 32 and 16 are multiples of 4, so the key still lines up.
        let mut vectors = blocks.into_remainder().chunks_exact_mut(32);
        for v in &mut vectors {
            let p = v.as_mut_ptr().cast::<__m256i>();
            // SAFETY: `v` is exactly 32 writable bytes; loadu and storeu
            // accept any alignment.
            unsafe { _mm256_storeu_si256(p, _mm256_xor_si256(_mm256_loadu_si256(p), k)) };
        }
        let rest = vectors.into_remainder();
        // One 16-byte step leaves the word path at most 15 bytes.
        let rest = if rest.len() >= 16 {
            let (half, rest) = rest.split_at_mut(16);
            let p = half.as_mut_ptr().cast::<__m128i>();
            // SAFETY: `half` is exactly 16 writable bytes and `lanes` has 32
            // readable ones; loadu and storeu accept any alignment; AVX2
            // implies SSE2.
            unsafe {
                let k = _mm_loadu_si128(lanes.as_ptr().cast::<__m128i>());
                _mm_storeu_si128(p, _mm_xor_si128(_mm_loadu_si128(p), k));
            }
            rest
        } else {
            rest
        };
        mask_words(rest, key);
    }

    /// # Safety
    /// The CPU must support SSE2 (every x86_64 CPU does; the check keeps the
    /// two vector paths alike).
    #[target_feature(enable = "sse2")]
    pub(super) unsafe fn mask_sse2(buf: &mut [u8], key: u32) {
        let (buf, key) = mask_unaligned_head(buf, key, 16);
        let lanes = [key; 4];
        // SAFETY: `lanes` is 16 readable bytes and loadu has no alignment
        // requirement.
        let k = unsafe { _mm_loadu_si128(lanes.as_ptr().cast::<__m128i>()) };
        let mut blocks = buf.chunks_exact_mut(64);
        for block in &mut blocks {
            let p = block.as_mut_ptr().cast::<__m128i>();
            // SAFETY: `block` is exactly 64 writable bytes, so the four
            // 16-byte accesses at p, p+1, p+2, p+3 stay inside it; loadu and
            // storeu accept any alignment.
            unsafe {
                let a = _mm_loadu_si128(p);
                let b = _mm_loadu_si128(p.add(1));
                let c = _mm_loadu_si128(p.add(2));
                let d = _mm_loadu_si128(p.add(3));
                _mm_storeu_si128(p, _mm_xor_si128(a, k));
                _mm_storeu_si128(p.add(1), _mm_xor_si128(b, k));
                _mm_storeu_si128(p.add(2), _mm_xor_si128(c, k));
                _mm_storeu_si128(p.add(3), _mm_xor_si128(d, k));
            }
        }
        let mut vectors = blocks.into_remainder().chunks_exact_mut(16);
        for v in &mut vectors {
            let p = v.as_mut_ptr().cast::<__m128i>();
            // SAFETY: `v` is exactly 16 writable bytes; loadu and storeu
            // accept any alignment.
            unsafe { _mm_storeu_si128(p, _mm_xor_si128(_mm_loadu_si128(p), k)) };
        }
        mask_words(vectors.into_remainder(), key);
    }
}

// NEON is part of every standard aarch64 target, so it is a compile-time
// fact there and needs no detection.
#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
mod simd {
    use core::arch::aarch64::{veorq_u8, vld1q_u8, vst1q_u8};

    use super::mask_words;

    #[inline]
    pub(super) fn mask_with_key(buf: &mut [u8], key: u32) {
        let lanes = [key; 4];
        // SAFETY: `lanes` is 16 readable bytes; vld1q_u8 needs only u8
        // alignment.
        let k = unsafe { vld1q_u8(lanes.as_ptr().cast::<u8>()) };
        // Four vectors per iteration, as on x86_64, so the loop overhead is
        // paid once per 64 bytes.
        let mut blocks = buf.chunks_exact_mut(64);
        for block in &mut blocks {
            let p = block.as_mut_ptr();
            // SAFETY: `block` is exactly 64 writable bytes, so the four
            // 16-byte accesses at p, p+16, p+32, p+48 stay inside it;
            // vld1q/vst1q need only u8 alignment.
            unsafe {
                let a = vld1q_u8(p);
                let b = vld1q_u8(p.add(16));
                let c = vld1q_u8(p.add(32));
                let d = vld1q_u8(p.add(48));
                vst1q_u8(p, veorq_u8(a, k));
                vst1q_u8(p.add(16), veorq_u8(b, k));
                vst1q_u8(p.add(32), veorq_u8(c, k));
                vst1q_u8(p.add(48), veorq_u8(d, k));
            }
        }
        // 64 and 16 are multiples of 4, so the key still lines up.
        let mut vectors = blocks.into_remainder().chunks_exact_mut(16);
        for v in &mut vectors {
            let p = v.as_mut_ptr();
            // SAFETY: `v` is exactly 16 writable bytes; vld1q/vst1q need only
            // u8 alignment.
            unsafe { vst1q_u8(p, veorq_u8(vld1q_u8(p), k)) };
        }
        mask_words(vectors.into_remainder(), key);
    }
}

#[cfg(not(any(
    target_arch = "x86_64",
    all(target_arch = "aarch64", target_feature = "neon")
)))]
mod simd {
    #[inline]
    pub(super) fn mask_with_key(buf: &mut [u8], key: u32) {
        super::mask_words(buf, key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reference(buf: &mut [u8], mask: [u8; 4], offset: usize) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b ^= mask[(offset.wrapping_add(i)) % 4];
        }
    }

    type MaskFn = fn(&mut [u8], [u8; 4], usize);

    /// Every implementation this CPU can run, with its name for failures.
    fn implementations() -> Vec<(&'static str, MaskFn)> {
        let portable: [(&'static str, MaskFn); 3] = [
            ("apply_mask", apply_mask),
            ("apply_mask_fallback", apply_mask_fallback),
            ("simd dispatch", |buf, mask, offset| {
                simd::mask_with_key(buf, rotate_key(u32::from_ne_bytes(mask), offset))
            }),
        ];
        portable.into_iter().chain(arch_specific()).collect()
    }

    /// The x86_64 vector paths called directly, so both are covered on a CPU
    /// where the dispatch would only ever pick AVX2.
    #[cfg(target_arch = "x86_64")]
    fn arch_specific() -> Vec<(&'static str, MaskFn)> {
        let mut impls: Vec<(&'static str, MaskFn)> = Vec::new();
        if is_x86_feature_detected!("avx2") {
            impls.push(("avx2", |buf, mask, offset| {
                // SAFETY: only pushed after AVX2 was detected above.
                unsafe { simd::mask_avx2(buf, rotate_key(u32::from_ne_bytes(mask), offset)) }
            }));
        }
        if is_x86_feature_detected!("sse2") {
            impls.push(("sse2", |buf, mask, offset| {
                // SAFETY: only pushed after SSE2 was detected above.
                unsafe { simd::mask_sse2(buf, rotate_key(u32::from_ne_bytes(mask), offset)) }
            }));
        }
        impls
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn arch_specific() -> Vec<(&'static str, MaskFn)> {
        Vec::new()
    }

    /// Cheap deterministic bytes, different at every position and length.
    fn pattern(len: usize, seed: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i.wrapping_mul(131).wrapping_add(seed * 7919) >> 3) as u8 ^ i as u8)
            .collect()
    }

    const GUARD: u8 = 0xA5;

    /// Past the x86_64 aligned-head threshold, so that path, every 128-byte
    /// block remainder and every tail after it are covered too.
    const EXHAUSTIVE_MAX_LEN: usize = 1024 + 160;
    #[cfg(target_arch = "x86_64")]
    const _: () = assert!(simd::ALIGN_MIN_LEN + 128 + 32 <= EXHAUSTIVE_MAX_LEN);
    const MAX_MISALIGN: usize = 32;

    struct Case<'a> {
        data: &'a [u8],
        expected: &'a [u8],
        mask: [u8; 4],
        offset: usize,
        /// How far into the backing buffer the slice starts.
        misalign: usize,
    }

    /// Runs `f` on the case's data placed `misalign` bytes into a larger
    /// buffer and checks both the result and that nothing outside the slice
    /// was touched.
    fn check_one(name: &str, f: MaskFn, case: &Case<'_>, storage: &mut Vec<u8>) {
        let Case {
            data,
            expected,
            mask,
            offset,
            misalign,
        } = *case;
        storage.clear();
        storage.resize(data.len() + 2 * MAX_MISALIGN + 64, GUARD);
        let start = misalign;
        let end = start + data.len();
        storage[start..end].copy_from_slice(data);
        f(&mut storage[start..end], mask, offset);
        assert!(
            storage[start..end] == *expected,
            "{name}: len {} offset {offset} misalign {misalign} mask {mask:?}",
            data.len()
        );
        assert!(
            storage[..start].iter().all(|&b| b == GUARD)
                && storage[end..].iter().all(|&b| b == GUARD),
            "{name} wrote outside its slice: len {} offset {offset} misalign {misalign}",
            data.len()
        );
    }

    #[test]
    fn exhaustive_small_lengths_offsets_and_alignments() {
        let impls = implementations();
        let mask = [0x12, 0x9F, 0x00, 0xE7];
        let mut storage = Vec::new();
        for len in 0..=EXHAUSTIVE_MAX_LEN {
            let data = pattern(len, len);
            for offset in 0..4 {
                let mut expected = data.clone();
                reference(&mut expected, mask, offset);
                for misalign in 0..MAX_MISALIGN {
                    let case = Case {
                        data: &data,
                        expected: &expected,
                        mask,
                        offset,
                        misalign,
                    };
                    for &(name, f) in &impls {
                        check_one(name, f, &case, &mut storage);
                    }
                }
            }
        }
    }

    #[test]
    fn offset_uses_only_its_low_two_bits() {
        let data = pattern(100, 1);
        let mask = [1, 2, 4, 8];
        for offset in [usize::MAX, usize::MAX - 1, 1 << 40, (1 << 40) + 3] {
            let mut expected = data.clone();
            reference(&mut expected, mask, offset);
            for (name, f) in implementations() {
                let mut buf = data.clone();
                f(&mut buf, mask, offset);
                assert_eq!(buf, expected, "{name} offset {offset}");
            }
        }
    }

    proptest! {
        #[test]
        fn matches_reference(
            data in proptest::collection::vec(any::<u8>(), 0..=4096),
            mask in any::<[u8; 4]>(),
            offset in any::<usize>(),
            misalign in 0..MAX_MISALIGN,
        ) {
            let mut expected = data.clone();
            reference(&mut expected, mask, offset);
            let mut storage = Vec::new();
            let case = Case { data: &data, expected: &expected, mask, offset, misalign };
            for (name, f) in implementations() {
                check_one(name, f, &case, &mut storage);
            }
        }

        #[test]
        fn applying_twice_restores_the_original(
            data in proptest::collection::vec(any::<u8>(), 0..=4096),
            mask in any::<[u8; 4]>(),
            offset in any::<usize>(),
            misalign in 0..MAX_MISALIGN,
        ) {
            let mut storage = vec![0u8; misalign];
            storage.extend_from_slice(&data);
            let buf = &mut storage[misalign..];
            apply_mask(buf, mask, offset);
            apply_mask(buf, mask, offset);
            prop_assert_eq!(&*buf, &data[..]);
        }

        #[test]
        fn piecewise_equals_whole(
            data in proptest::collection::vec(any::<u8>(), 0..=4096),
            mask in any::<[u8; 4]>(),
            offset in 0..usize::MAX / 2,
            split in any::<prop::sample::Index>(),
        ) {
            let k = split.index(data.len() + 1);
            let mut whole = data.clone();
            apply_mask(&mut whole, mask, offset);
            let mut pieces = data.clone();
            let (head, tail) = pieces.split_at_mut(k);
            apply_mask(head, mask, offset);
            apply_mask(tail, mask, offset + k);
            prop_assert_eq!(pieces, whole);
        }
    }
}
