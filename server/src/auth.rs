//! Who may use `/ws`, and for which topics: tokens (a static list or HS256
//! JWTs), where an upgrade request carries one, and the [`Grant`] a token
//! gives. Tokens are secrets: nothing here logs or echoes them.

use jsonwebtoken::{errors::ErrorKind, Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use std::{borrow::Cow, sync::Arc};
use subtle::ConstantTimeEq;
use uringws_engine::protocol::handshake::Upgrade;

/// The query parameter, cookie and subprotocol prefix that carry a token.
pub const QUERY_PARAM: &str = "token";
pub const COOKIE: &str = "uringws_token";
pub const PROTOCOL_PREFIX: &str = "uringws.token.";

/// The topics a token allows: exact names, prefixes (a pattern ending in
/// `*`), or all (`*`). Only a trailing `*` is a wildcard. Sorted slices
/// rather than hash sets: a JWT's grant lives as long as its connection,
/// and a set would cost a hasher and a table on top of the names.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Grant {
    all: bool,
    exact: Box<[Box<str>]>,
    prefixes: Box<[Box<str>]>,
}

impl Grant {
    pub fn new<'a>(patterns: impl IntoIterator<Item = &'a str>) -> Grant {
        let (mut all, mut exact, mut prefixes) = (false, Vec::new(), Vec::new());
        for pattern in patterns {
            match pattern.strip_suffix('*') {
                Some("") => all = true,
                Some(prefix) => prefixes.push(Box::from(prefix)),
                None => exact.push(Box::from(pattern)),
            }
        }
        exact.sort_unstable();
        exact.dedup();
        Grant {
            all,
            exact: exact.into(),
            prefixes: prefixes.into(),
        }
    }

    pub fn is_all(&self) -> bool {
        self.all
    }

    pub fn allows(&self, topic: &str) -> bool {
        self.all
            || self.exact.binary_search_by(|e| (**e).cmp(topic)).is_ok()
            || self.prefixes.iter().any(|p| topic.starts_with(&**p))
    }
}

/// Why a token was refused; the text goes to the client (HTTP body or
/// close reason), so it never includes the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Missing,
    /// Neither static tokens nor a JWT key are configured.
    NoTokens,
    Unknown,
    Malformed,
    BadSignature,
    WrongAlgorithm,
    Expired,
    NotYetValid,
    Audience,
    Claims,
}

impl Refusal {
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Missing => "a token is required: ?token=, the uringws_token cookie, a uringws.token.<token> subprotocol beside uringws.v1, or (offering uringws.v1) an auth message",
            Refusal::NoTokens => "this server accepts no tokens",
            Refusal::Unknown => "unknown token",
            Refusal::Malformed => "token is not a valid JWT",
            Refusal::BadSignature => "token signature does not verify",
            Refusal::WrongAlgorithm => "token is not signed with HS256",
            Refusal::Expired => "token expired",
            Refusal::NotYetValid => "token not valid yet (nbf)",
            Refusal::Audience => "token is meant for another audience (aud)",
            Refusal::Claims => "token needs a numeric exp and a topics list of strings",
        }
    }
}

impl From<&jsonwebtoken::errors::Error> for Refusal {
    fn from(e: &jsonwebtoken::errors::Error) -> Self {
        match e.kind() {
            ErrorKind::InvalidSignature => Refusal::BadSignature,
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                Refusal::WrongAlgorithm
            }
            ErrorKind::ExpiredSignature => Refusal::Expired,
            ErrorKind::ImmatureSignature => Refusal::NotYetValid,
            ErrorKind::InvalidAudience => Refusal::Audience,
            ErrorKind::MissingRequiredClaim(_)
            | ErrorKind::InvalidClaimFormat(_)
            | ErrorKind::Json(_) => Refusal::Claims,
            _ => Refusal::Malformed,
        }
    }
}

