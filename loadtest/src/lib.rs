//! `uringws-load`: a WebSocket load generator for any server, on the client
//! role of `uringws-protocol`.
//!
//! Built so far (issue 5 is in progress): [`target`] — `ws://` URLs and
//! local source-address ranges — and [`report`] — latency percentiles,
//! counts, failures by reason, the client's own CPU time, as a table and as
//! JSON. The io_uring client runtime and the scenarios (connect, hold, echo,
//! fanout, churn) come next.
//!
//! ```
//! use uringws_load::{report::Latency, target::{SourceRange, Target}};
//!
//! let target = Target::parse("ws://127.0.0.1:9001/echo")?;
//! assert_eq!(target.path, "/echo");
//! let sources = SourceRange::parse("127.0.0.2-127.0.0.40")?;
//! assert_eq!(sources.len(), 39);
//!
//! let mut latency = Latency::default();
//! latency.record(std::time::Duration::from_micros(250));
//! assert_eq!(latency.percentiles().map(|p| p.count), Some(1));
//! # Ok::<(), uringws_load::target::BadInput>(())
//! ```

pub mod report;
pub mod target;
