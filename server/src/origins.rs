//! The `Origin` allow-list of WebSocket upgrades: a browser sends the
//! origin of the page that opens a WebSocket, and cookies go along, so
//! without this check any site's page could act with a visitor's cookie
//! (cross-site WebSocket hijacking).

/// Allowed origins, as `scheme://host[:port]`, lowercase, without the
/// scheme's default port (browsers leave it out). Empty: any origin.
#[derive(Debug, Clone, Default)]
pub struct Origins(Box<[Box<str>]>);

impl Origins {
    pub fn new(list: &[String]) -> Result<Origins, String> {
        list.iter()
            .map(|o| normalize(o).map(Into::into))
            .collect::<Result<Vec<_>, _>>()
            .map(|v| Origins(v.into()))
    }

    /// A request without `Origin` comes from a client that is not a
    /// browser (browsers always send it on a WebSocket): it carries no
    /// visitor's cookies, so it is allowed; tokens, not this list, keep
    /// such clients out.
    pub fn allows(&self, origin: Option<&[u8]>) -> bool {
        match origin {
            _ if self.0.is_empty() => true,
            None => true,
            Some(origin) => {
                let origin = origin.trim_ascii();
                self.0
                    .iter()
                    .any(|o| o.as_bytes().eq_ignore_ascii_case(origin))
            }
        }
    }
}

fn normalize(origin: &str) -> Result<String, String> {
    let bad = |why: &str| Err(format!("origins: {origin:?} {why}"));
    let lower = origin.trim().to_ascii_lowercase();
    let Some((scheme, authority)) = lower.split_once("://") else {
        return bad("is not scheme://host[:port]");
    };
    if scheme.is_empty() || authority.is_empty() {
        return bad("is not scheme://host[:port]");
    }
    if authority.contains(['/', '?', '#', '@', ' ']) {
        return bad("has more than scheme://host[:port] (an Origin has no path)");
    }
    let default_port = match scheme {
        "http" | "ws" => Some(":80"),
        "https" | "wss" => Some(":443"),
        _ => None,
    };
    let authority = default_port
        .and_then(|port| authority.strip_suffix(port))
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
    fn exact_but_case_insensitive_and_without_default_ports() {
        let o = origins(&["http://127.0.0.1:8080", "HTTPS://Example.com:443"]);
        assert!(o.allows(Some(b"http://127.0.0.1:8080")));
        assert!(o.allows(Some(b"https://example.COM")));
        assert!(!o.allows(Some(b"http://127.0.0.1:8081")));
        assert!(!o.allows(Some(b"http://example.com")));
        assert!(!o.allows(Some(b"https://example.com.evil.net")));
        assert!(!o.allows(Some(b"null")));
        assert!(o.allows(None), "non-browser clients send no Origin");
        assert!(origins(&[]).allows(Some(b"http://anything")));
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
