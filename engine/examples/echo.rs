//! The smallest useful server: every text and binary message comes back.
//!
//!     cargo run --release -p uringws-engine --example echo -- 127.0.0.1:9001

use uringws_engine::{protocol::handshake::Upgrade, Message};
use uringws_engine::{Accept, Conn, Engine, Handler, Peer, Reject};

struct Echo;

impl Handler for Echo {
    type State = ();

    fn upgrade(&mut self, _: &Upgrade<'_>, _: Peer) -> Result<Accept<()>, Reject> {
        Ok(Accept::new(()))
    }

    fn message(&mut self, conn: &mut Conn<'_, ()>, message: Message) {
        // The payload is shared, not copied: the reply reuses the bytes read.
        match message {
            Message::Text(text) => conn.send_text(text),
            Message::Binary(data) => conn.send_binary(data),
        };
    }
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".into());
    let addr = addr
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let engine = Engine::builder().listen(addr).start(|_worker| Echo)?;
    println!("echo server on ws://{}", engine.local_addrs()[0]);
    engine.run_until_signal()
}
