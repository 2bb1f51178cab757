//! The types of settings: how each reads from a flag or a variable, what
//! it must be, how `--help` shows it, and what `--print-config` hides.

use serde::{Deserialize, Serialize};
use std::{fmt, net::SocketAddr, time::Duration};
use uringws_engine::BackpressurePolicy;

/// What `--print-config` and `--help` show instead of a secret.
pub const REDACTED: &str = "<redacted>";

/// A setting's type, whole: a scalar, a list or an optional value.
pub trait Value: Clone {
    /// What a text must be, for errors.
    const EXPECTED: &'static str;
    /// The flag's placeholder in `--help`.
    const VALUE_NAME: &'static str;
    /// Set for a list: its flag may repeat, and a text holds several
    /// entries split at this.
    const SEPARATOR: Option<char> = None;
    /// What the flag means given alone (`--auth-required`).
    const ALONE: Option<&'static str> = None;
    /// Never echoed back: not in errors, and redacted when printed.
    const SECRET: bool = false;
    /// From what a variable or the flags say (a list: every text given).
    /// `Err` holds the text that is not [`EXPECTED`](Self::EXPECTED).
    fn parse(texts: &[&str]) -> Result<Self, String>;
    /// Whether a value the type can hold (say, from the file) is one the
    /// setting takes.
    fn valid(&self) -> bool;
    /// As `[default: …]` in `--help`; `None`: nothing worth showing.
    fn show(&self) -> Option<String>;
    fn redacted(&self) -> Self;
}

/// One value as text: a whole scalar setting, or an entry of a list or an
/// optional setting.
pub trait Item: Clone {
    const EXPECTED: &'static str;
    const VALUE_NAME: &'static str;
    /// Between the entries of a list of these in one text.
    const SEPARATOR: char = ',';
    const ALONE: Option<&'static str> = None;
    const SECRET: bool = false;
    fn from_text(text: &str) -> Option<Self>;
    fn to_text(&self) -> String;
    fn valid(&self) -> bool {
        true
    }
    fn redacted(&self) -> Self {
        self.clone()
    }
}

/// `Value` for types that are one [`Item`]. (Not a blanket impl: it would
/// overlap the impls for `Vec` and `Option`.)
macro_rules! scalar_values {
    ($($ty:ty),+ $(,)?) => {$(
        impl Value for $ty {
            const EXPECTED: &'static str = <$ty as Item>::EXPECTED;
            const VALUE_NAME: &'static str = <$ty as Item>::VALUE_NAME;
            const ALONE: Option<&'static str> = <$ty as Item>::ALONE;
            const SECRET: bool = <$ty as Item>::SECRET;
            fn parse(texts: &[&str]) -> Result<Self, String> {
                // The flag of a scalar cannot repeat, so there is one text.
                let text = texts.last().copied().unwrap_or_default();
                Item::from_text(text).ok_or_else(|| text.to_owned())
            }
            fn valid(&self) -> bool {
                Item::valid(self)
            }
            fn show(&self) -> Option<String> {
                Some(Item::to_text(&Item::redacted(self)))
            }
            fn redacted(&self) -> Self {
                Item::redacted(self)
            }
        }
    )+};
}

scalar_values!(
    usize,
    u8,
    u16,
    u32,
    f64,
    bool,
    String,
    Policy,
    LogFormat,
    Compression,
    BusUrl
);

impl<T: Item> Value for Option<T> {
    const EXPECTED: &'static str = T::EXPECTED;
    const VALUE_NAME: &'static str = T::VALUE_NAME;
    const SECRET: bool = T::SECRET;
    fn parse(texts: &[&str]) -> Result<Self, String> {
        let text = texts.last().copied().unwrap_or_default();
        T::from_text(text).map(Some).ok_or_else(|| text.to_owned())
    }
    fn valid(&self) -> bool {
        self.as_ref().is_none_or(T::valid)
    }
    fn show(&self) -> Option<String> {
        self.as_ref().map(|v| v.redacted().to_text())
    }
    fn redacted(&self) -> Self {
        self.as_ref().map(T::redacted)
    }
}

