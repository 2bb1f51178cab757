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

/// Topic patterns: exact names, prefixes (a pattern ending in `*`), or all
/// (`*`). Only a trailing `*` is a wildcard. Sorted slices rather than
/// hash sets: a JWT's grant lives as long as its connection, and a set
/// would cost a hasher and a table on top of the names.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Topics {
    all: bool,
    exact: Box<[Box<str>]>,
    prefixes: Box<[Box<str>]>,
}

impl Topics {
    pub fn new<'a>(patterns: impl IntoIterator<Item = &'a str>) -> Topics {
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
        Topics {
            all,
            exact: exact.into(),
            prefixes: prefixes.into(),
        }
    }

    pub fn allows(&self, topic: &str) -> bool {
        self.all
            || self.exact.binary_search_by(|e| (**e).cmp(topic)).is_ok()
            || self.prefixes.iter().any(|p| topic.starts_with(&**p))
    }
}

/// What a client may do with a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Subscribe,
    Publish,
}

/// What a token allows: subscribing and publishing are granted apart, so a
/// reader's token cannot be used to write (Centrifugo's rule).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Grant {
    pub subscribe: Topics,
    pub publish: Topics,
}

impl Grant {
    /// Everything, both ways: such connections need no side table.
    pub fn is_all(&self) -> bool {
        self.subscribe.all && self.publish.all
    }

    pub fn allows(&self, action: Action, topic: &str) -> bool {
        match action {
            Action::Subscribe => self.subscribe.allows(topic),
            Action::Publish => self.publish.allows(topic),
        }
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
            Refusal::Claims => "token needs a numeric exp and a subscribe or publish list of strings",
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

/// A `tokens` entry: `<token>:<subscribe patterns>[|<publish patterns>]`,
/// each list comma-separated, e.g. `writer:news,chat/*|chat/*`. The token
/// ends at the first `:`, so topic patterns may contain `:` but tokens may
/// not; without `|` the token grants no publishing.
pub fn parse_static(entry: &str) -> Result<StaticGrant<'_>, String> {
    let Some((token, grant)) = entry.split_once(':') else {
        return Err(
            "tokens: an entry is not <token>:<subscribe patterns>[|<publish patterns>]".into(),
        );
    };
    if token.is_empty() {
        return Err("tokens: an entry has an empty token".into());
    }
    let (subscribe, publish) = grant.split_once('|').unwrap_or((grant, ""));
    if publish.contains('|') {
        return Err("tokens: an entry has more than one | (subscribe|publish)".into());
    }
    let grant = StaticGrant {
        token,
        subscribe: patterns(subscribe)?,
        publish: patterns(publish)?,
    };
    if grant.subscribe.is_empty() && grant.publish.is_empty() {
        return Err("tokens: an entry grants no topic".into());
    }
    Ok(grant)
}

/// A comma-separated list of topic patterns, possibly empty.
fn patterns(list: &str) -> Result<Vec<&str>, String> {
    let patterns: Vec<&str> = match list.trim() {
        "" => Vec::new(),
        list => list.split(',').map(str::trim).collect(),
    };
    if patterns.iter().any(|p| p.is_empty()) {
        return Err("tokens: an entry has an empty topic pattern".into());
    }
    Ok(patterns)
}

/// A parsed `tokens` entry.
#[derive(Debug, PartialEq, Eq)]
pub struct StaticGrant<'a> {
    pub token: &'a str,
    pub subscribe: Vec<&'a str>,
    pub publish: Vec<&'a str>,
}

