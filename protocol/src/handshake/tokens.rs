//! Comma-separated header lists and the `Sec-WebSocket-Extensions` grammar
//! (RFC 6455 §9.1), parsed leniently: optional whitespace anywhere between
//! elements, empty elements skipped, values borrowed from the head.

/// `OWS` of RFC 9110: spaces and tabs.
fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Strips `OWS` from both ends.
pub(crate) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_ows(*first) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !is_ows(*last) {
            break;
        }
        s = rest;
    }
    s
}

fn trim_ows_str(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

/// The non-empty elements of a comma-separated list, trimmed. Lists in
/// `Connection`, `Upgrade` and `Sec-WebSocket-Protocol` hold tokens, which
/// cannot contain quotes, so a plain split is exact.
pub(crate) fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|e| !e.is_empty())
}

/// Whether a comma-separated list contains `token`, compared as HTTP
/// compares tokens: ASCII case-insensitively.
pub(crate) fn has_token(value: &[u8], token: &str) -> bool {
    list_elements(value).any(|e| e.eq_ignore_ascii_case(token.as_bytes()))
}

/// Splits at the first `sep` outside a quoted string. Extension parameter
/// values may be quoted, and a quoted comma or semicolon must not end the
/// offer or the parameter.
fn split_unquoted(s: &str, sep: u8) -> (&str, Option<&str>) {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, &b) in s.as_bytes().iter().enumerate() {
        if in_quotes {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_quotes = false;
            }
        } else if b == b'"' {
            in_quotes = true;
        } else if b == sep {
            // `sep` is ASCII, so `i` and `i + 1` are char boundaries.
            return (&s[..i], Some(&s[i + 1..]));
        }
    }
    (s, None)
}

/// The offers in one `Sec-WebSocket-Extensions` value (or in the server's
/// answer, which has the same grammar), in order.
///
/// ```
/// use uringws_protocol::handshake::parse_extensions;
///
/// let mut offers = parse_extensions("permessage-deflate; server_max_window_bits=\"10\", x-foo");
/// let deflate = offers.next().unwrap();
/// assert_eq!(deflate.name(), "permessage-deflate");
/// assert_eq!(deflate.params().collect::<Vec<_>>(), [("server_max_window_bits", Some("10"))]);
/// assert_eq!(offers.next().unwrap().name(), "x-foo");
/// assert!(offers.next().is_none());
/// ```
pub fn parse_extensions(value: &str) -> Extensions<'_> {
    Extensions { rest: Some(value) }
}

/// Iterator over the extension offers of a header value; see
/// [`parse_extensions`].
#[derive(Debug, Clone)]
pub struct Extensions<'a> {
    rest: Option<&'a str>,
}

impl<'a> Iterator for Extensions<'a> {
    type Item = Extension<'a>;

    fn next(&mut self) -> Option<Extension<'a>> {
        loop {
            let (offer, rest) = split_unquoted(self.rest?, b',');
            self.rest = rest;
            let (name, params) = split_unquoted(offer, b';');
            let name = trim_ows_str(name);
            // `a,,b` and stray `; x` carry nothing to negotiate.
            if !name.is_empty() {
                return Some(Extension {
                    name,
                    params: params.unwrap_or(""),
                });
            }
        }
    }
}

/// One extension offer (or agreed extension): a name and its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extension<'a> {
    name: &'a str,
    params: &'a str,
}

impl<'a> Extension<'a> {
    /// The extension token, e.g. `permessage-deflate`.
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// The parameters as `(name, value)`, values without their quotes.
    pub fn params(&self) -> ExtensionParams<'a> {
        ExtensionParams {
            rest: Some(self.params),
        }
    }

    /// The first parameter called `name` (ASCII case-insensitive):
    /// `None` if absent, `Some(None)` if present without a value.
    pub fn param(&self, name: &str) -> Option<Option<&'a str>> {
        self.params()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }
}

/// Iterator over an extension's parameters; see [`Extension::params`].
#[derive(Debug, Clone)]
pub struct ExtensionParams<'a> {
    rest: Option<&'a str>,
}

