//! The connection state machine without a ring or a socket.

use super::*;

#[test]
fn starts_in_its_handshake() {
    let mut ob = Outbox::new(Arc::new(EngineConfig::default()));
    let conn = Connection::new(Id { slot: 0, gen: 0 }, None, &mut ob);
    assert!(matches!(conn.state(), State::Handshake { .. }));
}
