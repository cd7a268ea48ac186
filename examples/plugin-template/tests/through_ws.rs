//! Runs the plugin through the real `ws` host, as a user would: `ws greet world`.
//!
//! The host is `$WS_BIN`, else `ws` on the PATH. The plugin is the one this `cargo test` just
//! built: `cargo test` leaves `libws_greet.so` in `target/debug/deps`, beside the test binary
//! (`cargo build` puts it in `target/debug`); both are given with `--plugin-dir`.

use std::path::PathBuf;
use std::process::Command;

fn ws() -> Command {
    let bin = std::env::var_os("WS_BIN").unwrap_or_else(|| "ws".into());
    let exe = std::env::current_exe().expect("test binary path");
    let deps: PathBuf = exe.parent().expect("target/debug/deps").to_path_buf();
    let mut cmd = Command::new(bin);
    cmd.arg("--plugin-dir").arg(&deps);
    if let Some(debug) = deps.parent() {
        cmd.arg("--plugin-dir").arg(debug);
    }
    cmd
}

#[test]
fn ws_runs_the_plugin_and_passes_its_exit_codes() {
    let out = ws().args(["greet", "world"]).output().expect("run ws (set WS_BIN or put ws on the PATH)");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello, world!\n");
    assert_eq!(out.status.code(), Some(0));
    let out = ws().args(["greet", "--shout", "world"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "HELLO, WORLD!\n");
    let out = ws().arg("greet").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "ws greet: missing NAME (usage: ws greet NAME)\n");
    let listed = ws().arg("--help").output().unwrap();
    assert!(String::from_utf8_lossy(&listed.stdout).contains("greet"), "ws --help lists the plugin");
}
