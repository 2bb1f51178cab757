//! A chat room: every connection joins one topic, and what one sends, all
//! the others receive (publish to others: a frame encoded once, shared by
//! every receiver on every core). It is the "broadcast" server that
//! `uringws-load fanout --mode broadcast` measures, as the uWebSockets peer's
//! `/broadcast` is.
//!
//! With `--compression`, permessage-deflate for clients that offer it:
//! each publication is compressed once per worker for all its receivers.
//!
//!     cargo run --release -p uringws-engine --example room -- --listen 127.0.0.1:9002 \
//!         [--threads N] [--compression off|shared|dedicated]

use uringws_engine::{protocol::handshake::Upgrade, Message};
use uringws_engine::{
    Accept, Compression, Conn, Engine, EngineConfig, Handler, Peer, Publication, Reject,
};

struct Room;

impl Handler for Room {
    type State = ();

    fn upgrade(&mut self, _: &Upgrade<'_>, _: Peer) -> Result<Accept<()>, Reject> {
        Ok(Accept::new(()))
    }

    fn open(&mut self, conn: &mut Conn<'_, ()>) {
        conn.subscribe("room");
    }

    fn message(&mut self, conn: &mut Conn<'_, ()>, message: Message) {
        let publication = match &message {
            Message::Text(text) => Publication::text(text.as_str()),
            Message::Binary(data) => Publication::binary(data),
        };
        conn.publish_to_others("room", &publication);
    }
}

fn main() -> std::io::Result<()> {
    let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
    let (mut listen, mut threads) = ("127.0.0.1:9002".to_string(), None);
    let mut compression = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args
            .next()
            .ok_or_else(|| invalid(format!("{arg} needs a value")))?;
        match arg.as_str() {
            "--listen" => listen = value,
            "--threads" => threads = Some(value.parse().map_err(|e| invalid(format!("{e}")))?),
            "--compression" => {
                compression = match value.as_str() {
                    "off" => None,
                    "shared" => Some(Compression::shared()),
                    // uWebSockets' DEDICATED_COMPRESSOR_3KB: window 2^9, memLevel 1.
                    "dedicated" => Some(Compression::dedicated(9)),
                    _ => return Err(invalid(format!("unknown compression {value}"))),
                }
            }
            _ => return Err(invalid(format!("unknown argument {arg}"))),
        }
    }
    let addr = listen.parse().map_err(|e| invalid(format!("{e}")))?;
    let mut builder = Engine::builder()
        .listen(addr)
        // Benchmarks pin with taskset; idle rooms are not timed out.
        .pin(false)
        .config(EngineConfig {
            idle_timeout: std::time::Duration::ZERO,
            ping_interval: std::time::Duration::ZERO,
            ..EngineConfig::default()
        });
    if let Some(threads) = threads {
        builder = builder.workers(threads);
    }
    if let Some(compression) = compression {
        builder = builder.compression(compression);
    }
    let engine = builder.start(|_worker| Room)?;
    println!("room on ws://{}", engine.local_addrs()[0]);
    engine.run_until_signal()
}
