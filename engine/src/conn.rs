//! [`Conn`], the view of a connection a handler gets during a callback,
//! and [`Ctx`], what its sends and publishes need from the worker.

use crate::{
    connection::{Connection, Outbox, SendStatus},
    handler::ConnId,
    pubsub::{Publication, Publisher, TopicTable},
    remote::{ConnRef, Mailbox},
};
use bytes::Bytes;
use uringws_protocol::{CloseCode, OpCode, Utf8Bytes};

/// The worker's side of a callback: everything but the connections.
pub(crate) struct Ctx {
    pub worker: usize,
    pub out: Outbox,
    pub commands: Mailbox,
    pub topics: TopicTable,
    pub publisher: Publisher,
    /// Publications for this worker's subscribers, delivered after the
    /// callback returns (a callback holds only its own connection): topic,
    /// frame, and the publishing slot when it wants none.
    pub to_publish: Vec<(Box<str>, Bytes, Option<u32>)>,
}

impl Ctx {
    /// Sends to the other interested workers now and queues the local
    /// fan-out; both keep the publisher's order.
    pub(crate) fn publish(&mut self, topic: &str, message: &Publication, skip: Option<u32>) {
        self.publisher
            .publish_except(topic, message, Some(self.worker));
        if self.topics.has(topic) {
            self.to_publish
                .push((topic.into(), message.frame().clone(), skip));
        }
    }

    pub(crate) fn conn_id(&self, conn: &Connection) -> ConnId {
        ConnId {
            worker: self.worker as u32,
            slot: conn.id.slot,
            gen: conn.id.gen,
        }
    }
}

/// A connection as a handler sees it during a callback.
pub struct Conn<'a, S> {
    pub(crate) conn: &'a mut Connection,
    pub(crate) state: &'a mut S,
    pub(crate) ctx: &'a mut Ctx,
}

impl<'a, S> Conn<'a, S> {
    /// The connection's state, as [`Accept`](crate::Accept) gave it.
    pub fn state(&mut self) -> &mut S {
        self.state
    }

    pub fn id(&self) -> ConnId {
        self.ctx.conn_id(self.conn)
    }

    /// Bytes queued for this connection and not yet written.
    pub fn buffered(&self) -> usize {
        self.conn.queued()
    }

    /// A handle that reaches this connection from any thread or task.
    pub fn handle(&self) -> ConnRef {
        ConnRef::new(self.id(), self.ctx.commands.clone())
    }

    pub fn send_text(&mut self, text: impl Into<Utf8Bytes>) -> SendStatus {
        self.send(OpCode::Text, text.into().into_bytes())
    }

    pub fn send_binary(&mut self, data: impl Into<Bytes>) -> SendStatus {
        self.send(OpCode::Binary, data.into())
    }

    /// A ping; the payload is cut to 125 bytes.
    pub fn ping(&mut self, payload: impl Into<Bytes>) -> SendStatus {
        let mut payload: Bytes = payload.into();
        payload.truncate(125);
        self.send(OpCode::Ping, payload)
    }

    /// A frame encoded once for many connections
    /// ([`encode_shared`](uringws_protocol::encoder::encode_shared)).
    pub fn send_encoded(&mut self, frame: Bytes) -> SendStatus {
        self.conn.send_encoded(frame, &mut self.ctx.out)
    }

    /// Starts the close handshake with `code` and `reason` (cut to fit).
    /// Data queued before is written first; later sends are refused.
    pub fn close(&mut self, code: CloseCode, reason: &str) {
        self.conn.close(code, reason, &mut self.ctx.out);
    }

    /// Subscribes this connection to `topic`; false if it already was. Once
    /// this returns, every later publication to `topic`, from any worker or
    /// thread, reaches it. Subscriptions end with the connection.
    pub fn subscribe(&mut self, topic: &str) -> bool {
        self.conn.is_open() && self.ctx.topics.subscribe(self.conn.id.slot, topic)
    }

    /// False if it was not subscribed.
    pub fn unsubscribe(&mut self, topic: &str) -> bool {
        self.ctx.topics.unsubscribe(self.conn.id.slot, topic)
    }

    /// Topics this connection is subscribed to.
    pub fn subscriptions(&self) -> usize {
        self.ctx.topics.count(self.conn.id.slot)
    }

    /// Publishes to every subscriber of `topic`, this connection included
    /// if it is one. Subscribers over their backpressure limit miss it (or
    /// are closed, per [`BackpressurePolicy`](crate::BackpressurePolicy)).
    pub fn publish(&mut self, topic: &str, message: &Publication) {
        self.ctx.publish(topic, message, None);
    }

    /// Publishes to every subscriber of `topic` but this connection.
    pub fn publish_to_others(&mut self, topic: &str, message: &Publication) {
        self.ctx.publish(topic, message, Some(self.conn.id.slot));
    }

    /// A handle that publishes from any thread or task.
    pub fn publisher(&self) -> Publisher {
        self.ctx.publisher.clone()
    }

    fn send(&mut self, opcode: OpCode, payload: Bytes) -> SendStatus {
        self.conn.send(opcode, payload, &mut self.ctx.out)
    }
}
