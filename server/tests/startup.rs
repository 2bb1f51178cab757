//! What the operator sees when the server cannot start: io_uring refused
//! as a container's default seccomp profile refuses it.

#[cfg(target_arch = "x86_64")]
use std::process::Command;

#[cfg(target_arch = "x86_64")]
fn start_without_io_uring(errno: &str) -> (Option<i32>, String) {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/without_io_uring.py"
    );
    let out = Command::new("python3")
        .args([script, errno, env!("CARGO_BIN_EXE_uringws")])
        .args(["--listen", "127.0.0.1:0", "--workers", "1", "--no-pin"])
        .env("NO_COLOR", "1")
        .output()
        .expect("python3 runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

// The seccomp filter names io_uring_setup by its x86_64 number.
#[cfg(target_arch = "x86_64")]
#[test]
fn a_blocked_io_uring_is_named_as_the_cause_not_a_bare_os_error() {
    let (code, stderr) = start_without_io_uring("EPERM");
    assert_eq!(code, Some(1), "{stderr}");
    for what in ["cannot start", "io_uring_setup", "seccomp", "Docker"] {
        assert!(stderr.contains(what), "{what} in {stderr}");
    }
    let (code, stderr) = start_without_io_uring("ENOSYS");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("io_uring is missing"), "{stderr}");
}
