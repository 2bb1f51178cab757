//! Reaching a connection from other threads and tasks.

use crate::handler::ConnId;
use bytes::Bytes;
use std::{io, sync::Arc};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use uringws_protocol::{CloseCode, OpCode, Utf8Bytes};
use uringws_ring::Bell;

pub(crate) enum Command {
    /// For one connection, dropped if it has gone.
    Conn {
        id: ConnId,
        op: ConnOp,
    },
    /// A publication for this worker's subscribers of `topic`.
    Publish {
        topic: std::sync::Arc<str>,
        frame: Bytes,
        /// When it was published, for the delay histogram.
        at: std::time::Instant,
    },
    Shutdown,
}

/// A worker's queue of commands from other threads and tasks, with the
/// bell that wakes it while it waits in its ring instead of in tokio.
#[derive(Clone, Debug)]
pub(crate) struct Mailbox {
    tx: UnboundedSender<Command>,
    bell: Arc<Bell>,
}

impl Mailbox {
    pub(crate) fn new() -> io::Result<(Mailbox, UnboundedReceiver<Command>)> {
        let (tx, rx) = unbounded_channel();
        let bell = Arc::new(Bell::new()?);
        Ok((Mailbox { tx, bell }, rx))
    }

    pub(crate) fn send(&self, command: Command) -> Result<(), Gone> {
        self.tx.send(command).map_err(|_| Gone)?;
        self.bell.ring();
        Ok(())
    }

    pub(crate) fn bell(&self) -> &Bell {
        &self.bell
    }
}

/// What a [`ConnRef`] asks of its connection.
pub(crate) enum ConnOp {
    Send { opcode: OpCode, payload: Bytes },
    SendEncoded(Bytes),
    Close { code: CloseCode, reason: Utf8Bytes },
}

/// A `Send + Clone` handle to one connection. Sends are carried out on the
/// connection's worker in order; to a connection that has gone they are
/// discarded, and `Err(Gone)` is returned when the whole worker is gone.
#[derive(Clone, Debug)]
pub struct ConnRef {
    id: ConnId,
    tx: Mailbox,
}

/// The connection's worker has stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the connection's worker has stopped")]
pub struct Gone;

impl ConnRef {
    pub(crate) fn new(id: ConnId, tx: Mailbox) -> Self {
        ConnRef { id, tx }
    }

    pub fn id(&self) -> ConnId {
        self.id
    }

    pub fn worker(&self) -> usize {
        self.id.worker()
    }

    pub fn send_text(&self, text: impl Into<Utf8Bytes>) -> Result<(), Gone> {
        self.send(OpCode::Text, text.into().into_bytes())
    }

    pub fn send_binary(&self, data: impl Into<Bytes>) -> Result<(), Gone> {
        self.send(OpCode::Binary, data.into())
    }

    /// A frame encoded once for many connections.
    pub fn send_encoded(&self, frame: Bytes) -> Result<(), Gone> {
        self.ask(ConnOp::SendEncoded(frame))
    }

    pub fn close(&self, code: CloseCode, reason: &str) -> Result<(), Gone> {
        let reason = Utf8Bytes::from(reason);
        self.ask(ConnOp::Close { code, reason })
    }

    fn send(&self, opcode: OpCode, payload: Bytes) -> Result<(), Gone> {
        self.ask(ConnOp::Send { opcode, payload })
    }

    fn ask(&self, op: ConnOp) -> Result<(), Gone> {
        let id = self.id;
        self.tx.send(Command::Conn { id, op })
    }
}