/// A `tokens` entry, `<token>:<patterns, comma-separated>`. The token ends
/// at the first `:`, so topic patterns may contain `:` but tokens may not.
pub fn parse_static(entry: &str) -> Result<(&str, Vec<&str>), String> {
    let Some((token, patterns)) = entry.split_once(':') else {
        return Err("tokens: an entry is not <token>:<topic patterns>".into());
    };
    if token.is_empty() {
        return Err("tokens: an entry has an empty token".into());
    }
    let patterns: Vec<&str> = patterns.split(',').map(str::trim).collect();
    if patterns.iter().any(|p| p.is_empty()) {
        return Err("tokens: an entry has an empty topic pattern".into());
    }
    Ok((token, patterns))
}

#[derive(Deserialize)]
struct Claims {
    topics: Vec<String>,
}

/// The server's token checks, shared read-only by every worker.
pub struct Auth {
    statics: Vec<(Box<[u8]>, Arc<Grant>)>,
    jwt: Option<(DecodingKey, Validation)>,
    publish_key: Option<Box<[u8]>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("static_tokens", &self.statics.len())
            .field("jwt", &self.jwt.is_some())
            .field("publish_key", &self.publish_key.is_some())
            .finish()
    }
}

impl Auth {
    /// From checked configuration entries (see [`parse_static`]).
    pub fn new<'a>(
        tokens: impl IntoIterator<Item = &'a str>,
        jwt_secret: Option<&str>,
        publish_key: Option<&str>,
    ) -> Result<Auth, String> {
        let mut statics = Vec::new();
        for entry in tokens {
            let (token, patterns) = parse_static(entry)?;
            statics.push((
                token.as_bytes().into(),
                Arc::new(Grant::new(patterns.iter().copied())),
            ));
        }
        let jwt = jwt_secret.map(|secret| {
            let mut validation = Validation::new(Algorithm::HS256);
            // `exp` is required (the default); `nbf` is checked when present.
            validation.validate_nbf = true;
            (DecodingKey::from_secret(secret.as_bytes()), validation)
        });
        Ok(Auth {
            statics,
            jwt,
            publish_key: publish_key.map(|k| k.as_bytes().into()),
        })
    }

    /// The grant of `token`: a static token, else an HS256 JWT.
    pub fn verify(&self, token: &str) -> Result<Arc<Grant>, Refusal> {
        // Every entry is compared, so the time taken does not tell which
        // one (or how many) matched.
        let mut found = None;
        for (known, grant) in &self.statics {
            if bool::from(known.ct_eq(token.as_bytes())) && found.is_none() {
                found = Some(grant);
            }
        }
        if let Some(grant) = found {
            return Ok(grant.clone());
        }
        let Some((key, validation)) = &self.jwt else {
            return Err(if self.statics.is_empty() {
                Refusal::NoTokens
            } else {
                Refusal::Unknown
            });
        };
        if token.bytes().filter(|&b| b == b'.').count() != 2 {
            return Err(if self.statics.is_empty() {
                Refusal::Malformed
            } else {
                Refusal::Unknown
            });
        }
        let data = jsonwebtoken::decode::<Claims>(token, key, validation)
            .map_err(|e| Refusal::from(&e))?;
        Ok(Arc::new(Grant::new(
            data.claims
                .topics
                .iter()
                .map(String::as_str)
                .filter(|p| !p.is_empty()),
        )))
    }

    /// Whether an HTTP `Authorization` header carries the publish key as
    /// `Bearer <key>`. Without a configured key nothing is accepted: HTTP
    /// publishing is off.
    pub fn publish_key_ok(&self, authorization_header: Option<&[u8]>) -> bool {
        let (Some(key), Some(header)) = (&self.publish_key, authorization_header) else {
            return false;
        };
        let header = header.trim_ascii();
        let Some(scheme) = header.get(..7) else {
            return false;
        };
        if !scheme.eq_ignore_ascii_case(b"bearer ") {
            return false;
        }
        bool::from(header[7..].trim_ascii_start().ct_eq(key))
    }
}

