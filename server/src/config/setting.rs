//! One setting as the command line, the environment and `--help` see it,
//! and the `settings!` macro that makes all of them, with the [`Config`]
//! struct, from one list.

use super::Config;

/// The prefix of every environment variable the binary reads.
pub const PREFIX: &str = "URINGWS_";

/// A setting, made by `settings!` from its entry in the list.
pub struct Setting {
    /// The TOML key; the flag and the variable are made from it.
    pub(super) key: &'static str,
    pub(super) doc: &'static str,
    pub(super) expected: &'static str,
    pub(super) value_name: &'static str,
    pub(super) separator: Option<char>,
    pub(super) alone: Option<&'static str>,
    pub(super) secret: bool,
    /// Replaces the setting in a `Config` with what `texts` say; `Err`: the
    /// text that is not right.
    pub(super) set: fn(&mut Config, &[&str]) -> Result<(), String>,
    pub(super) valid: fn(&Config) -> bool,
    pub(super) shown: fn(&Config) -> Option<String>,
}

impl Setting {
    /// `--key-with-dashes`, without the dashes in front.
    pub fn flag(&self) -> String {
        self.key.replace('_', "-")
    }

    /// `URINGWS_` and the key upper-cased: one rule for every setting, so
    /// no name has to be looked up.
    pub fn variable(&self) -> String {
        format!("{PREFIX}{}", self.key.to_ascii_uppercase())
    }

    /// What `--help` says: the doc, how to give several, where a secret is
    /// best given, the variable and the default (from `defaults`, so it
    /// cannot drift from the code).
    pub fn help(&self, defaults: &Config) -> String {
        let mut help = self
            .doc
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
            .replace('`', "");
        if let Some(separator) = self.separator {
            help += &format!(" Repeat the flag, or separate with '{separator}'.");
        }
        if self.secret {
            help += " Prefer the variable or the file: flags show in the process list.";
        }
        help += &format!(" [env: {}]", self.variable());
        if let Some(default) = self.shown(defaults) {
            help += &format!(" [default: {default}]");
        }
        help
    }

    /// Its value in `config` as `--help` shows a default (secrets
    /// redacted); `None` for no value or an empty list.
    pub fn shown(&self, config: &Config) -> Option<String> {
        (self.shown)(config)
    }

    /// Sets it in `config` from what `source` (a flag or a variable) says.
    pub fn apply(&self, config: &mut Config, source: &str, texts: &[&str]) -> Result<(), String> {
        (self.set)(config, texts).map_err(|bad| {
            let given = if self.secret {
                String::new()
            } else {
                format!(" {bad:?}")
            };
            format!("{source}{given}: {} must be {}", self.key, self.expected)
        })
    }

    /// What the type allows but the setting does not (from the file).
    pub fn check(&self, config: &Config) -> Result<(), String> {
        match (self.valid)(config) {
            true => Ok(()),
            false => Err(format!("{} must be {}", self.key, self.expected)),
        }
    }
}

/// Declares every setting once, from a list of
///
/// ```text
/// /// Doc: the field's and --help's.
/// key: Type = default;
/// key: Type => engine.field;
/// ```
///
/// and makes the [`Config`] struct with those fields (serde, TOML keys as
/// they are), its `Default`, `Config::engine` (the settings given as
/// `=> engine.field`, whose default is then the engine's own), the redacted
/// copy `--print-config` prints, and `SETTINGS`, each [`Setting`] for the
/// flags, the variables and `--help`. A key's type says how it reads and
/// checks: see [`Value`](super::value::Value).
macro_rules! settings {
    (@default $engine:ident [$default:expr] []) => {
        $default
    };
    (@default $engine:ident [] [$(.$field:ident)+]) => {
        $crate::config::value::EngineValue::from_engine($engine$(.$field)+)
    };
    ($(
        $(#[doc = $doc:literal])+
        $key:ident: $ty:ty $(= $default:expr)? $(=> engine $(.$field:ident)+)?;
    )+) => {
        /// Every setting, with its default. Durations are in seconds.
        #[derive(Debug, Clone, PartialEq, ::serde::Serialize, ::serde::Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct Config {
            $(
                $(#[doc = $doc])+
                pub $key: $ty,
            )+
        }

        impl Default for Config {
            fn default() -> Self {
                let engine = ::uringws_engine::EngineConfig::default();
                Config {
                    $($key: settings!(@default engine [$($default)?] [$($(.$field)+)?]),)+
                }
            }
        }

        impl Config {
            /// The engine's part. Call after [`load`](Self::load) checked it.
            pub fn engine(&self) -> ::uringws_engine::EngineConfig {
                let mut engine = ::uringws_engine::EngineConfig::default();
                $($(
                    engine$(.$field)+ =
                        $crate::config::value::EngineValue::to_engine(&self.$key);
                )?)+
                self.engine_rest(&mut engine);
                engine
            }

            /// A copy with every secret replaced.
            fn redacted(&self) -> Config {
                Config {
                    $($key: $crate::config::value::Value::redacted(&self.$key),)+
                }
            }
        }

        /// Every setting, in the order of the list (and of `--help`).
        static SETTINGS: &[$crate::config::setting::Setting] = &[$(
            $crate::config::setting::Setting {
                key: stringify!($key),
                doc: concat!($($doc, "\n"),+),
                expected: <$ty as $crate::config::value::Value>::EXPECTED,
                value_name: <$ty as $crate::config::value::Value>::VALUE_NAME,
                separator: <$ty as $crate::config::value::Value>::SEPARATOR,
                alone: <$ty as $crate::config::value::Value>::ALONE,
                secret: <$ty as $crate::config::value::Value>::SECRET,
                set: |config, texts| {
                    config.$key = $crate::config::value::Value::parse(texts)?;
                    Ok(())
                },
                valid: |config| $crate::config::value::Value::valid(&config.$key),
                shown: |config| $crate::config::value::Value::show(&config.$key),
            },
        )+];
    };
}

pub(super) use settings;
