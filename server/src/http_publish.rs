//! `POST /publish?topic=T`: a backend pushes to the browsers subscribed to
//! `T` (docs/protocol.md, "HTTP publish"), authenticated by the server's
//! publish key.

use crate::{auth::Auth, pubsub};
use bytes::Bytes;
use uringws_engine::protocol::handshake::{
    error_response, error_response_with_headers, http_response, Request,
};
use uringws_engine::{Publication, Publisher};

pub fn publish(request: &Request<'_>, body: &[u8], auth: &Auth, publisher: &Publisher) -> Bytes {
    if request.method() != "POST" {
        return error_response_with_headers(405, "use POST", &[("Allow", "POST")])
            .unwrap_or_else(|_| error_response(405, "use POST"));
    }
    if !auth.publish_key_ok(request.header("authorization")) {
        return error_response_with_headers(
            401,
            "a valid Authorization: Bearer <publish key> is required",
            &[("WWW-Authenticate", "Bearer realm=\"uringws-publish\"")],
        )
        .unwrap_or_else(|_| error_response(401, "unauthorized"));
    }
    let topic = request
        .query()
        .and_then(|q| form_urlencoded::parse(q.as_bytes()).find(|(name, _)| name == "topic"))
        .map(|(_, topic)| topic.into_owned());
    let Some(topic) = topic else {
        return error_response(400, "the topic query parameter is missing");
    };
    if let Err(why) = pubsub::check_topic(&topic) {
        return error_response(400, why);
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
    let publication = match content_type.as_deref() {
        Some("application/octet-stream") => {
            Publication::binary(&pubsub::binary_frame(&topic, body))
        }
        Some("application/json") => {
            let Ok(text) = std::str::from_utf8(body) else {
                return error_response(400, "the JSON body is not UTF-8");
            };
            if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
                return error_response(400, &format!("the body is not JSON: {e}"));
            }
            Publication::text(&pubsub::message_text(&topic, text.trim()))
        }
        _ => {
            let Ok(text) = std::str::from_utf8(body) else {
                return error_response(
                    400,
                    "the body is not UTF-8 text; send binary as application/octet-stream",
                );
            };
            let data = serde_json::to_string(text).unwrap_or_default();
            Publication::text(&pubsub::message_text(&topic, &data))
        }
    };
    publisher.publish(&topic, &publication);
    let answer = serde_json::json!({ "topic": topic }).to_string();
    http_response(202, "application/json", answer.as_bytes(), &[])
        .unwrap_or_else(|_| error_response(500, "publish"))
}
