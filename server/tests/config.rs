//! `--print-config` of the real binary: file, then environment, then flags.

use std::process::Command;

fn print_config(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_uringws"))
        .arg("--print-config")
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("uringws runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
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
