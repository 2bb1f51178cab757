//! The settings as command-line flags: `--key-with-dashes` for each, and a
//! few other spellings kept because scripts and docs use them.

use clap::{Arg, ArgAction, ArgMatches, Command};
use std::fmt;

use super::{setting::Setting, Config, SETTINGS};

/// Other names of a setting's flag: (flag, key).
pub(super) const ALIASES: &[(&str, &str)] = &[("token", "tokens"), ("origin", "origins")];

/// Flags that set a setting to one value: (flag, key, value). Applied after
/// the settings' own flags, so `--no-pin` beats `--pin`.
pub(super) const SHORTHANDS: &[(&str, &str, &str)] = &[
    ("no-pin", "pin", "false"),
    ("close-on-backpressure", "backpressure_policy", "close"),
];

/// What the command line gives, in the order it is applied: for each
/// setting given, its flag and the texts of its occurrences.
#[derive(Default)]
pub struct Overrides {
    given: Vec<(&'static Setting, String, Vec<String>)>,
}

impl Overrides {
    pub(super) fn apply(&self, config: &mut Config) -> Result<(), String> {
        for (setting, flag, texts) in &self.given {
            let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
            setting.apply(config, flag, &texts)?;
        }
        Ok(())
    }
}

/// Names the flags given, not what they say: some are secrets.
impl fmt::Debug for Overrides {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.given.iter().map(|(_, flag, _)| flag))
            .finish()
    }
}

fn arg(setting: &Setting, defaults: &Config) -> Arg {
    let mut arg = Arg::new(setting.key)
        .long(setting.flag())
        .value_name(setting.value_name)
        .help(setting.help(defaults))
        // So that `--idle-timeout -1` reaches the check, which names the key.
        .allow_negative_numbers(true);
    arg = match (setting.separator.is_some(), setting.alone) {
        (true, _) => arg.action(ArgAction::Append),
        (false, Some(alone)) => arg.num_args(0..=1).default_missing_value(alone),
        (false, None) => arg.action(ArgAction::Set),
    };
    for (alias, _) in ALIASES.iter().filter(|(_, key)| *key == setting.key) {
        arg = arg.visible_alias(*alias);
    }
    arg
}

impl clap::Args for Overrides {
    fn augment_args(cmd: Command) -> Command {
        let defaults = Config::default();
        SETTINGS.iter().fold(cmd, |cmd, setting| {
            let cmd = cmd.arg(arg(setting, &defaults));
            SHORTHANDS
                .iter()
                .filter(|(_, key, _)| *key == setting.key)
                .fold(cmd, |cmd, (flag, _, value)| {
                    cmd.arg(
                        Arg::new(*flag)
                            .long(*flag)
                            .action(ArgAction::SetTrue)
                            .help(format!("Same as --{} {value}", setting.flag())),
                    )
                })
        })
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

impl clap::FromArgMatches for Overrides {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut overrides = Overrides::default();
        overrides.update_from_arg_matches(matches)?;
        Ok(overrides)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        for setting in SETTINGS {
            if let Some(texts) = matches.get_many::<String>(setting.key) {
                let flag = format!("--{}", setting.flag());
                self.given.push((setting, flag, texts.cloned().collect()));
            }
        }
        for (flag, key, value) in SHORTHANDS {
            // A shorthand of no setting has no flag (see augment_args).
            let Some(setting) = SETTINGS.iter().find(|s| s.key == *key) else {
                continue;
            };
            if matches.get_flag(flag) {
                self.given
                    .push((setting, format!("--{flag}"), vec![(*value).to_owned()]));
            }
        }
        Ok(())
    }
}
