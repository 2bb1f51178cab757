//! `uringws-load`: a WebSocket load generator for any server, on the client
//! role of `uringws-protocol` and the io_uring layer the engine runs on
//! too (`uringws-ring`): sockets are direct descriptors, so one process
//! holds far more connections than its open-files limit.
//!
//! - [`target`]: `ws://` and `wss://` URLs (resolved once) and local
//!   source-address ranges, to get past the ~28k ephemeral ports of one
//!   address pair.
//! - [`tls`]: what `wss://` connections trust (given CAs only, or anything
//!   with `--insecure`), and TLS as a connection's byte layer on rustls's
//!   unbuffered client connection.
//! - [`deflate`]: permessage-deflate (RFC 7692) as a client: the offer,
//!   the server's answer checked, and streams made only when used, per
//!   connection where context is kept and per worker where it is not.
//! - [`outbox`]: what scenarios send through: messages, compressed where
//!   agreed, their payload counted apart from the frames' bytes.
//! - [`client`]: one worker thread per ring drives connections through
//!   socket, bind, connect, TLS (`wss://`) and upgrade, then hands them to
//!   a [`Scenario`](client::Scenario); failures are counted by reason
//!   (refused, timeout, bad status, bad accept, TLS, closed by server, …)
//!   and every wait has a deadline.
//! - [`scenarios`]: `connect` (storm), `hold` (idle with pings), `echo`
//!   (closed loop, or open loop at a fixed rate with latency from the
//!   intended send time; every echo checked), `churn` (open at a rate, close
//!   after a while).
//! - [`fanout`]: publishers and subscribers through a pub/sub server, either
//!   any broadcast server or the `uringws.v1` protocol (`docs/protocol.md`):
//!   delivery latency from the intended send time, reach, loss, duplicates
//!   and reordering, counted exactly across workers.
//! - [`report`]: HdrHistogram percentiles, counts, errors and the client's
//!   own CPU time, as a table and as JSON.
//! - [`series`]: the run second by second, merged from every worker
//!   without sharing anything per message.
//! - [`duration`]: duration flags as load tools take them (`10s`, `2m`,
//!   `1m30s`; a bare number is seconds).
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

#![forbid(unsafe_code)]

pub mod client;
pub mod deflate;
pub mod duration;
pub mod fanout;
pub mod outbox;
pub mod report;
pub mod scenarios;
pub mod series;
pub mod target;
pub mod tls;