impl<T: Item> Value for Vec<T> {
    const EXPECTED: &'static str = T::EXPECTED;
    const VALUE_NAME: &'static str = T::VALUE_NAME;
    const SEPARATOR: Option<char> = Some(T::SEPARATOR);
    const SECRET: bool = T::SECRET;
    fn parse(texts: &[&str]) -> Result<Self, String> {
        texts
            .iter()
            // An empty variable is an empty list (it can clear the file's).
            .filter(|text| !text.is_empty())
            .flat_map(|text| text.split(T::SEPARATOR))
            .map(|entry| T::from_text(entry).ok_or_else(|| entry.to_owned()))
            .collect()
    }
    fn valid(&self) -> bool {
        self.iter().all(T::valid)
    }
    fn show(&self) -> Option<String> {
        let entries: Vec<String> = self.iter().map(|v| v.redacted().to_text()).collect();
        (!entries.is_empty()).then(|| entries.join(&T::SEPARATOR.to_string()))
    }
    fn redacted(&self) -> Self {
        self.iter().map(T::redacted).collect()
    }
}

/// Items that are their `FromStr` and `Display`.
macro_rules! text_items {
    ($($ty:ty: $value_name:literal, $expected:literal;)+) => {$(
        impl Item for $ty {
            const EXPECTED: &'static str = $expected;
            const VALUE_NAME: &'static str = $value_name;
            fn from_text(text: &str) -> Option<Self> {
                text.parse().ok()
            }
            fn to_text(&self) -> String {
                self.to_string()
            }
        }
    )+};
}

text_items! {
    usize: "N", "a whole number, 0 or more";
    u8: "N", "a whole number from 0 to 255";
    u16: "N", "a whole number from 0 to 65535";
    u32: "N", "a whole number from 0 to 4294967295";
    String: "TEXT", "text";
    SocketAddr: "ADDR", "an IP address and port, e.g. 0.0.0.0:9001 or [::]:9001";
}

impl Item for bool {
    const EXPECTED: &'static str = "true or false";
    const VALUE_NAME: &'static str = "true|false";
    const ALONE: Option<&'static str> = Some("true");
    fn from_text(text: &str) -> Option<Self> {
        text.parse().ok()
    }
    fn to_text(&self) -> String {
        self.to_string()
    }
}

/// Every number setting is a time in seconds or a rate per second: none
/// is negative, and each must fit a `Duration` (rates, to be converted
/// into the time between two events).
impl Item for f64 {
    const EXPECTED: &'static str = "a number, 0 or more";
    const VALUE_NAME: &'static str = "NUMBER";
    fn from_text(text: &str) -> Option<Self> {
        text.parse().ok().filter(Item::valid)
    }
    fn to_text(&self) -> String {
        self.to_string()
    }
    fn valid(&self) -> bool {
        Duration::try_from_secs_f64(*self).is_ok()
    }
}

/// What a message to a connection under backpressure does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    Drop,
    Close,
}

impl Item for Policy {
    const EXPECTED: &'static str = "drop or close";
    const VALUE_NAME: &'static str = "drop|close";
    fn from_text(text: &str) -> Option<Self> {
        match text {
            "drop" => Some(Policy::Drop),
            "close" => Some(Policy::Close),
            _ => None,
        }
    }
    fn to_text(&self) -> String {
        match self {
            Policy::Drop => "drop",
            Policy::Close => "close",
        }
        .into()
    }
}

/// permessage-deflate, for clients that offer it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Declined: every message goes as it is.
    Off,
    /// No context takeover either way: each worker's one compressor and
    /// one decompressor serve all its connections.
    Shared,
    /// Context takeover where the client allows it: each connection
    /// keeps its own streams while open.
    Dedicated,
}

impl Item for Compression {
    const EXPECTED: &'static str = "off, shared or dedicated";
    const VALUE_NAME: &'static str = "off|shared|dedicated";
    fn from_text(text: &str) -> Option<Self> {
        match text {
            "off" => Some(Compression::Off),
            "shared" => Some(Compression::Shared),
            "dedicated" => Some(Compression::Dedicated),
            _ => None,
        }
    }
    fn to_text(&self) -> String {
        match self {
            Compression::Off => "off",
            Compression::Shared => "shared",
            Compression::Dedicated => "dedicated",
        }
        .into()
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// For people: one line per event, coloured only on a terminal.
    Text,
    /// For log collectors: one JSON object per line.
    Json,
}

impl Item for LogFormat {
    const EXPECTED: &'static str = "text or json";
    const VALUE_NAME: &'static str = "text|json";
    fn from_text(text: &str) -> Option<Self> {
        match text {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }
    fn to_text(&self) -> String {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
        .into()
    }
}

/// A string that is a secret: `Debug` does not show it, so a logged
/// `Config` cannot leak it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({REDACTED})")
    }
}

