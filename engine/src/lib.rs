#![doc = include_str!("../README.md")]

pub use uringws_protocol as protocol;

mod config;
mod conn;
mod engine;
mod handler;
mod pubsub;
mod remote;
pub mod ring;
mod stats;
mod token;
mod worker;

pub use config::{BackpressurePolicy, EngineConfig};
pub use conn::{Conn, SendStatus};
pub use engine::{Engine, EngineBuilder, EngineHandle, WorkerContext};
pub use handler::{Accept, Handler, Peer, Reject};
pub use pubsub::{Publication, Publisher};
pub use remote::{ConnRef, Gone};
pub use stats::{RequestOutcome, WorkerStats};
