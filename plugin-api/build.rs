//! Records the compiler's version so every plugin can say what built it (`ws plugins`).
use std::process::Command;

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().replace('\0', ""))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "rustc (unknown)".into());
    println!("cargo:rustc-env=WS_RUSTC_VERSION={version}");
    println!("cargo:rerun-if-env-changed=RUSTC");
}
