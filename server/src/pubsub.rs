//! The `uringws.v1` protocol of `/ws` (docs/protocol.md): JSON requests in
//! text frames, raw payloads in binary frames, on the engine's topics.

use serde::Deserialize;
use serde_json::value::RawValue;
use std::{borrow::Cow, collections::HashMap};
use uringws_engine::{Conn, ConnId, Publication};

use crate::{
    auth::{Action, Grant},
    bus::{Kind, WorkerBus},
};

pub const SUBPROTOCOL: &str = "uringws.v1";
/// Longest topic name, so a binary frame's one-byte length can carry it.
pub const MAX_TOPIC: usize = 255;

/// A connection, for side tables.
pub type ConnKey = ConnId;

pub fn conn_key<S>(conn: &Conn<'_, S>) -> ConnKey {
    conn.id()
}

/// Where each connection's binary frames without a topic go. Few
/// connections set one, so it lives beside the connections rather than in
/// the state every idle connection carries.
#[derive(Debug, Default)]
pub struct BinaryTopics(HashMap<ConnKey, Box<str>>);

impl BinaryTopics {
    /// The connection is gone.
    pub fn forget(&mut self, key: ConnKey) {
        if !self.0.is_empty() {
            self.0.remove(&key);
        }
    }
}

/// What a connection may do with topics.
#[derive(Debug, Clone, Copy)]
pub enum Access<'a> {
    All,
    Only(&'a Grant),
    /// No token: every topic to subscribe to; publishing only where the
    /// server allows it.
    Anonymous {
        publish: bool,
    },
    /// Nothing but `auth` until it authenticates.
    Unauthenticated,
}

impl Access<'_> {
    fn check(self, action: Action, topic: &str) -> Result<(), (&'static str, &'static str)> {
        const FORBIDDEN: &str = "forbidden";
        match (self, action) {
            (Access::All, _) => Ok(()),
            (Access::Only(grant), _) if grant.allows(action, topic) => Ok(()),
            (Access::Only(_), Action::Subscribe) => Err((
                FORBIDDEN,
                "the token does not allow subscribing to this topic",
            )),
            (Access::Only(_), Action::Publish) => Err((
                FORBIDDEN,
                "the token does not allow publishing to this topic",
            )),
            (Access::Anonymous { .. }, Action::Subscribe)
            | (Access::Anonymous { publish: true }, Action::Publish) => Ok(()),
            (Access::Anonymous { publish: false }, Action::Publish) => Err((
                FORBIDDEN,
                "publishing needs a token that allows it on this server",
            )),
            (Access::Unauthenticated, _) => Err(UNAUTHENTICATED),
        }
    }
}

const UNAUTHENTICATED: (&str, &str) = ("unauthenticated", "send auth first");

/// An `auth` request, for the caller to verify.
pub struct AuthRequest<'a> {
    pub token: Cow<'a, str>,
    pub id: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Request<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    topic: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    #[serde(default)]
    binary: bool,
    #[serde(borrow, default)]
    token: Option<Cow<'a, str>>,
}

/// A request id as given: an integer or a string, sent back verbatim.
fn valid_id(id: &RawValue) -> bool {
    let text = id.get();
    match text.as_bytes().first() {
        Some(b'"') => true,
        Some(b'-' | b'0'..=b'9') => text.parse::<i64>().is_ok() || text.parse::<u64>().is_ok(),
        _ => false,
    }
}

pub fn check_topic(topic: &str) -> Result<(), &'static str> {
    if topic.is_empty() {
        Err("topic is empty")
    } else if topic.len() > MAX_TOPIC {
        Err("topic is longer than 255 bytes")
    } else if topic.chars().any(char::is_control) {
        Err("topic has control characters")
    } else {
        Ok(())
    }
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

pub fn error(id: Option<&RawValue>, code: &str, message: &str) -> String {
    match id {
        Some(id) => format!(
            r#"{{"type":"error","id":{},"code":"{code}","message":{}}}"#,
            id.get(),
            json_string(message)
        ),
        None => format!(
            r#"{{"type":"error","code":"{code}","message":{}}}"#,
            json_string(message)
        ),
    }
}