impl Item for Secret {
    const EXPECTED: &'static str = "text";
    const VALUE_NAME: &'static str = "SECRET";
    const SECRET: bool = true;
    fn from_text(text: &str) -> Option<Self> {
        Some(Secret(text.to_owned()))
    }
    fn to_text(&self) -> String {
        self.0.clone()
    }
    fn redacted(&self) -> Self {
        Secret(REDACTED.into())
    }
}

/// A static token, `<token>:<topic patterns, comma-separated>`: the token
/// is a secret, the topics it grants are not (and are worth seeing).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StaticToken(String);

impl StaticToken {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StaticToken({REDACTED})")
    }
}

impl Item for StaticToken {
    const EXPECTED: &'static str = "<token>:<subscribe patterns>[|<publish patterns>]";
    const VALUE_NAME: &'static str = "TOKEN";
    // The topic patterns are separated by commas.
    const SEPARATOR: char = ';';
    const SECRET: bool = true;
    fn from_text(text: &str) -> Option<Self> {
        Some(StaticToken(text.to_owned()))
    }
    fn to_text(&self) -> String {
        self.0.clone()
    }
    fn redacted(&self) -> Self {
        StaticToken(match self.0.split_once(':') {
            Some((_, patterns)) => format!("{REDACTED}:{patterns}"),
            None => REDACTED.into(),
        })
    }
}

/// A setting the engine has too, converted to and from the engine's type.
pub trait EngineValue<E> {
    fn from_engine(value: E) -> Self;
    fn to_engine(&self) -> E;
}

impl<T: Copy> EngineValue<T> for T {
    fn from_engine(value: T) -> Self {
        value
    }
    fn to_engine(&self) -> T {
        *self
    }
}

impl EngineValue<Duration> for f64 {
    fn from_engine(value: Duration) -> Self {
        value.as_secs_f64()
    }
    fn to_engine(&self) -> Duration {
        // A loaded `Config` was checked (`Item::valid`); 0 is for one
        // built by hand with a bad number.
        Duration::try_from_secs_f64(*self).unwrap_or_default()
    }
}

impl EngineValue<BackpressurePolicy> for Policy {
    fn from_engine(value: BackpressurePolicy) -> Self {
        match value {
            BackpressurePolicy::Drop => Policy::Drop,
            BackpressurePolicy::Close => Policy::Close,
        }
    }
    fn to_engine(&self) -> BackpressurePolicy {
        match self {
            Policy::Drop => BackpressurePolicy::Drop,
            Policy::Close => BackpressurePolicy::Close,
        }
    }
}

/// A Redis URL, `redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]`: printed with
/// its password hidden (the rest is worth seeing).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BusUrl(String);

impl BusUrl {
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// For logs and `/health`.
    pub fn shown(&self) -> String {
        Item::redacted(self).0
    }
}

impl fmt::Debug for BusUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BusUrl({})", self.shown())
    }
}

impl Item for BusUrl {
    const EXPECTED: &'static str = "a Redis URL: redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]";
    const VALUE_NAME: &'static str = "URL";
    // A bad URL may carry a password: errors do not repeat it.
    const SECRET: bool = true;
    fn from_text(text: &str) -> Option<Self> {
        let url = BusUrl(text.to_owned());
        Item::valid(&url).then_some(url)
    }
    fn to_text(&self) -> String {
        self.0.clone()
    }
    fn valid(&self) -> bool {
        // rediss:// would need the client's TLS, which this build leaves out.
        self.0.starts_with("redis://") && redis::Client::open(self.0.as_str()).is_ok()
    }
    fn redacted(&self) -> Self {
        let Some((scheme, rest)) = self.0.split_once("://") else {
            return BusUrl(REDACTED.into());
        };
        match rest.rsplit_once('@') {
            Some((userinfo, host)) => {
                let user = userinfo.split_once(':').map_or("", |(user, _)| user);
                BusUrl(format!("{scheme}://{user}:{REDACTED}@{host}"))
            }
            None => self.clone(),
        }
    }
}
