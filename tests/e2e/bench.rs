//! `ws bench` works as an instrument: real numbers against a real server, and a loud failure
//! against a server that answers wrongly.

use std::time::Duration;

use crate::util::{Server, peer_script, run, ws};

const T: Duration = Duration::from_secs(60);

fn json_number(out: &str, key: &str) -> f64 {
    let at = out.find(&format!("\"{key}\":")).unwrap_or_else(|| panic!("no {key} in {out}")) + key.len() + 3;
    out[at..].split([',', '}']).next().unwrap().parse().unwrap()
}

#[test]
fn a_two_second_echo_run_reports_round_trips_and_no_errors() {
    let server = Server::start("echo_server", &["-q"]);
    let mut cmd = ws();
    cmd.args(["bench", &server.url("ws"), "-d", "2", "--warmup", "0.2", "-c", "2", "--json"]);
    let out = run(cmd, b"", T);
    assert_eq!(out.code(), 0, "{out:?}");
    assert!(json_number(&out.stdout, "messages") > 0.0, "{}", out.stdout);
    assert_eq!(json_number(&out.stdout, "errors"), 0.0, "{}", out.stdout);
    assert!(json_number(&out.stdout, "p50_us") > 0.0, "{}", out.stdout);
}

#[test]
fn a_server_that_changes_payloads_fails_the_run() {
    let server = Server::start_cmd("py-mangle", peer_script("echo_server.py").arg("--mangle"));
    for extra in [&[][..], &["--binary"][..]] {
        let mut cmd = ws();
        cmd.args(["bench", &server.url("ws"), "-n", "100"]).args(extra);
        let out = run(cmd, b"", T);
        assert_eq!(out.code(), 1, "{out:?}");
        assert!(out.stderr.contains("payload mismatch at message 0"), "{}", out.stderr);
    }
}

#[test]
fn idle_mode_holds_connections_and_counts_them() {
    let server = Server::start("echo_server", &["-q"]);
    let mut cmd = ws();
    cmd.args(["bench", &server.url("ws"), "--mode", "idle", "-c", "300", "-d", "0.5"]);
    let out = run(cmd, b"", T);
    assert_eq!(out.code(), 0, "{out:?}");
    assert!(out.stdout.contains("idle: 300 of 300 connections open"), "{}", out.stdout);
}