impl<'a> Iterator for ExtensionParams<'a> {
    type Item = (&'a str, Option<&'a str>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (param, rest) = split_unquoted(self.rest?, b';');
            self.rest = rest;
            let (name, value) = match param.split_once('=') {
                Some((name, value)) => (trim_ows_str(name), Some(unquote(trim_ows_str(value)))),
                None => (trim_ows_str(param), None),
            };
            if !name.is_empty() {
                return Some((name, value));
            }
        }
    }
}

/// Removes the quotes of a quoted-string. The unquoted value must be a token
/// (RFC 6455 §9.1), and tokens need no escapes, so backslashes are left as
/// they are rather than allocating to unescape.
fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    type Offer<'a> = (&'a str, Vec<(&'a str, Option<&'a str>)>);

    fn offers(value: &str) -> Vec<Offer<'_>> {
        parse_extensions(value)
            .map(|e| (e.name(), e.params().collect()))
            .collect()
    }

    #[test]
    fn trims_ows() {
        assert_eq!(trim_ows(b" \t a b \t"), b"a b");
        assert_eq!(trim_ows(b"   "), b"");
        assert_eq!(trim_ows(b""), b"");
    }

    #[test]
    fn token_lists() {
        assert!(has_token(b"keep-alive, Upgrade", "upgrade"));
        assert!(has_token(b"Upgrade", "upgrade"));
        assert!(has_token(b"  UPGRADE\t", "upgrade"));
        assert!(has_token(b",,keep-alive ,upgrade,", "upgrade"));
        assert!(!has_token(b"keep-alive", "upgrade"));
        assert!(!has_token(b"upgrades", "upgrade"));
        assert!(!has_token(b"", "upgrade"));
        assert_eq!(
            list_elements(b" a ,, b,c ").collect::<Vec<_>>(),
            [b"a", b"b", b"c"]
        );
    }

    #[test]
    fn rfc_7692_offers() {
        assert_eq!(
            offers(
                "permessage-deflate; client_max_window_bits, permessage-deflate; \
                 server_no_context_takeover; server_max_window_bits=\"10\""
            ),
            [
                ("permessage-deflate", vec![("client_max_window_bits", None)]),
                (
                    "permessage-deflate",
                    vec![
                        ("server_no_context_takeover", None),
                        ("server_max_window_bits", Some("10"))
                    ]
                ),
            ]
        );
    }

    #[test]
    fn lenient_whitespace_and_empties() {
        assert_eq!(
            offers(" , foo ;a = 1 ;; b\t;c=\"x\" ,bar,, ;orphan, baz;"),
            [
                ("foo", vec![("a", Some("1")), ("b", None), ("c", Some("x"))]),
                ("bar", vec![]),
                ("baz", vec![]),
            ]
        );
        assert!(offers("").is_empty());
        assert!(offers(" ,, ").is_empty());
    }

    #[test]
    fn quoted_separators_stay_in_the_value() {
        assert_eq!(
            offers("x; a=\"1,2;3\", y"),
            [("x", vec![("a", Some("1,2;3"))]), ("y", vec![])]
        );
        // An escaped quote does not close the string.
        assert_eq!(
            offers("x; a=\"1\\\",2\", y"),
            [("x", vec![("a", Some("1\\\",2"))]), ("y", vec![])]
        );
        // An unterminated quote swallows the rest rather than failing.
        assert_eq!(offers("x; a=\"1, y"), [("x", vec![("a", Some("\"1, y"))])]);
    }

    #[test]
    fn param_lookup() {
        let ext = parse_extensions(
            "permessage-deflate; Client_Max_Window_Bits; server_max_window_bits=12",
        )
        .next()
        .unwrap();
        assert_eq!(ext.param("client_max_window_bits"), Some(None));
        assert_eq!(ext.param("server_max_window_bits"), Some(Some("12")));
        assert_eq!(ext.param("server_no_context_takeover"), None);
    }
}
