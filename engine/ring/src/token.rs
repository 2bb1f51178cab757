//! A scheme for `user_data`: what kind of operation a completion belongs to,
//! for which slot, and the slot's generation, so a late completion for a
//! reused slot is recognised and ignored.

/// A completion's owner, packed into the 63 bits of `user_data` that are
/// the caller's: 7 bits of kind (0 is never a token: cancellations use
/// [`IGNORED`](crate::IGNORED)), 24 of generation, 32 of slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    pub kind: u8,
    pub gen: u32,
    pub slot: u32,
}

const GEN_MASK: u32 = (1 << 24) - 1;
const KIND_MASK: u8 = 0x7f;

impl Token {
    /// `kind` must be 1–126; the generation is cut to 24 bits.
    pub fn new(kind: u8, gen: u32, slot: u32) -> Self {
        debug_assert!((1..KIND_MASK).contains(&kind));
        Token {
            kind: kind & KIND_MASK,
            gen: gen & GEN_MASK,
            slot,
        }
    }

    pub fn encode(self) -> u64 {
        (u64::from(self.kind) << 56) | (u64::from(self.gen) << 32) | u64::from(self.slot)
    }

    /// The token in `user_data`, or `None` for one that is not a token.
    pub fn decode(user_data: u64) -> Option<Token> {
        let kind = (user_data >> 56) as u8;
        if kind == 0 || kind >= KIND_MASK {
            return None;
        }
        Some(Token {
            kind,
            gen: ((user_data >> 32) as u32) & GEN_MASK,
            slot: user_data as u32,
        })
    }

    /// Whether this token was made for a slot of generation `gen`, which
    /// the caller may count in more bits than a token carries (24).
    pub fn is_for(self, gen: u32) -> bool {
        self.gen == gen & GEN_MASK
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_wrap() {
        let t = Token::new(3, GEN_MASK, u32::MAX);
        assert_eq!(Token::decode(t.encode()), Some(t));
        assert_eq!(Token::new(1, GEN_MASK + 5, 0).gen, 4);
        assert!(Token::new(1, 7, 0).is_for(7 + (1 << 24)));
        assert!(!Token::new(1, 7, 0).is_for(8));
    }

    #[test]
    fn ring_values_are_not_tokens() {
        assert_eq!(Token::decode(crate::IGNORED), None);
        assert_eq!(Token::decode(0), None);
        assert_eq!(Token::decode(1 << 63 | 5), None);
    }
}
