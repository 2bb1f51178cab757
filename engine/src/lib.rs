//! `uringws-engine`: the per-core io_uring runtime that drives
//! [`uringws_protocol`] over real sockets.
//!
//! One worker thread per core, pinned, each with its own `SO_REUSEPORT`
//! listener, its own io_uring (multishot accept, multishot recv on a
//! provided-buffer ring, vectored sends) inside a tokio current-thread
//! runtime, its own connections and its own [`Handler`]. Nothing on the hot
//! path is shared between workers.
//!
//! ```no_run
//! use uringws_engine::{Accept, Conn, Engine, Handler, Peer, Reject};
//! use uringws_engine::protocol::{handshake::Upgrade, Message};
//!
//! struct Echo;
//!
//! impl Handler for Echo {
//!     type State = ();
//!     fn upgrade(&mut self, _: &Upgrade<'_>, _: Peer) -> Result<Accept<()>, Reject> {
//!         Ok(Accept::new(()))
//!     }
//!     fn message(&mut self, conn: &mut Conn<'_, ()>, message: Message) {
//!         match message {
//!             Message::Text(text) => { conn.send_text(text); }
//!             Message::Binary(data) => { conn.send_binary(data); }
//!             _ => {}
//!         }
//!     }
//! }
//!
//! let engine = Engine::builder()
//!     .listen("127.0.0.1:9001".parse().unwrap())
//!     .start(|_| Echo)?;
//! engine.run_until_signal()?;
//! # Ok::<(), std::io::Error>(())
//! ```

pub use uringws_protocol as protocol;

mod config;
mod conn;
mod engine;
mod handler;
mod remote;
mod stats;
mod uring;
mod worker;

pub use config::{BackpressurePolicy, EngineConfig};
pub use conn::{Conn, SendStatus};
pub use engine::{Engine, EngineBuilder, EngineHandle, WorkerContext};
pub use handler::{Accept, Handler, Peer, Reject};
pub use remote::{ConnRef, Gone};
pub use stats::WorkerStats;