pub fn ack(id: &RawValue) -> String {
    format!(r#"{{"type":"ack","id":{}}}"#, id.get())
}

/// The text delivered to subscribers of a JSON publish: `data` exactly as
/// the publisher wrote it.
pub fn message_text(topic: &str, data: &str) -> String {
    format!(
        r#"{{"type":"message","topic":{},"data":{data}}}"#,
        json_string(topic)
    )
}

/// A binary publication in the delivered form: the topic spelled out.
pub fn binary_frame(topic: &str, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(1 + topic.len() + payload.len());
    frame.push(topic.len() as u8);
    frame.extend_from_slice(topic.as_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// A message to publish, in the form subscribers get it.
#[derive(Debug, Clone, Copy)]
pub enum Outbound<'a> {
    Text(&'a str),
    Binary(&'a [u8]),
}

impl Outbound<'_> {
    pub fn publication(self) -> Publication {
        match self {
            Outbound::Text(text) => Publication::text(text),
            Outbound::Binary(data) => Publication::binary(data),
        }
    }

    /// To the other nodes, when there is a bus; what became of it.
    pub fn to_bus(self, topic: &str, bus: Option<&mut WorkerBus>) -> Option<crate::bus::Sent> {
        let bus = bus?;
        Some(match self {
            Outbound::Text(text) => bus.publish(topic, Kind::Text, text.as_bytes()),
            Outbound::Binary(data) => bus.publish(topic, Kind::Binary, data),
        })
    }
}

/// A connection's publish: its own node's subscribers first (in order with
/// what the connection does next), then the other nodes.
fn publish<S>(conn: &mut Conn<'_, S>, bus: Option<&mut WorkerBus>, topic: &str, out: Outbound<'_>) {
    conn.publish(topic, &out.publication());
    out.to_bus(topic, bus);
}

/// Limits of one connection.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_subscriptions: usize,
}

/// A text frame: one JSON request. An `auth` request is returned to the
/// caller, which knows what the connection came with.
pub fn on_text<'t, S>(
    conn: &mut Conn<'_, S>,
    text: &'t str,
    limits: Limits,
    binary_topics: &mut BinaryTopics,
    access: Access<'_>,
    bus: Option<&mut WorkerBus>,
) -> Option<AuthRequest<'t>> {
    let request: Request<'t> = match serde_json::from_str(text) {
        Ok(request) => request,
        Err(e) => {
            conn.send_text(error(None, "bad_request", &format!("not a request: {e}")));
            return None;
        }
    };
    let id = request.id.filter(|id| valid_id(id));
    if request.id.is_some() && id.is_none() {
        conn.send_text(error(
            None,
            "bad_request",
            "id must be an integer or a string",
        ));
        return None;
    }
    if request.kind == "auth" {
        match request.token {
            Some(token) => return Some(AuthRequest { token, id }),
            None => {
                conn.send_text(error(id, "bad_request", "token is missing"));
                return None;
            }
        }
    }
    if let Access::Unauthenticated = access {
        conn.send_text(error(id, UNAUTHENTICATED.0, UNAUTHENTICATED.1));
        return None;
    }
    let reply = match request.kind.as_ref() {
        "subscribe" | "unsubscribe" | "publish" => {
            let Some(topic) = request.topic.as_deref() else {
                conn.send_text(error(id, "bad_request", "topic is missing"));
                return None;
            };
            if let Err(why) = check_topic(topic) {
                conn.send_text(error(id, "bad_request", why));
                return None;
            }
            match request.kind.as_ref() {
                "subscribe" => {
                    if let Err(refused) = access.check(Action::Subscribe, topic) {
                        Err(refused)
                    } else if conn.subscriptions() >= limits.max_subscriptions {
                        Err(("too_many_subscriptions", "subscription limit reached"))
                    } else {
                        conn.subscribe(topic);
                        if request.binary {
                            binary_topics.0.insert(conn_key(conn), topic.into());
                        }
                        // With a bus, the ack also promises what other
                        // nodes publish from then on: it waits for this
                        // node's subscription in Redis, if it is new.
                        if let (Some(bus), Some(id)) = (bus, id) {
                            if bus.defer_ack(topic, conn.handle(), ack(id)) {
                                return None;
                            }
                        }
                        Ok(())
                    }
                }
                "unsubscribe" => {
                    conn.unsubscribe(topic);
                    Ok(())
                }
                _ => match request.data {
                    Some(data) => access.check(Action::Publish, topic).map(|()| {
                        let text = message_text(topic, data.get());
                        publish(conn, bus, topic, Outbound::Text(&text));
                    }),
                    None => Err(("bad_request", "data is missing")),
                },
            }
        }
        other => {
            let message = format!("unknown request type {}", json_string(other));
            conn.send_text(error(id, "unknown_type", &message));
            return None;
        }
    };
    match (reply, id) {
        (Ok(()), Some(id)) => {
            conn.send_text(ack(id));
        }
        (Ok(()), None) => {}
        (Err((code, message)), id) => {
            conn.send_text(error(id, code, message));
        }
    }
    None
}

