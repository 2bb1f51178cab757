//! Duplicates and reordering per (receiver, publisher) pair, in 16 bytes:
//! the next sequence number after the newest seen, and a bitmap of the 64
//! below it. Sequence numbers count per (publisher, topic), so a receiver
//! sees each publisher's messages numbered 0, 1, 2, … and the window is
//! dense. A message below the newest is reordered; one already in the
//! bitmap is a duplicate. Both are exact within 64 messages of the newest;
//! an older one is reordered and unchecked (it may be a duplicate). A
//! server that keeps the order it promises never produces either.

const WINDOW: u64 = 64;

/// What one arrival is, for its (receiver, publisher) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Newer than anything seen (possibly after a gap).
    InOrder,
    /// Older than the newest, first copy.
    Late,
    /// Older than the window: first copy or duplicate, cannot tell.
    LateUnchecked,
    Duplicate,
}

/// A (receiver, publisher) pair's history: the next sequence number after
/// the newest seen, and which of the 64 below it have arrived (bit `i` is
/// `next - 1 - i`).
#[derive(Debug, Default, Clone, Copy)]
pub struct Pair {
    next: u64,
    seen: u64,
}

impl Pair {
    pub fn arrive(&mut self, seq: u64) -> Arrival {
        if seq >= self.next {
            let shift = (seq - self.next).saturating_add(1);
            self.seen = if shift >= WINDOW {
                0
            } else {
                self.seen << shift
            } | 1;
            self.next = seq.saturating_add(1);
            return Arrival::InOrder;
        }
        let back = self.next - 1 - seq;
        if back >= WINDOW {
            return Arrival::LateUnchecked;
        }
        let bit = 1u64 << back;
        if self.seen & bit != 0 {
            Arrival::Duplicate
        } else {
            self.seen |= bit;
            Arrival::Late
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_window_tells_order_duplicates_and_lateness() {
        let mut p = Pair::default();
        assert_eq!(p.arrive(0), Arrival::InOrder);
        assert_eq!(p.arrive(0), Arrival::Duplicate);
        assert_eq!(p.arrive(1), Arrival::InOrder);
        // A gap, then the missing ones late, each once.
        assert_eq!(p.arrive(5), Arrival::InOrder);
        assert_eq!(p.arrive(3), Arrival::Late);
        assert_eq!(p.arrive(3), Arrival::Duplicate);
        assert_eq!(p.arrive(2), Arrival::Late);
        assert_eq!(p.arrive(4), Arrival::Late);
        assert_eq!(p.arrive(5), Arrival::Duplicate);
        assert_eq!(p.arrive(1), Arrival::Duplicate);
        // 63 behind the newest is still in the window; 64 is not.
        assert_eq!(p.arrive(100), Arrival::InOrder);
        assert_eq!(p.arrive(37), Arrival::Late);
        assert_eq!(p.arrive(37), Arrival::Duplicate);
        assert_eq!(p.arrive(36), Arrival::LateUnchecked);
        // A jump past the window forgets it all.
        assert_eq!(p.arrive(1000), Arrival::InOrder);
        assert_eq!(p.arrive(999), Arrival::Late);
        assert_eq!(p.arrive(900), Arrival::LateUnchecked);
        // Hostile sequence numbers (a replayed frame with a valid check
        // word) neither overflow nor panic; what they count as is moot.
        for seq in [u64::MAX, u64::MAX, u64::MAX - 1, 0, u64::MAX - 64] {
            p.arrive(seq);
        }
    }
}
