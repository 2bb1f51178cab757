//! The settings as environment variables, `URINGWS_KEY` for each. Any other
//! `URINGWS_` variable is refused, as an unknown key in the file is, so a
//! misspelt one cannot be silently ignored.

use std::{collections::BTreeMap, ffi::OsString};

use super::{
    setting::{Setting, PREFIX},
    Config, SETTINGS,
};

/// The variable of `--config`.
pub const CONFIG_VARIABLE: &str = "URINGWS_CONFIG";

/// `URINGWS_` variables the binary reads that are not settings: (name,
/// what it is).
const OTHERS: &[(&str, &str)] = &[(CONFIG_VARIABLE, "the --config file")];

/// Sets in `config` what the `URINGWS_` variables of `environment` say.
pub(super) fn apply(
    config: &mut Config,
    environment: impl IntoIterator<Item = (OsString, OsString)>,
) -> Result<(), String> {
    // Sorted, so that of several bad ones the same is reported each time.
    let ours: BTreeMap<String, OsString> = environment
        .into_iter()
        .filter(|(name, _)| name.as_encoded_bytes().starts_with(PREFIX.as_bytes()))
        .map(|(name, value)| (name.to_string_lossy().into_owned(), value))
        .collect();
    let unknown: Vec<&str> = ours
        .keys()
        .map(String::as_str)
        .filter(|name| setting(name).is_none() && !OTHERS.iter().any(|(other, _)| other == name))
        .collect();
    if !unknown.is_empty() {
        return Err(unknown_message(&unknown));
    }
    for (name, value) in &ours {
        if let Some(setting) = setting(name) {
            let text = value.to_str().ok_or_else(|| format!("{name}: not UTF-8"))?;
            setting.apply(config, name, &[text])?;
        }
    }
    Ok(())
}

fn setting(variable: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.variable() == variable)
}

/// Names the unknown ones, each with the valid names it is the start of or
/// starts with (as the names older versions read: `URINGWS_LOG` is now
/// `URINGWS_LOG_LEVEL`), then every valid one.
fn unknown_message(unknown: &[&str]) -> String {
    let variables: Vec<String> = SETTINGS.iter().map(Setting::variable).collect();
    let named: Vec<String> = unknown
        .iter()
        .map(|name| {
            let near: Vec<&str> = variables
                .iter()
                .map(String::as_str)
                .filter(|v| {
                    v.starts_with(&format!("{name}_")) || name.starts_with(&format!("{v}_"))
                })
                .collect();
            match near.as_slice() {
                [] => name.to_string(),
                near => format!("{name} (did you mean {}?)", near.join(" or ")),
            }
        })
        .collect();
    let others: Vec<String> = OTHERS
        .iter()
        .map(|(name, what)| format!("{name} ({what})"))
        .collect();
    format!(
        "unknown environment variable{} {}\n  the settings' variables: {}\n  and besides them: {}",
        if unknown.len() > 1 { "s" } else { "" },
        named.join(", "),
        variables.join(", "),
        others.join(", "),
    )
}
