//! The close handshake state machine.

pub struct Session;