/// A binary frame: `[n][topic][payload]`, published in the delivered form.
/// `Err` is an error code and message, for a JSON error without an id.
pub fn on_binary<S>(
    conn: &mut Conn<'_, S>,
    data: &[u8],
    binary_topics: &BinaryTopics,
    access: Access<'_>,
    bus: Option<&mut WorkerBus>,
) -> Result<(), (&'static str, &'static str)> {
    let bad = |why| Err(("bad_request", why));
    if let Access::Unauthenticated = access {
        return Err(UNAUTHENTICATED);
    }
    let Some((&n, rest)) = data.split_first() else {
        return bad("empty binary frame: the first byte is the topic's length");
    };
    let n = n as usize;
    if n == 0 {
        let Some(topic) = binary_topics.0.get(&conn_key(conn)) else {
            return bad("no topic: subscribe with \"binary\":true first, or name one");
        };
        access.check(Action::Publish, topic)?;
        let frame = binary_frame(topic, rest);
        publish(conn, bus, topic, Outbound::Binary(&frame));
        return Ok(());
    }
    if rest.len() < n {
        return bad("binary frame shorter than its topic");
    }
    let Ok(topic) = std::str::from_utf8(&rest[..n]) else {
        return bad("topic is not UTF-8");
    };
    if let Err(why) = check_topic(topic) {
        return bad(why);
    }
    access.check(Action::Publish, topic)?;
    // Already in the delivered form.
    publish(conn, bus, topic, Outbound::Binary(data));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_integers_or_strings() {
        let ok = |s: &str| valid_id(&RawValue::from_string(s.into()).unwrap());
        assert!(ok("1") && ok("-7") && ok("\"a\"") && ok("18446744073709551615"));
        assert!(!ok("1.5") && !ok("null") && !ok("{}") && !ok("[1]") && !ok("true"));
    }

    #[test]
    fn topics_are_checked() {
        assert!(check_topic("news/eu").is_ok());
        assert!(check_topic(&"x".repeat(255)).is_ok());
        assert!(check_topic("").is_err());
        assert!(check_topic(&"x".repeat(256)).is_err());
        assert!(check_topic("a\nb").is_err());
    }

    #[test]
    fn messages_carry_data_verbatim_and_escape_topics() {
        assert_eq!(
            message_text("a\"b", r#"{"x": [1, 2]}"#),
            r#"{"type":"message","topic":"a\"b","data":{"x": [1, 2]}}"#
        );
        let e = error(None, "bad_request", "say \"hi\"");
        let v: serde_json::Value = serde_json::from_str(&e).unwrap();
        assert_eq!(v["message"], "say \"hi\"");
        assert_eq!(binary_frame("ab", b"xyz"), b"\x02abxyz");
    }
}
