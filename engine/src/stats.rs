//! Counters a worker shares with the rest of the process (health, metrics).
//! Written by the worker only, read by anyone: relaxed atomics.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

#[derive(Debug, Default)]
pub struct WorkerStats {
    open: AtomicUsize,
    /// Times a recv found the provided-buffer ring empty.
    pub(crate) buffer_exhaustions: AtomicU64,
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
}
