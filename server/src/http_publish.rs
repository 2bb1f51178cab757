//! `POST /publish?topic=T`: a backend pushes to the browsers subscribed to
//! `T` (docs/protocol.md, "HTTP publish"), authenticated by the server's
//! publish key.

use crate::{
    auth::Auth,
    bus::WorkerBus,
    pubsub::{self, Outbound},
};
use uringws_engine::protocol::{handshake::Request, http::Response};
use uringws_engine::Publisher;

/// The answer says what became of the trip to the other nodes (`"bus"`:
/// `queued`, `down` or `full`) when there is a bus; this node's
/// subscribers have it either way.
pub fn publish(
    request: &Request<'_>,
    body: &[u8],
    auth: &Auth,
    publisher: &Publisher,
    bus: Option<&mut WorkerBus>,
) -> Response {
    if request.method() != "POST" {
        return Response::text(405, "use POST").header("Allow", "POST");
    }
    if !auth.publish_key_ok(request.header("authorization")) {
        return Response::text(
            401,
            "a valid Authorization: Bearer <publish key> is required",
        )
        .header("WWW-Authenticate", "Bearer realm=\"uringws-publish\"");
    }
    let topic = request
        .query()
        .and_then(|q| form_urlencoded::parse(q.as_bytes()).find(|(name, _)| name == "topic"))
        .map(|(_, topic)| topic.into_owned());
    let Some(topic) = topic else {
        return Response::text(400, "the topic query parameter is missing");
    };
    if let Err(why) = pubsub::check_topic(&topic) {
        return Response::text(400, why);
    }
    let content_type = request
        .header("content-type")
        .and_then(|v| std::str::from_utf8(v).ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    // The delivered form, in whichever is used.
    let (text, binary);
    let out = match content_type.as_deref() {
        Some("application/octet-stream") => {
            binary = pubsub::binary_frame(&topic, body);
            Outbound::Binary(&binary)
        }
        Some("application/json") => {
            let Ok(json) = std::str::from_utf8(body) else {
                return Response::text(400, "the JSON body is not UTF-8");
            };
            if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(json) {
                return Response::text(400, format!("the body is not JSON: {e}"));
            }
            text = pubsub::message_text(&topic, json.trim());
            Outbound::Text(&text)
        }
        _ => {
            let Ok(body_text) = std::str::from_utf8(body) else {
                return Response::text(
                    400,
                    "the body is not UTF-8 text; send binary as application/octet-stream",
                );
            };
            let data = serde_json::to_string(body_text).unwrap_or_default();
            text = pubsub::message_text(&topic, &data);
            Outbound::Text(&text)
        }
    };
    publisher.publish(&topic, &out.publication());
    let answer = match out.to_bus(&topic, bus) {
        Some(sent) => serde_json::json!({ "topic": topic, "bus": sent.name() }),
        None => serde_json::json!({ "topic": topic }),
    }
    .to_string();
    Response::bytes(202, "application/json", answer)
}
