//! What several of the load generator's tests share: a server-side echo
//! handler on the engine, the target they load.

use uringws_engine::protocol::handshake::Upgrade;
use uringws_engine::{Accept, Conn, Handler, Message, Peer, Reject};

/// Every text and binary message back as it came.
pub struct EchoHandler;

impl Handler for EchoHandler {
    type State = ();
    fn upgrade(&mut self, _: &Upgrade<'_>, _: Peer) -> Result<Accept<()>, Reject> {
        Ok(Accept::new(()))
    }
    fn message(&mut self, conn: &mut Conn<'_, ()>, message: Message) {
        match message {
            Message::Text(text) => conn.send_text(text),
            Message::Binary(data) => conn.send_binary(data),
        };
    }
}