/// Where an upgrade request carries a token, in order of precedence: the
/// `token` query parameter, the `uringws_token` cookie, a
/// `uringws.token.<token>` subprotocol. `Err` for a request that offers a
/// token subprotocol without `uringws.v1`, which a browser could not use:
/// it needs the server to confirm an offered protocol, and the token entry
/// is never confirmed.
pub fn upgrade_token<'a>(
    upgrade: &Upgrade<'a>,
    protocol: &str,
) -> Result<Option<Cow<'a, str>>, &'static str> {
    let request = upgrade.request();
    let mut from_protocol = None;
    let mut offers_protocol = false;
    for p in upgrade.protocols() {
        if p == protocol {
            offers_protocol = true;
        } else if let Some(token) = p.strip_prefix(PROTOCOL_PREFIX) {
            from_protocol.get_or_insert(token);
        }
    }
    if from_protocol.is_some() && !offers_protocol {
        return Err("a uringws.token.<token> subprotocol must be offered beside uringws.v1");
    }
    if let Some(query) = request.query() {
        if let Some((_, token)) =
            form_urlencoded::parse(query.as_bytes()).find(|(name, _)| name == QUERY_PARAM)
        {
            return Ok(Some(token));
        }
    }
    for header in request.header_values("cookie") {
        if let Some(value) = cookie(header, COOKIE) {
            return Ok(Some(String::from_utf8_lossy(value)));
        }
    }
    Ok(from_protocol.map(Cow::Borrowed))
}

