//! `uringws-engine`: the per-core io_uring runtime that drives
//! [`uringws_protocol`] over real sockets.
//!
//! Not built yet (issue 4): one pinned thread per core, each with its own
//! `SO_REUSEPORT` listener and io_uring, a connection slab, pub/sub and the
//! handler API. Until then this crate only re-exports the protocol so the
//! workspace's dependency direction (`protocol` ← `engine` ← `server`) is fixed.

pub use uringws_protocol as protocol;
