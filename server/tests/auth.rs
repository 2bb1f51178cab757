//! Authentication, the Origin allow-list and the per-IP limits of the real
//! `uringws` binary (two workers) over real sockets: docs/protocol.md,
//! "Authentication", and server/README.md.

mod common;

use common::*;

use futures_util::StreamExt;
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::json;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest, http::HeaderMap, Message};

const SECRET: &str = "test-secret-test-secret-test-secret";

/// Required auth: JWTs, a token for everything, a reader of `news` and
/// `chat/*`, and a writer that reads `chat/*` and publishes to `news`.
const AUTH: &[&str] = &[
    "--auth-required",
    "--jwt-secret",
    SECRET,
    "--token",
    "demo:*|*",
    "--token",
    "reader:news,chat/*",
    "--token",
    "writer:chat/*|news",
    "--auth-timeout",
    "1",
];

/// A refused upgrade: status, headers, body.
#[derive(Debug)]
struct Refused {
    status: u16,
    headers: HeaderMap,
    body: String,
}

/// `target` is the path and query; `headers` are added to the request.
async fn try_connect(
    server: &Server,
    target: &str,
    headers: &[(&str, &str)],
) -> Result<(Ws, Option<String>), Refused> {
    let mut request = format!("ws://{}{target}", server.addr)
        .into_client_request()
        .unwrap();
    for (name, value) in headers {
        request.headers_mut().append(
            tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    let result = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
        .await
        .expect("handshake in time");
    match result {
        Ok((ws, response)) => {
            let protocol = response
                .headers()
                .get("Sec-WebSocket-Protocol")
                .map(|v| v.to_str().unwrap().to_owned());
            Ok((ws, protocol))
        }
        Err(tungstenite::Error::Http(response)) => Err(Refused {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                .into_owned(),
        }),
        Err(e) => panic!("handshake failed: {e}"),
    }
}

async fn connect(server: &Server, target: &str, headers: &[(&str, &str)]) -> Ws {
    match try_connect(server, target, headers).await {
        Ok((ws, _)) => ws,
        Err(refused) => panic!("refused: {refused:?}"),
    }
}

async fn refused(server: &Server, target: &str, headers: &[(&str, &str)]) -> Refused {
    match try_connect(server, target, headers).await {
        Ok(_) => panic!("{target} {headers:?} was accepted"),
        Err(refused) => refused,
    }
}

/// Subscribes and returns the reply's `type` and, for an error, its `code`.
async fn subscribe(ws: &mut Ws, topic: &str) -> String {
    let reply = request(ws, json!({"type":"subscribe","topic":topic,"id":topic})).await;
    assert_eq!(reply["id"], topic, "{reply}");
    match reply["type"].as_str() {
        Some("ack") => "ack".into(),
        Some("error") => reply["code"].as_str().unwrap().into(),
        _ => panic!("{reply}"),
    }
}

/// The close frame the server sends: code and reason.
async fn closed(ws: &mut Ws) -> (u16, String) {
    loop {
        let m = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("closed in time");
        match m {
            Some(Ok(Message::Close(Some(frame)))) => {
                return (frame.code.into(), frame.reason.to_string())
            }
            Some(Ok(Message::Close(None))) => return (1005, String::new()),
            Some(Ok(_)) => continue,
            other => panic!("no close frame: {other:?}"),
        }
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn jwt_with(secret: &str, exp: u64, topics: &[&str]) -> String {
    encode(
        &Header::default(),
        &json!({"sub":"t","exp":exp,"subscribe":topics}),
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn jwt(topics: &[&str]) -> String {
    jwt_with(SECRET, now() + 600, topics)
}

#[tokio::test]
async fn a_token_is_taken_from_the_query_a_cookie_or_the_subprotocol() {
    let server = Server::start(AUTH);
    // Query: a static token, then a JWT (percent-encoding undone).
    let mut ws = connect(&server, "/ws?x=1&token=reader", &[]).await;
    assert_eq!(subscribe(&mut ws, "news").await, "ack");
    assert_eq!(subscribe(&mut ws, "chat/eu").await, "ack");
    assert_eq!(subscribe(&mut ws, "secret").await, "forbidden");
    let token = jwt(&["jwt/*"]);
    let mut ws = connect(&server, &format!("/ws?token={token}"), &[]).await;
    assert_eq!(subscribe(&mut ws, "jwt/a").await, "ack");
    assert_eq!(subscribe(&mut ws, "news").await, "forbidden");
    let mut ws = connect(&server, "/ws?token=%64emo", &[]).await;
    assert_eq!(subscribe(&mut ws, "anything").await, "ack");

    // Cookie.
    let cookie = format!("theme=dark; uringws_token={token}");
    let mut ws = connect(&server, "/ws", &[("Cookie", &cookie)]).await;
    assert_eq!(subscribe(&mut ws, "jwt/b").await, "ack");
    assert_eq!(subscribe(&mut ws, "news").await, "forbidden");

    // Subprotocol: the server confirms uringws.v1, never the token entry.
    let offer = format!("uringws.v1, uringws.token.{token}");
    let (mut ws, protocol) = try_connect(&server, "/ws", &[("Sec-WebSocket-Protocol", &offer)])
        .await
        .unwrap();
    assert_eq!(protocol.as_deref(), Some("uringws.v1"));
    assert_eq!(subscribe(&mut ws, "jwt/c").await, "ack");
    assert_eq!(subscribe(&mut ws, "news").await, "forbidden");
    // Offered alone it could not work in a browser: refused, saying why.
    let alone = format!("uringws.token.{token}");
    let r = refused(&server, "/ws", &[("Sec-WebSocket-Protocol", &alone)]).await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("uringws.v1"), "{}", r.body);
}

#[tokio::test]
async fn a_token_is_taken_from_the_first_message() {
    let server = Server::start(AUTH);
    let (mut ws, protocol) =
        try_connect(&server, "/ws", &[("Sec-WebSocket-Protocol", "uringws.v1")])
            .await
            .unwrap();
    assert_eq!(protocol.as_deref(), Some("uringws.v1"));
    // Nothing but auth before auth.
    assert_eq!(subscribe(&mut ws, "news").await, "unauthenticated");
    let publish = json!({"type":"publish","topic":"news","data":1,"id":2});
    let e = request(&mut ws, publish).await;
    assert_eq!(
        (e["code"].as_str(), e["id"].as_i64()),
        (Some("unauthenticated"), Some(2))
    );
    send(&mut ws, Message::binary(b"\x04newsx".to_vec())).await;
    let e = next_json(&mut ws).await;
    assert_eq!(e["code"], "unauthenticated");
    assert_eq!(e.get("id"), None);

    let ack = request(&mut ws, json!({"type":"auth","token":"reader","id":"a"})).await;
    assert_eq!(ack, json!({"type":"ack","id":"a"}));
    assert_eq!(subscribe(&mut ws, "news").await, "ack");
    assert_eq!(subscribe(&mut ws, "secret").await, "forbidden");
    // Past the deadline it stays open: it authenticated.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(subscribe(&mut ws, "chat/x").await, "ack");
    // Once only.
    let e = request(&mut ws, json!({"type":"auth","token":"demo","id":3})).await;
    assert_eq!(e["code"], "bad_request");
    assert_eq!(subscribe(&mut ws, "secret").await, "forbidden");

    // A JWT too, without an id: no reply, and then it is in effect.
    let mut ws = connect(&server, "/ws", &[("Sec-WebSocket-Protocol", "uringws.v1")]).await;
    let auth = json!({"type":"auth","token":jwt(&["j"])});
    send(&mut ws, Message::text(auth.to_string())).await;
    assert_eq!(subscribe(&mut ws, "j").await, "ack");
    assert_eq!(subscribe(&mut ws, "news").await, "forbidden");
}

#[tokio::test]
async fn first_message_auth_closes_1008_past_the_deadline_or_on_a_bad_token() {
    let server = Server::start(AUTH);
    let offer = [("Sec-WebSocket-Protocol", "uringws.v1")];
    let started = Instant::now();
    let mut silent = connect(&server, "/ws", &offer).await;
    let mut bad = connect(&server, "/ws", &offer).await;
    let mut expired = connect(&server, "/ws", &offer).await;

    send(
        &mut bad,
        Message::text(json!({"type":"auth","token":"nope"}).to_string()),
    )
    .await;
    assert_eq!(closed(&mut bad).await, (1008, "unknown token".into()));
    let old = jwt_with(SECRET, now() - 3600, &["*"]);
    send(
        &mut expired,
        Message::text(json!({"type":"auth","token":old}).to_string()),
    )
    .await;
    assert_eq!(closed(&mut expired).await, (1008, "token expired".into()));

    let (code, reason) = closed(&mut silent).await;
    assert_eq!((code, reason.as_str()), (1008, "authentication timed out"));
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(900), "{waited:?}");
}

#[tokio::test]
async fn the_query_beats_the_cookie_which_beats_the_subprotocol() {
    let server = Server::start(AUTH);
    let cookie_jwt = jwt(&["from-cookie"]);
    let cookie = format!("uringws_token={cookie_jwt}");
    let offer = format!("uringws.v1, uringws.token.{}", jwt(&["from-protocol"]));
    let all = [
        ("Cookie", cookie.as_str()),
        ("Sec-WebSocket-Protocol", offer.as_str()),
    ];

    let mut ws = connect(&server, "/ws?token=reader", &all).await;
    assert_eq!(subscribe(&mut ws, "news").await, "ack");
    assert_eq!(subscribe(&mut ws, "from-cookie").await, "forbidden");
    assert_eq!(subscribe(&mut ws, "from-protocol").await, "forbidden");

    let mut ws = connect(&server, "/ws", &all).await;
    assert_eq!(subscribe(&mut ws, "from-cookie").await, "ack");
    assert_eq!(subscribe(&mut ws, "from-protocol").await, "forbidden");

    // The one that counts is checked, not a better one further down.
    let r = refused(&server, "/ws?token=wrong", &all).await;
    assert_eq!(r.status, 401);
    // With a token on the upgrade, an auth message cannot change it.
    let mut ws = connect(&server, "/ws?token=reader", &[]).await;
    let e = request(&mut ws, json!({"type":"auth","token":"demo","id":1})).await;
    assert_eq!(e["code"], "bad_request");
    assert_eq!(subscribe(&mut ws, "secret").await, "forbidden");
}

#[tokio::test]
async fn bad_or_missing_tokens_are_refused_401_saying_why() {
    let server = Server::start(AUTH);
    let expired = jwt_with(SECRET, now() - 3600, &["*"]);
    let forged = jwt_with("another-secret-another-secret-another", now() + 600, &["*"]);
    let cases = [
        (format!("/ws?token={expired}"), "token expired"),
        (format!("/ws?token={forged}"), "signature"),
        ("/ws?token=demo2".to_string(), "unknown token"),
        ("/ws?token=".to_string(), "unknown token"),
        ("/ws".to_string(), "a token is required"),
    ];
    for (target, why) in &cases {
        let r = refused(&server, target, &[]).await;
        assert_eq!(r.status, 401, "{target}");
        assert!(r.body.contains(why), "{target}: {}", r.body);
        if let Some(token) = target.split("token=").nth(1).filter(|t| !t.is_empty()) {
            assert!(!r.body.contains(token), "echoed: {}", r.body);
        }
        assert!(r.headers.contains_key("www-authenticate"), "{target}");
    }
    // In a cookie or the subprotocol alike.
    let cookie = format!("uringws_token={expired}");
    let r = refused(&server, "/ws", &[("Cookie", &cookie)]).await;
    assert_eq!(r.status, 401);
    let offer = format!("uringws.v1, uringws.token.{forged}");
    let r = refused(&server, "/ws", &[("Sec-WebSocket-Protocol", &offer)]).await;
    assert_eq!(r.status, 401);
    // The echo endpoint needs no token.
    connect(&server, "/echo", &[]).await;
}

#[tokio::test]
async fn without_auth_required_no_token_may_subscribe_to_anything_but_a_bad_one_is_refused() {
    let server = Server::start(&["--jwt-secret", SECRET, "--token", "reader:news"]);
    let mut ws = connect(&server, "/ws", &[]).await;
    assert_eq!(subscribe(&mut ws, "secret").await, "ack");
    let r = refused(&server, "/ws?token=wrong", &[]).await;
    assert_eq!(r.status, 401);
    let mut ws = connect(&server, "/ws?token=reader", &[]).await;
    assert_eq!(subscribe(&mut ws, "secret").await, "forbidden");
    // An auth first message still brings its token's grant...
    let mut ws = connect(&server, "/ws", &[]).await;
    let ack = request(&mut ws, json!({"type":"auth","token":"reader","id":1})).await;
    assert_eq!(ack["type"], "ack");
    assert_eq!(subscribe(&mut ws, "secret").await, "forbidden");
    // ...and a bad one closes the connection.
    let mut ws = connect(&server, "/ws", &[]).await;
    send(
        &mut ws,
        Message::text(json!({"type":"auth","token":"x"}).to_string()),
    )
    .await;
    assert_eq!(closed(&mut ws).await.0, 1008);
}

#[tokio::test]
async fn without_a_token_publishing_is_refused_unless_the_server_allows_it() {
    let publish = |id| json!({"type":"publish","topic":"news","data":id,"id":id});
    let server = Server::start(&[]);
    let mut ws = connect(&server, "/ws", &[]).await;
    assert_eq!(subscribe(&mut ws, "news").await, "ack");
    let e = request(&mut ws, publish(1)).await;
    assert_eq!(
        (e["code"].as_str(), e["id"].as_i64()),
        (Some("forbidden"), Some(1))
    );
    assert!(e["message"].as_str().unwrap().contains("token"), "{e}");
    send(&mut ws, Message::binary(b"\x04newsbin".to_vec())).await;
    assert_eq!(next_json(&mut ws).await["code"], "forbidden");
    // Still so after the first message (which could have been `auth`).
    let e = request(&mut ws, publish(2)).await;
    assert_eq!(e["code"], "forbidden");

    let server = Server::start(&["--anonymous-publish"]);
    let mut ws = connect(&server, "/ws", &[]).await;
    assert_eq!(subscribe(&mut ws, "news").await, "ack");
    assert_eq!(request(&mut ws, publish(3)).await["type"], "ack");
    assert_eq!(next_json(&mut ws).await["data"], 3);
}

#[tokio::test]
async fn publishing_needs_a_publish_grant_json_and_binary_and_the_connection_stays() {
    let server = Server::start(AUTH);
    let mut sub = connect(&server, "/ws?token=demo", &[]).await;
    assert_eq!(subscribe(&mut sub, "secret").await, "ack");
    assert_eq!(subscribe(&mut sub, "news").await, "ack");
    let mut reader = connect(&server, "/ws?token=writer", &[]).await;

    let e = request(
        &mut reader,
        json!({"type":"publish","topic":"secret","data":"leak","id":7}),
    )
    .await;
    assert_eq!(
        (e["code"].as_str(), e["id"].as_i64()),
        (Some("forbidden"), Some(7))
    );
    send(&mut reader, Message::binary(b"\x06secretleak".to_vec())).await;
    let e = next_json(&mut reader).await;
    assert_eq!(e["code"], "forbidden");
    assert_eq!(e.get("id"), None);

    // Allowed topics go through, on the same connection.
    let ack = request(
        &mut reader,
        json!({"type":"publish","topic":"news","data":1,"id":8}),
    )
    .await;
    assert_eq!(ack, json!({"type":"ack","id":8}));
    send(&mut reader, Message::binary(b"\x04newsbin".to_vec())).await;
    // The subscriber got none of the forbidden ones.
    assert_eq!(
        next_json(&mut sub).await,
        json!({"type":"message","topic":"news","data":1})
    );
    assert_eq!(next(&mut sub).await.into_data().as_ref(), b"\x04newsbin");
    assert_eq!(subscribe(&mut reader, "chat/1").await, "ack");
    // Granted to publish to, not to read.
    assert_eq!(subscribe(&mut reader, "news").await, "forbidden");

    // A token that grants subscribing only publishes nowhere, not even to
    // its own topics.
    let mut reader = connect(&server, "/ws?token=reader", &[]).await;
    assert_eq!(subscribe(&mut reader, "news").await, "ack");
    let e = request(
        &mut reader,
        json!({"type":"publish","topic":"news","data":2,"id":9}),
    )
    .await;
    assert_eq!(e["code"], "forbidden");
    assert!(e["message"].as_str().unwrap().contains("publishing"), "{e}");
}

#[tokio::test]
async fn origins_outside_the_list_are_refused_403() {
    let server = Server::start(&["--origin", "http://127.0.0.1:8080"]);
    let r = refused(&server, "/ws", &[("Origin", "http://evil.example")]).await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("Origin"), "{}", r.body);
    let r = refused(&server, "/echo", &[("Origin", "http://127.0.0.1:8081")]).await;
    assert_eq!(r.status, 403);
    connect(&server, "/ws", &[("Origin", "http://127.0.0.1:8080")]).await;
    connect(&server, "/echo", &[("Origin", "HTTP://127.0.0.1:8080")]).await;
    // Not a browser: allowed.
    connect(&server, "/ws", &[]).await;
}

#[tokio::test]
async fn by_default_only_pages_of_the_same_host_and_port_may_upgrade() {
    let server = Server::start(&[]);
    let own = format!("http://{}", server.addr);
    let other_port = format!("http://127.0.0.1:{}", server.addr.port() + 1);
    for (path, origin) in [
        ("/ws", "http://evil.example"),
        ("/echo", other_port.as_str()),
    ] {
        let r = refused(&server, path, &[("Origin", origin)]).await;
        assert_eq!(r.status, 403, "{origin} on {path}");
    }
    connect(&server, "/ws", &[("Origin", own.as_str())]).await;
    connect(&server, "/echo", &[("Origin", own.to_uppercase().as_str())]).await;
    connect(&server, "/ws", &[]).await;
}

#[tokio::test]
async fn a_star_lets_any_origin_upgrade() {
    let server = Server::start(&["--origin", "*"]);
    connect(&server, "/ws", &[("Origin", "http://evil.example")]).await;
}

#[tokio::test]
async fn connections_per_ip_are_limited_until_one_closes() {
    let server = Server::start(&["--max-connections-per-ip", "2"]);
    let mut a = connect(&server, "/ws", &[]).await;
    let b = connect(&server, "/echo", &[]).await;
    let r = refused(&server, "/ws", &[]).await;
    assert_eq!(r.status, 429);
    assert!(r.body.contains("connections"), "{}", r.body);

    // A clean close gives the place back by the time the close is answered.
    a.close(None).await.unwrap();
    while tokio::time::timeout(WAIT, a.next())
        .await
        .unwrap()
        .is_some()
    {}
    let c = connect(&server, "/ws", &[]).await;
    assert_eq!(refused(&server, "/ws", &[]).await.status, 429);

    // So does a dropped TCP connection, once the server notices.
    drop(b);
    let deadline = Instant::now() + WAIT;
    loop {
        match try_connect(&server, "/echo", &[]).await {
            Ok(_) => break,
            Err(r) if r.status == 429 && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(r) => panic!("{r:?}"),
        }
    }
    drop(c);
}

#[tokio::test]
async fn handshakes_per_ip_are_rate_limited_with_retry_after() {
    // One handshake per 5 s, burst 1: the second in a row is refused.
    let server = Server::start(&["--handshakes-per-ip-per-second", "0.2"]);
    let _ws = connect(&server, "/ws", &[]).await;
    let r = refused(&server, "/ws", &[]).await;
    assert_eq!(r.status, 429);
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=5).contains(&retry), "{retry}");
    assert!(r.body.contains("handshakes"), "{}", r.body);
}
