//! The demo page (`GET /`) against the real `uringws` binary over real
//! sockets: its files and headers, 405 for other methods, and the paths
//! around it unchanged, the WebSocket echo on `/` included.

mod common;

use common::{Server, WAIT};
use futures_util::{SinkExt, StreamExt};
use std::{
    io::{Read, Write},
    net::TcpStream,
};
use tokio_tungstenite::tungstenite::Message;

/// Plain HTTP requests to the server.
trait Http {
    /// Sends `head` (the request line and headers; the blank line is
    /// added) and reads the response until the server closes.
    fn request(&self, head: &str) -> Response;

    fn get(&self, target: &str) -> Response {
        self.request(&format!("GET {target} HTTP/1.1"))
    }
}

impl Http for Server {
    fn request(&self, head: &str) -> Response {
        let mut stream = TcpStream::connect(self.addr).expect("connect");
        stream.set_read_timeout(Some(WAIT)).unwrap();
        write!(stream, "{head}\r\nHost: {}\r\n\r\n", self.addr).unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).expect("the server closes");
        Response::parse(&raw)
    }
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn parse(raw: &[u8]) -> Response {
        let end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a complete head");
        let head = std::str::from_utf8(&raw[..end]).expect("an ASCII head");
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .expect("a status line");
        let headers = lines
            .map(|l| {
                let (name, value) = l.split_once(':').expect("a header line");
                (name.to_ascii_lowercase(), value.trim().to_owned())
            })
            .collect();
        Response {
            status,
            headers,
            body: raw[end + 4..].to_vec(),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("UTF-8 body")
    }
}

#[test]
fn the_page_and_its_files_are_served_with_a_strict_policy() {
    let server = Server::start(&[]);
    let page = server.get("/");
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(page.header("cache-control"), Some("no-cache"));
    assert_eq!(
        page.header("content-length"),
        Some(page.body.len().to_string().as_str())
    );
    let csp = page.header("content-security-policy").expect("a CSP");
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} in {csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    assert!(page.text().starts_with("<!doctype html>"));

    // A query string (as a person might paste) changes nothing.
    assert_eq!(server.get("/?token=x").body, page.body);

    // Every file the page refers to is there, with its type and policy.
    for (path, content_type) in [
        ("/demo.js", "text/javascript; charset=utf-8"),
        ("/demo.css", "text/css; charset=utf-8"),
    ] {
        assert!(page.text().contains(&format!("\"{path}\"")), "{path}");
        let file = server.get(path);
        assert_eq!(file.status, 200, "{path}");
        assert_eq!(file.header("content-type"), Some(content_type), "{path}");
        assert_eq!(file.header("content-security-policy"), Some(csp));
        assert_eq!(file.header("cache-control"), Some("no-cache"));
        assert_eq!(file.header("x-content-type-options"), Some("nosniff"));
        assert!(!file.body.is_empty());
    }
}

#[test]
fn other_methods_are_refused_with_allow() {
    let server = Server::start(&[]);
    for head in [
        "HEAD / HTTP/1.1",
        "POST / HTTP/1.1\r\nContent-Length: 0",
        "PUT /demo.js HTTP/1.1\r\nContent-Length: 0",
        "DELETE /demo.css HTTP/1.1",
    ] {
        let response = server.request(head);
        assert_eq!(response.status, 405, "{head}");
        assert_eq!(response.header("allow"), Some("GET"), "{head}");
    }
}

#[test]
fn the_paths_around_the_page_keep_their_behaviour() {
    let server = Server::start(&[]);
    let health = server.get("/health");
    assert_eq!(health.status, 200);
    assert!(health.text().contains("\"status\":\"ok\""));
    for path in ["/index.html", "/demo", "/static/demo.js", "/echo", "/ws"] {
        assert_eq!(server.get(path).status, 404, "{path}");
    }
}

#[tokio::test]
async fn an_upgrade_on_the_root_is_still_the_echo() {
    let server = Server::start(&[]);
    let (mut ws, _) = tokio::time::timeout(
        WAIT,
        tokio_tungstenite::connect_async(format!("ws://{}/", server.addr)),
    )
    .await
    .expect("connect in time")
    .expect("handshake");
    for message in [Message::text("hello"), Message::binary(vec![0u8, 1, 255])] {
        ws.send(message.clone()).await.expect("send");
        let echoed = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("an echo in time")
            .expect("not ended")
            .expect("no error");
        assert_eq!(echoed, message);
    }
}
