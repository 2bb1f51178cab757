//! What a completion belongs to in the engine, packed into the ring's
//! `user_data`.

/// What a completion belongs to, packed into `user_data`: the kind, the
/// slot's generation (so a late completion for a reused slot is ignored)
/// and the slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Token {
    pub kind: Kind,
    pub gen: u32,
    pub slot: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    Accept = 1,
    Recv = 2,
    Send = 3,
    Close = 4,
}

const GEN_MASK: u32 = (1 << 24) - 1;

impl Token {
    pub(crate) fn new(kind: Kind, gen: u32, slot: u32) -> Self {
        Token {
            kind,
            gen: gen & GEN_MASK,
            slot,
        }
    }

    pub(crate) fn encode(self) -> u64 {
        (u64::from(self.kind as u8) << 56)
            | (u64::from(self.gen & GEN_MASK) << 32)
            | u64::from(self.slot)
    }

    pub(crate) fn decode(data: u64) -> Option<Token> {
        let kind = match (data >> 56) as u8 {
            1 => Kind::Accept,
            2 => Kind::Recv,
            3 => Kind::Send,
            4 => Kind::Close,
            _ => return None,
        };
        Some(Token {
            kind,
            gen: ((data >> 32) as u32) & GEN_MASK,
            slot: data as u32,
        })
    }

    /// Generations wrap at 24 bits.
    pub(crate) fn next_gen(gen: u32) -> u32 {
        gen.wrapping_add(1) & GEN_MASK
    }
}
