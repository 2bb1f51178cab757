//! The real binary's settings: `--print-config` (file, then environment,
//! then flags), `--help`, and what it refuses.

use std::{collections::BTreeMap, path::PathBuf, process::Command};

/// Runs the binary with `args` and `env` only of our variables (none
/// inherited, so a `URINGWS_` variable of the shell cannot fail a test):
/// (exit code, stdout, stderr).
fn run(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_uringws"));
    for (name, _) in std::env::vars_os() {
        if name.as_encoded_bytes().starts_with(b"URINGWS_") {
            command.env_remove(name);
        }
    }
    let out = command
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("uringws runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn print_config(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let args: Vec<&str> = std::iter::once("--print-config")
        .chain(args.iter().copied())
        .collect();
    let (code, out, err) = run(&args, env);
    (code == Some(0), out, err)
}

fn temp_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("uringws-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The settings' variables, as the binary lists them when it refuses an
/// unknown one: so the tests below cover a new setting without a change.
fn setting_variables() -> Vec<String> {
    let (code, _, err) = run(&["--print-config"], &[("URINGWS_NO_SUCH_SETTING", "1")]);
    assert_eq!(code, Some(2), "{err}");
    let line = err
        .lines()
        .find_map(|line| line.trim().strip_prefix("the settings' variables: "))
        .unwrap_or_else(|| panic!("no list of variables in:\n{err}"));
    let variables: Vec<String> = line.split(", ").map(str::to_owned).collect();
    assert!(variables.len() > 20, "{variables:?}");
    variables
}

fn key_of(variable: &str) -> String {
    variable
        .strip_prefix("URINGWS_")
        .expect("a URINGWS_ variable")
        .to_lowercase()
}

fn parse(printed: &str) -> toml::Table {
    toml::from_str(printed).unwrap_or_else(|e| panic!("{e}:\n{printed}"))
}

#[test]
fn file_then_environment_then_flags() {
    let dir = std::env::temp_dir().join(format!("uringws-print-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("c.toml");
    std::fs::write(
        &file,
        "max_subscriptions = 5\nworkers = 3\nidle_timeout = 9\n",
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let (ok, out, err) = print_config(
        &["--config", file, "--workers", "1"],
        &[("URINGWS_WORKERS", "2"), ("URINGWS_IDLE_TIMEOUT", "4")],
    );
    assert!(ok, "{err}");
    assert!(out.contains("max_subscriptions = 5\n"), "{out}");
    assert!(out.contains("workers = 1\n"), "{out}");
    assert!(out.contains("idle_timeout = 4.0\n"), "{out}");
}

#[test]
fn a_bad_file_is_refused_with_its_name_and_the_field() {
    let dir = std::env::temp_dir().join(format!("uringws-bad-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(&file, "listen = \"not an address\"\n").unwrap();
    let (ok, _, err) = print_config(&["--config", file.to_str().unwrap()], &[]);
    assert!(!ok);
    assert!(err.contains("bad.toml") && err.contains("listen"), "{err}");
}

#[test]
fn print_config_shows_no_secret_from_file_environment_or_flags() {
    let dir = std::env::temp_dir().join(format!("uringws-secret-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("c.toml");
    let jwt_secret = "file-jwt-secret-file-jwt-secret-0123";
    std::fs::write(
        &file,
        format!("jwt_secret = \"{jwt_secret}\"\ntokens = [\"file-token:a,b/*\"]\n"),
    )
    .unwrap();
    let (ok, out, err) = print_config(
        &[
            "--config",
            file.to_str().unwrap(),
            "--token",
            "flag-token:news",
            "--auth-required",
        ],
        &[
            ("URINGWS_PUBLISH_KEY", "env-publish-key"),
            ("URINGWS_TOKENS", "env-token:x"),
        ],
    );
    assert!(ok, "{err}");
    for secret in [
        jwt_secret,
        "file-token",
        "flag-token",
        "env-publish-key",
        "env-token",
    ] {
        assert!(!out.contains(secret), "{secret} shown:\n{out}");
    }
    assert!(out.contains("auth_required = true\n"), "{out}");
    assert!(out.contains("jwt_secret = \"<redacted>\"\n"), "{out}");
    assert!(out.contains("publish_key = \"<redacted>\"\n"), "{out}");
    // The flag beats the variable and the file; its topics stay visible.
    assert!(out.contains("tokens = [\"<redacted>:news\"]\n"), "{out}");
}

/// Texts of which, for every setting, one is valid and not what the
/// baseline file below says: a setting of a new type needs one here.
const CANDIDATES: &[&str] = &[
    "2",
    "10",
    "dedicated",
    "false",
    "true",
    "close",
    "json",
    "127.0.0.1:1",
    "https://a.example",
    "tok:news",
    "0123456789abcdef0123456789abcdef-jwt",
    "10.0.0.0/8",
    "redis://127.0.0.1:6380",
];

#[test]
fn every_settings_variable_sets_its_key_and_nothing_else() {
    // A token, so that auth_required = true is accepted; TLS settings,
    // which need each other (their files are read only at start); a bus,
    // which bus_sharded needs.
    let file = temp_file(
        "baseline.toml",
        "tokens = [\"base:x\"]\ntls_listen = [\"127.0.0.1:2\"]\n\
         tls_cert = [\"c.pem\"]\ntls_key = [\"k.pem\"]\n\
         bus = \"redis://127.0.0.1:6379\"\n",
    );
    let file = file.to_str().unwrap();
    let (ok, out, err) = print_config(&["--config", file], &[]);
    assert!(ok, "{err}");
    let baseline = parse(&out);
    for variable in setting_variables() {
        let key = key_of(&variable);
        let changed = CANDIDATES.iter().find_map(|text| {
            let (ok, out, _) = print_config(&["--config", file], &[(&variable, text)]);
            let printed = parse(&out);
            (ok && printed.get(&key) != baseline.get(&key)).then_some((text, printed))
        });
        let Some((text, mut printed)) = changed else {
            panic!(
                "no candidate text changes {key} through {variable}: the variable is \
                 ignored, or a setting of a new type needs a text in CANDIDATES"
            );
        };
        let mut expected = baseline.clone();
        expected.remove(&key);
        printed.remove(&key);
        assert_eq!(
            printed, expected,
            "{variable}={text} changed more than {key}"
        );
    }
}

#[test]
fn an_unknown_variable_stops_the_server_naming_it_and_the_valid_ones() {
    let variables = setting_variables();
    for old in ["URINGWS_MAX_FRAME", "URINGWS_LOG", "URINGWS_WOKERS"] {
        let (code, out, err) = run(&["--print-config"], &[(old, "5")]);
        assert_eq!(code, Some(2), "{old}: {out}");
        assert!(
            err.contains(&format!("unknown environment variable {old}")),
            "{err}"
        );
        for variable in &variables {
            assert!(
                err.contains(variable.as_str()),
                "{variable} not listed:\n{err}"
            );
        }
        assert!(err.contains("URINGWS_CONFIG"), "{err}");
    }
    let (_, _, err) = run(&["--print-config"], &[("URINGWS_MAX_FRAME", "5")]);
    assert!(
        err.contains("did you mean URINGWS_MAX_FRAME_SIZE?"),
        "{err}"
    );
    // Not a setting, but the binary's own: allowed.
    let file = temp_file("from-env.toml", "max_subscriptions = 3\n");
    let (ok, out, err) = print_config(&[], &[("URINGWS_CONFIG", file.to_str().unwrap())]);
    assert!(ok, "{err}");
    assert!(out.contains("max_subscriptions = 3\n"), "{out}");
}

/// Each flag's help, by flag: clap puts the flag on one line and its help,
/// indented deeper, on the next ones.
fn help_by_flag(help: &str) -> BTreeMap<String, String> {
    let mut by_flag = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in help.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if trimmed.starts_with("--") && indent < 10 {
            let flag = trimmed.split([' ', '=']).next().unwrap_or_default();
            current = Some(flag.to_owned());
            by_flag.insert(flag.to_owned(), String::new());
        } else if let Some(text) = current.as_ref().and_then(|flag| by_flag.get_mut(flag)) {
            *text = format!("{text} {trimmed}");
        }
    }
    by_flag
}

#[test]
fn help_shows_each_settings_flag_variable_and_default() {
    let (code, help, err) = run(&["--help"], &[]);
    assert_eq!(code, Some(0), "{err}");
    let by_flag = help_by_flag(&help);
    let (ok, out, err) = print_config(&[], &[]);
    assert!(ok, "{err}");
    let defaults = parse(&out);
    for variable in setting_variables() {
        let key = key_of(&variable);
        let flag = format!("--{}", key.replace('_', "-"));
        let text = by_flag
            .get(&flag)
            .unwrap_or_else(|| panic!("{flag} not in --help:\n{help}"));
        assert!(
            text.contains(&format!("[env: {variable}]")),
            "{flag}: {text}"
        );
        // As --print-config shows the default; none for an empty list or no value.
        let default = match defaults.get(&key) {
            Some(toml::Value::Array(list)) if list.is_empty() => None,
            Some(toml::Value::Array(list)) => Some(
                list.iter()
                    .map(|v| {
                        v.as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| v.to_string())
                    })
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            Some(toml::Value::String(s)) => Some(s.clone()),
            Some(toml::Value::Float(f)) => Some(f.to_string()),
            Some(other) => Some(other.to_string()),
            None => None,
        };
        match default {
            Some(default) => assert!(
                text.contains(&format!("[default: {default}]")),
                "{flag}: want [default: {default}] in {text}"
            ),
            None => assert!(!text.contains("[default:"), "{flag}: {text}"),
        }
    }
    assert!(
        by_flag["--ping-interval"].contains("[default: 30]"),
        "{help}"
    );
}

#[test]
fn a_bad_value_stops_the_server_naming_the_key_and_what_it_must_be() {
    for (args, env, want) in [
        (
            &[][..],
            &[("URINGWS_WORKERS", "many")][..],
            r#"URINGWS_WORKERS "many": workers must be a whole number, 0 or more"#,
        ),
        (
            &["--idle-timeout", "soon"],
            &[],
            r#"--idle-timeout "soon": idle_timeout must be a number, 0 or more"#,
        ),
        (
            &[],
            &[("URINGWS_AUTH_REQUIRED", "yes")],
            r#"URINGWS_AUTH_REQUIRED "yes": auth_required must be true or false"#,
        ),
        (
            &["--backpressure-policy", "block"],
            &[],
            "backpressure_policy must be drop or close",
        ),
        (
            &[],
            &[("URINGWS_MAX_FRAME_SIZE", "-5")],
            "max_frame_size must be a whole number",
        ),
    ] {
        let (code, out, err) = run(&[&["--print-config"][..], args].concat(), env);
        assert_eq!(code, Some(2), "{args:?} {env:?}: {out}");
        assert!(err.contains(want), "{args:?} {env:?}: {err}");
    }
    // A secret is never repeated in an error.
    let (code, _, err) = run(
        &["--print-config"],
        &[("URINGWS_JWT_SECRET", "short-secret")],
    );
    assert_eq!(code, Some(2));
    assert!(
        err.contains("jwt_secret") && !err.contains("short-secret"),
        "{err}"
    );
}
