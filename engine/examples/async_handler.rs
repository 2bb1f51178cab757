//! Calling async code (a database, an HTTP API) from a handler, and
//! starting the engine from inside `#[tokio::main]`.
//!
//! A callback runs on its worker's thread between that core's I/O: if it
//! blocks (a synchronous query, a long computation), every connection of
//! the core waits. So the handler starts the work as a task on the
//! worker's own tokio runtime (`spawn_local`, no `Send` needed) and
//! answers later through a `ConnRef`, which reaches the connection from
//! any task or thread (and says `Gone` once its worker has stopped).
//!
//! ```sh
//! cargo run --release -p uringws-engine --example async_handler -- 127.0.0.1:9003
//! ```
//! Each text message is answered after a simulated 100 ms lookup, while
//! the connection (and every other) keeps being served.

use std::time::Duration;
use uringws_engine::{
    protocol::handshake::Upgrade, Accept, Conn, Engine, Handler, Message, Peer, Reject,
};

struct Lookup;

/// Stands for an async client call: a database query, an HTTP request.
async fn look_up(key: String) -> String {
    tokio::time::sleep(Duration::from_millis(100)).await;
    format!("value of {key}")
}

impl Handler for Lookup {
    type State = ();

    fn upgrade(&mut self, _: &Upgrade<'_>, _: Peer) -> Result<Accept<()>, Reject> {
        Ok(Accept::new(()))
    }

    fn message(&mut self, conn: &mut Conn<'_, ()>, message: Message) {
        let Message::Text(key) = message else {
            return;
        };
        let reply_to = conn.handle();
        tokio::task::spawn_local(async move {
            let value = look_up(key.as_str().to_owned()).await;
            // The connection may have closed meanwhile: the send is then
            // dropped; `Err` only if the whole worker has stopped.
            let _ = reply_to.send_text(value);
        });
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9003".into());
    let addr = addr
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // `start` spawns the workers (each with a runtime of its own) and
    // returns: nothing of this runtime is blocked.
    let engine = Engine::builder().listen(addr).start(|_worker| Lookup)?;
    println!("listening on {}", engine.local_addrs()[0]);
    tokio::signal::ctrl_c().await?;
    engine.shutdown();
    // `join` blocks until the workers exit: off the async thread.
    tokio::task::spawn_blocking(move || engine.join())
        .await
        .map_err(std::io::Error::other)?
}
