#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub use uringws_protocol as protocol;

mod config;
mod conn;
mod connection;
mod engine;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod handler;
mod proxy;
mod pubsub;
mod refusal;
mod remote;
mod stats;
mod worker;

pub use config::{BackpressurePolicy, Compression, EngineConfig};
pub use conn::Conn;
pub use connection::SendStatus;
pub use engine::{Engine, EngineBuilder, EngineHandle, WorkerContext};
pub use handler::{Accept, ConnId, Handler, Message, Peer, Reject};
pub use proxy::TrustedProxies;
pub use pubsub::{Publication, Publisher};
pub use remote::{ConnRef, Gone};
pub use stats::{Histogram, RequestOutcome, WorkerStats, HISTOGRAM_BUCKETS};