/// A JWT's grant: `subscribe` and `publish` topic patterns; a token needs
/// at least one of them.
#[derive(Deserialize)]
struct Claims {
    subscribe: Option<Vec<String>>,
    publish: Option<Vec<String>>,
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
            let entry = parse_static(entry)?;
            statics.push((
                entry.token.as_bytes().into(),
                Arc::new(Grant {
                    subscribe: Topics::new(entry.subscribe),
                    publish: Topics::new(entry.publish),
                }),
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
        let claims = jsonwebtoken::decode::<Claims>(token, key, validation)
            .map_err(|e| Refusal::from(&e))?
            .claims;
        if claims.subscribe.is_none() && claims.publish.is_none() {
            return Err(Refusal::Claims);
        }
        let topics = |list: &Option<Vec<String>>| {
            Topics::new(
                list.iter()
                    .flatten()
                    .map(String::as_str)
                    .filter(|p| !p.is_empty()),
            )
        };
        Ok(Arc::new(Grant {
            subscribe: topics(&claims.subscribe),
            publish: topics(&claims.publish),
        }))
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
    fn topics_match_exact_names_prefixes_and_all() {
        let t = Topics::new(["news", "chat/*", "a*b", "m", "a", "z", "news"]);
        assert!(t.allows("m") && t.allows("a") && t.allows("z") && !t.allows("b"));
        assert!(t.allows("news") && t.allows("chat/") && t.allows("chat/eu"));
        assert!(!t.allows("news2") && !t.allows("chat") && !t.allows("axb"));
        assert!(t.allows("a*b"), "only a trailing * is a wildcard");
        assert!(Topics::new(["*"]).allows("anything"));
        assert!(!Topics::new([]).allows("x"));
    }

    #[test]
    fn subscribing_and_publishing_are_granted_apart() {
        let g = Grant {
            subscribe: Topics::new(["news", "chat/*"]),
            publish: Topics::new(["chat/*"]),
        };
        assert!(g.allows(Action::Subscribe, "news") && !g.allows(Action::Publish, "news"));
        assert!(g.allows(Action::Subscribe, "chat/1") && g.allows(Action::Publish, "chat/1"));
        assert!(!g.is_all());
        let read_all = Grant {
            subscribe: Topics::new(["*"]),
            publish: Topics::default(),
        };
        assert!(!read_all.is_all() && !read_all.allows(Action::Publish, "x"));
        let all = Grant {
            subscribe: Topics::new(["*"]),
            publish: Topics::new(["*"]),
        };
        assert!(all.is_all());
    }

    #[test]
    fn static_entries_split_at_the_first_colon_then_at_the_bar() {
        let grant = |token, subscribe: &[&'static str], publish: &[&'static str]| StaticGrant {
            token,
            subscribe: subscribe.to_vec(),
            publish: publish.to_vec(),
        };
        assert_eq!(
            parse_static("demo:*|*").unwrap(),
            grant("demo", &["*"], &["*"])
        );
        assert_eq!(
            parse_static("r:news, chat/*,user:1").unwrap(),
            grant("r", &["news", "chat/*", "user:1"], &[])
        );
        assert_eq!(
            parse_static("w:news|chat/*, user:2").unwrap(),
            grant("w", &["news"], &["chat/*", "user:2"])
        );
        assert_eq!(
            parse_static("p:|alerts").unwrap(),
            grant("p", &[], &["alerts"])
        );
        for bad in [
            "nocolon", ":news", "t:", "t:|", "t:a,,b", "t:a|b|c", "t:a|b,",
        ] {
            assert!(parse_static(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn static_tokens_then_jwts() {
        let auth = Auth::new(["demo:*|*", "reader:news"], Some("k"), None).unwrap();
        assert!(auth.verify("demo").unwrap().is_all());
        let reader = auth.verify("reader").unwrap();
        assert!(reader.allows(Action::Subscribe, "news"));
        assert!(!reader.allows(Action::Publish, "news"));
        assert_eq!(auth.verify("demo2").unwrap_err(), Refusal::Unknown);
        assert_eq!(auth.verify("").unwrap_err(), Refusal::Unknown);

        let ok = jwt(
            "k",
            json!({"exp": now() + 600, "subscribe": ["a", "b/*"], "publish": ["b/*"]}),
        );
        let g = auth.verify(&ok).unwrap();
        let sub = |t| g.allows(Action::Subscribe, t);
        assert!(sub("a") && sub("b/c") && !sub("c"));
        assert!(g.allows(Action::Publish, "b/c") && !g.allows(Action::Publish, "a"));
        let writer = jwt("k", json!({"exp": now() + 600, "publish": ["x"]}));
        let g = auth.verify(&writer).unwrap();
        assert!(g.allows(Action::Publish, "x") && !g.allows(Action::Subscribe, "x"));
        let cases = [
            (
                jwt("k", json!({"exp": now() - 3600, "subscribe": ["a"]})),
                Refusal::Expired,
            ),
            (
                jwt("other", json!({"exp": now() + 600, "subscribe": ["a"]})),
                Refusal::BadSignature,
            ),
            (jwt("k", json!({"subscribe": ["a"]})), Refusal::Claims),
            (jwt("k", json!({"exp": now() + 600})), Refusal::Claims),
            // The claim of an earlier format, which granted both ways.
            (
                jwt("k", json!({"exp": now() + 600, "topics": ["a"]})),
                Refusal::Claims,
            ),
            (
                jwt("k", json!({"exp": now() + 600, "subscribe": "a"})),
                Refusal::Claims,
            ),
            (
                jwt(
                    "k",
                    json!({"exp": now() + 600, "nbf": now() + 3600, "subscribe": []}),
                ),
                Refusal::NotYetValid,
            ),
            (
                jwt(
                    "k",
                    json!({"exp": now() + 600, "aud": "x", "subscribe": []}),
                ),
                Refusal::Audience,
            ),
            ("a.b.c".into(), Refusal::Malformed),
        ];
        for (token, want) in cases {
            assert_eq!(auth.verify(&token).unwrap_err(), want, "{token}");
        }
        let hs512 = encode(
            &Header::new(Algorithm::HS512),
            &json!({"exp": now() + 600, "subscribe": ["a"]}),
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
