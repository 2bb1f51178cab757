//! Counters a worker shares with the rest of the process (health, metrics).
//! Written by the worker only, read by anyone: relaxed atomics.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

#[derive(Debug, Default)]
pub struct WorkerStats {
    open: AtomicUsize,
    /// Times a recv found the provided-buffer ring empty.
    pub(crate) buffer_exhaustions: AtomicU64,
    /// Publications fanned out by this worker (one per topic per publish).
    pub(crate) publishes: AtomicU64,
    /// Messages queued to subscribers.
    pub(crate) deliveries: AtomicU64,
    /// Messages not queued to a subscriber over its backpressure limit (or
    /// closing).
    pub(crate) deliveries_dropped: AtomicU64,
}

impl WorkerStats {
    pub(crate) fn set_open(&self, open: usize) {
        self.open.store(open, Ordering::Relaxed);
    }

    /// Upgraded connections on this worker.
    pub fn connections(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    pub fn buffer_exhaustions(&self) -> u64 {
        self.buffer_exhaustions.load(Ordering::Relaxed)
    }

    pub fn publishes(&self) -> u64 {
        self.publishes.load(Ordering::Relaxed)
    }

    pub fn deliveries(&self) -> u64 {
        self.deliveries.load(Ordering::Relaxed)
    }

    pub fn deliveries_dropped(&self) -> u64 {
        self.deliveries_dropped.load(Ordering::Relaxed)
    }
}
