//! The demo page on `GET /`: a person can connect to `/ws`, subscribe,
//! publish and watch messages arrive. Plain files compiled into the binary,
//! so the server needs nothing beside it and there is no build step.
//!
//! The script and the style sheet are files of their own rather than
//! inline, so the Content-Security-Policy can forbid every inline script
//! and style (`'self'` only) without hashes that would have to be kept in
//! step with each edit of the page.

use uringws_engine::protocol::{handshake::Request, http::Response};

const PAGE: &str = include_str!("../static/index.html");
const SCRIPT: &str = include_str!("../static/demo.js");
const STYLE: &str = include_str!("../static/demo.css");

/// `'self'` in `connect-src` also admits `ws:`/`wss:` to the page's own
/// host and port (CSP Level 3), which is all the page talks to: `/ws` and
/// `/health`. Nothing may frame the page, take it elsewhere or post a form.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

const HEADERS: &[(&str, &str)] = &[
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    // The files change with the binary, not with time: revalidate each
    // load so an upgraded server never runs an old script.
    ("Cache-Control", "no-cache"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
];

fn ok(content_type: &'static str, body: &'static str) -> Response {
    HEADERS.iter().fold(
        Response::bytes(200, content_type, body.as_bytes()),
        |response, &(name, value)| response.header(name, value),
    )
}

/// The answer to a plain HTTP request for one of the page's files, or
/// `None` when the path is not one of them.
pub fn respond(request: &Request<'_>) -> Option<Response> {
    let (content_type, body) = match request.path() {
        "/" => ("text/html; charset=utf-8", PAGE),
        "/demo.js" => ("text/javascript; charset=utf-8", SCRIPT),
        "/demo.css" => ("text/css; charset=utf-8", STYLE),
        _ => return None,
    };
    // HEAD too: a 405 is simpler than a HEAD answer without a body, and no
    // client of a demo page needs one. The 405 carries `Allow: GET`.
    if request.method() != "GET" {
        return Some(Response::text(405, "use GET"));
    }
    Some(ok(content_type, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The inline things the policy would block, so the page would break
    /// in a browser without any Rust test noticing.
    #[test]
    fn the_page_has_nothing_inline_that_the_policy_blocks() {
        assert!(!PAGE.contains("<style"), "inline <style>");
        assert!(!PAGE.contains("style="), "style attribute");
        for (i, _) in PAGE.match_indices("<script") {
            let tag = &PAGE[i..i + PAGE[i..].find('>').expect("a closed tag")];
            assert!(tag.contains(" src="), "inline script: {tag}");
        }
        let lower = PAGE.to_ascii_lowercase();
        for (i, _) in lower.match_indices(" on") {
            let name: String = lower[i + 1..]
                .chars()
                .take_while(|c| c.is_ascii_alphabetic())
                .collect();
            assert!(
                !lower[i + 1 + name.len()..].starts_with('='),
                "event handler attribute {name}"
            );
        }
        assert!(PAGE.contains(r#"src="/demo.js""#));
        assert!(PAGE.contains(r#"href="/demo.css""#));
        // Text from the network goes in with textContent, never as markup.
        assert!(!SCRIPT.contains("innerHTML"));
        assert!(!SCRIPT.contains("eval("));
    }

    /// The headers are constants: a bad one would turn every answer into
    /// a 500.
    #[test]
    fn responses_are_sendable() {
        for (content_type, body) in [("text/html", PAGE), ("text/css", STYLE)] {
            let response = ok(content_type, body);
            assert_eq!(response.check(), Ok(()));
            assert!(response.encode().starts_with(b"HTTP/1.1 200 OK\r\n"));
        }
    }
}
