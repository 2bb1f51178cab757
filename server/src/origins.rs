//! Which `Origin`s may open a WebSocket: a browser sends the origin of the
//! page that opens a WebSocket, and cookies go along, so without this check
//! any site's page could act with a visitor's cookie (cross-site WebSocket
//! hijacking). The default is same-origin, as gorilla/websocket's: a page
//! may connect to the host that served it.

/// The configured policy: same-origin unless `origins` says otherwise.
#[derive(Debug, Clone, Default)]
pub enum Origins {
    /// The Origin's host and port must be the request's `Host`.
    #[default]
    SameOrigin,
    /// `origins = ["*"]`: any page may connect.
    Any,
    /// Only these, as `scheme://host[:port]`, lowercase, without the
    /// scheme's default port (browsers leave it out).
    List(Box<[Box<str>]>),
}

impl Origins {
    pub fn new(list: &[String]) -> Result<Origins, String> {
        if list.iter().any(|o| o.trim() == "*") {
            return if list.len() == 1 {
                Ok(Origins::Any)
            } else {
                Err("origins: \"*\" (any origin) must be the only entry".into())
            };
        }
        if list.is_empty() {
            return Ok(Origins::SameOrigin);
        }
        list.iter()
            .map(|o| normalize(o).map(Into::into))
            .collect::<Result<Vec<_>, _>>()
            .map(|v| Origins::List(v.into()))
    }

    /// A request without `Origin` comes from a client that is not a
    /// browser (browsers always send it on a WebSocket): it carries no
    /// visitor's cookies, so it is allowed; tokens, not this list, keep
    /// such clients out. `host` is the request's `Host` header.
    pub fn allows(&self, origin: Option<&[u8]>, host: Option<&[u8]>) -> bool {
        let Some(origin) = origin.map(<[u8]>::trim_ascii) else {
            return true;
        };
        match self {
            Origins::Any => true,
            Origins::List(list) => list
                .iter()
                .any(|o| o.as_bytes().eq_ignore_ascii_case(origin)),
            Origins::SameOrigin => host.is_some_and(|host| same_origin(origin, host)),
        }
    }

    /// What the start-up log says.
    pub fn describe(&self) -> String {
        match self {
            Origins::SameOrigin => "same-origin".into(),
            Origins::Any => "any".into(),
            Origins::List(list) => list.join(","),
        }
    }
}

/// Whether `Origin: scheme://host[:port]` names the authority of `Host:
/// host[:port]`. Which port a `Host` without one means depends on how the
/// client reached us (plain, or TLS through a proxy), which only the
/// Origin's scheme tells: a page of `https://example.com` opening
/// `wss://example.com` sends `Host: example.com`.
fn same_origin(origin: &[u8], host: &[u8]) -> bool {
    let Ok(origin) = std::str::from_utf8(origin) else {
        return false;
    };
    let Ok(host) = std::str::from_utf8(host.trim_ascii()) else {
        return false;
    };
    let Some((scheme, authority)) = origin.split_once("://") else {
        // `null` (a sandboxed or file page) and anything else that is not
        // an origin.
        return false;
    };
    let Some(default) = default_port(&scheme.to_ascii_lowercase()) else {
        return false;
    };
    match (split_authority(authority), split_authority(host)) {
        (Some((oh, op)), Some((hh, hp))) => {
            oh.eq_ignore_ascii_case(hh) && op.unwrap_or(default) == hp.unwrap_or(default)
        }
        _ => false,
    }
}

fn default_port(scheme: &str) -> Option<&'static str> {
    match scheme {
        "http" | "ws" => Some("80"),
        "https" | "wss" => Some("443"),
        _ => None,
    }
}

