//! The settings as environment variables, `URINGWS_KEY` for each.

use std::{collections::BTreeMap, ffi::OsString};

use super::{
    setting::{Setting, PREFIX},
    Config, SETTINGS,
};

/// The variable of `--config`.
pub const CONFIG_VARIABLE: &str = "URINGWS_CONFIG";

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
