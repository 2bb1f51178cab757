//! A worker's back-references from connection slots to their places in
//! topics' subscriber lists.

use std::collections::HashMap;

/// For each connection slot, (topic id, index in that topic's subscribers)
/// of each of its subscriptions, so that a close removes its entries
/// without scanning topics. Slots are dense (a slab), so the first
/// subscription of every slot sits in a vector: 8 bytes a slot, which is
/// all that a connection with one topic (the common case: a million held
/// subscribers) costs here. A slot's further subscriptions go to a map.
pub(super) struct BackRefs {
    pub(super) first: Vec<(u32, u32)>,
    pub(super) more: HashMap<u32, Vec<(u32, u32)>>,
}

/// `first`'s topic id for a slot with no subscription (topic ids are slab
/// indices, far below it).
const NONE: u32 = u32::MAX;

impl BackRefs {
    pub(super) fn with_capacity(slots: usize) -> Self {
        BackRefs {
            first: Vec::with_capacity(slots),
            more: HashMap::new(),
        }
    }

    pub(super) fn first(&self, slot: u32) -> Option<(u32, u32)> {
        self.first
            .get(slot as usize)
            .copied()
            .filter(|&(id, _)| id != NONE)
    }

    pub(super) fn has(&self, slot: u32, id: u32) -> bool {
        match self.first(slot) {
            None => false,
            Some((first, _)) if first == id => true,
            Some(_) => self
                .more
                .get(&slot)
                .is_some_and(|m| m.iter().any(|&(t, _)| t == id)),
        }
    }

    pub(super) fn push(&mut self, slot: u32, id: u32, pos: u32) {
        let i = slot as usize;
        if self.first.len() <= i {
            self.first.resize(i + 1, (NONE, 0));
        }
        if self.first[i].0 == NONE {
            self.first[i] = (id, pos);
        } else {
            self.more.entry(slot).or_default().push((id, pos));
        }
    }

    /// Removes `slot`'s subscription to `id`, giving its index.
    pub(super) fn remove(&mut self, slot: u32, id: u32) -> Option<u32> {
        let (first, pos) = self.first(slot)?;
        if first == id {
            // A spilled one, if any, moves up.
            let next = self.pop_more(slot).unwrap_or((NONE, 0));
            self.first[slot as usize] = next;
            return Some(pos);
        }
        let more = self.more.get_mut(&slot)?;
        let i = more.iter().position(|&(t, _)| t == id)?;
        let (_, pos) = more.swap_remove(i);
        if more.is_empty() {
            self.more.remove(&slot);
        }
        Some(pos)
    }

    pub(super) fn pop_more(&mut self, slot: u32) -> Option<(u32, u32)> {
        let more = self.more.get_mut(&slot)?;
        let last = more.pop();
        if more.is_empty() {
            self.more.remove(&slot);
        }
        last
    }

    /// Removes one of `slot`'s subscriptions, any.
    pub(super) fn pop(&mut self, slot: u32) -> Option<(u32, u32)> {
        if let Some(last) = self.pop_more(slot) {
            return Some(last);
        }
        let first = self.first(slot)?;
        self.first[slot as usize] = (NONE, 0);
        Some(first)
    }

    pub(super) fn set_pos(&mut self, slot: u32, id: u32, pos: u32) {
        if let Some(first) = self.first.get_mut(slot as usize).filter(|f| f.0 == id) {
            first.1 = pos;
        } else if let Some(entry) = self
            .more
            .get_mut(&slot)
            .and_then(|m| m.iter_mut().find(|(t, _)| *t == id))
        {
            entry.1 = pos;
        }
    }

    pub(super) fn count(&self, slot: u32) -> usize {
        match self.first(slot) {
            None => 0,
            Some(_) => 1 + self.more.get(&slot).map_or(0, Vec::len),
        }
    }

    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.more.is_empty() && self.first.iter().all(|&(id, _)| id == NONE)
    }
}