/// The value of cookie `name` in a `Cookie` header (RFC 6265 5.4: pairs
/// separated by `;`), without the optional double quotes.
fn cookie<'a>(header: &'a [u8], name: &str) -> Option<&'a [u8]> {
    header.split(|&b| b == b';').find_map(|pair| {
        let pair = pair.trim_ascii();
        let eq = pair.iter().position(|&b| b == b'=')?;
        let (n, v) = (&pair[..eq], &pair[eq + 1..]);
        if n.trim_ascii() != name.as_bytes() {
            return None;
        }
        let v = v.trim_ascii();
        Some(
            v.strip_prefix(b"\"")
                .and_then(|v| v.strip_suffix(b"\""))
                .unwrap_or(v),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;
    use uringws_engine::protocol::handshake::Request;

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn jwt(secret: &str, claims: serde_json::Value) -> String {
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    #[test]
    fn grants_match_exact_names_prefixes_and_all() {
        let g = Grant::new(["news", "chat/*", "a*b", "m", "a", "z", "news"]);
        assert!(g.allows("m") && g.allows("a") && g.allows("z") && !g.allows("b"));
        assert!(g.allows("news") && g.allows("chat/") && g.allows("chat/eu"));
        assert!(!g.allows("news2") && !g.allows("chat") && !g.allows("axb"));
        assert!(g.allows("a*b"), "only a trailing * is a wildcard");
        assert!(!g.is_all());
        let all = Grant::new(["*"]);
        assert!(all.is_all() && all.allows("anything"));
        assert!(!Grant::new([]).allows("x"));
    }

    #[test]
    fn static_entries_split_at_the_first_colon() {
        assert_eq!(parse_static("demo:*").unwrap(), ("demo", vec!["*"]));
        assert_eq!(
            parse_static("r:news, chat/*,user:1").unwrap(),
            ("r", vec!["news", "chat/*", "user:1"])
        );
        for bad in ["nocolon", ":news", "t:", "t:a,,b"] {
            assert!(parse_static(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn static_tokens_then_jwts() {
        let auth = Auth::new(["demo:*", "reader:news"], Some("k"), None).unwrap();
        assert!(auth.verify("demo").unwrap().is_all());
        assert!(auth.verify("reader").unwrap().allows("news"));
        assert_eq!(auth.verify("demo2").unwrap_err(), Refusal::Unknown);
        assert_eq!(auth.verify("").unwrap_err(), Refusal::Unknown);

        let ok = jwt("k", json!({"exp": now() + 600, "topics": ["a", "b/*"]}));
        let g = auth.verify(&ok).unwrap();
        assert!(g.allows("a") && g.allows("b/c") && !g.allows("c"));
        let cases = [
            (
                jwt("k", json!({"exp": now() - 3600, "topics": ["a"]})),
                Refusal::Expired,
            ),
            (
                jwt("other", json!({"exp": now() + 600, "topics": ["a"]})),
                Refusal::BadSignature,
            ),
            (jwt("k", json!({"topics": ["a"]})), Refusal::Claims),
            (jwt("k", json!({"exp": now() + 600})), Refusal::Claims),
            (
                jwt("k", json!({"exp": now() + 600, "topics": "a"})),
                Refusal::Claims,
            ),
            (
                jwt(
                    "k",
                    json!({"exp": now() + 600, "nbf": now() + 3600, "topics": []}),
                ),
                Refusal::NotYetValid,
            ),
            (
                jwt("k", json!({"exp": now() + 600, "aud": "x", "topics": []})),
                Refusal::Audience,
            ),
            ("a.b.c".into(), Refusal::Malformed),
        ];
        for (token, want) in cases {
            assert_eq!(auth.verify(&token).unwrap_err(), want, "{token}");
        }
        let hs512 = encode(
            &Header::new(Algorithm::HS512),
            &json!({"exp": now() + 600, "topics": ["a"]}),
            &EncodingKey::from_secret(b"k"),
        )
        .unwrap();
        assert_eq!(auth.verify(&hs512).unwrap_err(), Refusal::WrongAlgorithm);

        let static_only = Auth::new(["demo:*"], None, None).unwrap();
        assert_eq!(static_only.verify(&ok).unwrap_err(), Refusal::Unknown);
        let none = Auth::new([], None, None).unwrap();
        assert_eq!(none.verify("demo").unwrap_err(), Refusal::NoTokens);
    }

    #[test]
    fn the_publish_key_is_a_bearer_token() {
        let auth = Auth::new([], None, Some("s3cret")).unwrap();
        assert!(auth.publish_key_ok(Some(b"Bearer s3cret")));
        assert!(auth.publish_key_ok(Some(b"bearer   s3cret ")));
        for bad in [
            &b"Bearer s3cre"[..],
            b"Bearer s3cretx",
            b"Basic s3cret",
            b"s3cret",
            b"Bearer",
            b"",
        ] {
            assert!(!auth.publish_key_ok(Some(bad)), "{bad:?}");
        }
        assert!(!auth.publish_key_ok(None));
        let off = Auth::new([], None, None).unwrap();
        assert!(!off.publish_key_ok(Some(b"Bearer ")));
        assert!(!off.publish_key_ok(Some(b"Bearer s3cret")));
    }

    fn token_of(head: &str) -> Result<Option<String>, &'static str> {
        let head = format!(
            "GET {head}\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        let request = Request::parse(head.as_bytes(), 8192).unwrap().unwrap();
        let upgrade = request.upgrade().unwrap();
        upgrade_token(&upgrade, "uringws.v1").map(|t| t.map(Cow::into_owned))
    }

    #[test]
    fn tokens_come_from_query_then_cookie_then_subprotocol() {
        let all = "/ws?a=1&token=q%2Bq+x HTTP/1.1\r\nCookie: x=1; uringws_token=c\r\n\
                   Sec-WebSocket-Protocol: uringws.v1, uringws.token.p";
        assert_eq!(token_of(all).unwrap().as_deref(), Some("q+q x"));
        let cookie = "/ws HTTP/1.1\r\nCookie: x=1\r\nCookie: uringws_token=\"c\"\r\n\
                      Sec-WebSocket-Protocol: uringws.v1, uringws.token.p";
        assert_eq!(token_of(cookie).unwrap().as_deref(), Some("c"));
        let protocol = "/ws?x=1 HTTP/1.1\r\nCookie: uringws_tokenx=c\r\n\
                        Sec-WebSocket-Protocol: uringws.token.p\r\nSec-WebSocket-Protocol: uringws.v1";
        assert_eq!(token_of(protocol).unwrap().as_deref(), Some("p"));
        assert_eq!(token_of("/ws HTTP/1.1").unwrap(), None);
        assert_eq!(
            token_of("/ws?token= HTTP/1.1").unwrap().as_deref(),
            Some("")
        );
        let alone = "/ws HTTP/1.1\r\nSec-WebSocket-Protocol: uringws.token.p";
        assert!(token_of(alone).is_err());
    }
}