/// `host[:port]`, with `[v6]` literals; None for anything with a path,
/// user info or an empty host.
fn split_authority(authority: &str) -> Option<(&str, Option<&str>)> {
    if authority.is_empty() || authority.contains(['/', '?', '#', '@', ' ']) {
        return None;
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(rest) => {
            let (v6, after) = rest.split_once(']')?;
            let port = match after {
                "" => None,
                _ => Some(after.strip_prefix(':')?),
            };
            (v6, port)
        }
        // More than one `:` outside brackets leaves a port that is not a
        // number, refused below.
        None => match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    (!host.is_empty() && port_ok).then_some((host, port))
}

fn normalize(origin: &str) -> Result<String, String> {
    let bad = |why: &str| Err(format!("origins: {origin:?} {why}"));
    let lower = origin.trim().to_ascii_lowercase();
    let Some((scheme, authority)) = lower.split_once("://") else {
        return bad("is not scheme://host[:port] (or \"*\" for any)");
    };
    if scheme.is_empty() || authority.is_empty() {
        return bad("is not scheme://host[:port] (or \"*\" for any)");
    }
    if authority.contains(['/', '?', '#', '@', ' ']) {
        return bad("has more than scheme://host[:port] (an Origin has no path)");
    }
    let authority = default_port(scheme)
        .and_then(|port| authority.strip_suffix(port)?.strip_suffix(':'))
        .unwrap_or(authority);
    Ok(format!("{scheme}://{authority}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origins(list: &[&str]) -> Origins {
        Origins::new(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn a_list_is_exact_but_case_insensitive_and_without_default_ports() {
        let o = origins(&["http://127.0.0.1:8080", "HTTPS://Example.com:443"]);
        let host = Some(&b"127.0.0.1:8080"[..]);
        assert!(o.allows(Some(b"http://127.0.0.1:8080"), host));
        assert!(o.allows(Some(b"https://example.COM"), host));
        assert!(!o.allows(Some(b"http://127.0.0.1:8081"), host));
        assert!(!o.allows(Some(b"http://example.com"), host));
        assert!(!o.allows(Some(b"https://example.com.evil.net"), host));
        assert!(!o.allows(Some(b"null"), host));
        assert!(o.allows(None, host), "non-browser clients send no Origin");
    }

    #[test]
    fn by_default_only_the_requests_own_host_and_port() {
        let o = origins(&[]);
        let yes = [
            ("http://127.0.0.1:9001", "127.0.0.1:9001"),
            ("HTTP://Example.COM", "example.com"),
            ("http://example.com", "example.com:80"),
            ("https://example.com", "example.com"),
            ("https://example.com:443", "example.com"),
            ("http://[::1]:9001", "[::1]:9001"),
            ("https://[::1]", "[::1]:443"),
        ];
        for (origin, host) in yes {
            assert!(
                o.allows(Some(origin.as_bytes()), Some(host.as_bytes())),
                "{origin} on {host}"
            );
        }
        let no = [
            ("http://evil.example", "127.0.0.1:9001"),
            ("http://127.0.0.1:9002", "127.0.0.1:9001"),
            ("http://127.0.0.1", "127.0.0.1:9001"),
            ("https://example.com", "example.com:80"),
            ("http://example.com.evil.net", "example.com"),
            ("http://example.com", "example.com.evil.net"),
            ("null", "example.com"),
            ("file://", "example.com"),
            ("ftp://example.com", "example.com"),
            ("http://user@example.com", "example.com"),
            ("http://example.com/path", "example.com"),
            ("http://[::1]:9001", "[::2]:9001"),
            ("http://[::1", "[::1"),
            ("http://example.com:", "example.com:"),
        ];
        for (origin, host) in no {
            assert!(
                !o.allows(Some(origin.as_bytes()), Some(host.as_bytes())),
                "{origin} on {host}"
            );
        }
        assert!(!o.allows(Some(b"http://example.com"), None));
        assert!(o.allows(None, Some(b"example.com")));
    }

    #[test]
    fn a_star_alone_allows_any() {
        let o = origins(&["*"]);
        assert!(o.allows(Some(b"http://evil.example"), Some(b"127.0.0.1:1")));
        assert!(Origins::new(&["*".into(), "http://a".into()]).is_err());
    }

    #[test]
    fn entries_must_be_origins() {
        for bad in [
            "example.com",
            "http://",
            "http://x/",
            "http://x/path",
            "://x",
        ] {
            assert!(Origins::new(&[bad.to_string()]).is_err(), "{bad}");
        }
    }
}
