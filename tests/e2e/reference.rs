//! Issue 24: the rest of the reference's subcommands and global flags: `dnslookup`, `gzip`
//! and `gunzip` (against GNU gzip), `push_server` with `autoroute` (and a Python client),
//! `--version` after a subcommand, and `--logfile`. (`autobahn` is in autobahn.rs.)

use std::process::Command;
use std::time::Duration;

use crate::util::{Server, peer_script, run, ws_args};

const T: Duration = Duration::from_secs(30);

#[test]
fn dnslookup_prints_every_address_and_fails_with_the_resolvers_reason() {
    let out = run(ws_args(&["dnslookup", "127.0.0.1"]), b"", T);
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert!(out.stdout.trim_end().ends_with("[info] host: 127.0.0.1 ip: 127.0.0.1"), "{}", out.stdout);
    let out = run(ws_args(&["dnslookup", "[::1]"]), b"", T);
    assert!(out.stdout.contains("host: ::1 ip: ::1"), "{}", out.stdout);
    // /etc/hosts names `localhost`: every address it gives, each once.
    let out = run(ws_args(&["dnslookup", "localhost"]), b"", T);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines.iter().any(|l| l.ends_with("host: localhost ip: 127.0.0.1")), "{}", out.stdout);
    let mut unique = lines.clone();
    unique.dedup();
    assert_eq!(unique.len(), lines.len(), "{}", out.stdout);
    let out = run(ws_args(&["dnslookup", "no-such-host.invalid"]), b"", T);
    assert_eq!(out.code(), 1);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.contains("cannot resolve no-such-host.invalid: "), "{}", out.stderr);
}

fn cksum_signed(data: &[u8]) -> u64 {
    data.iter().fold(5381u64, |h, &b| h.wrapping_mul(33).wrapping_add(b as i8 as i64 as u64))
}

#[test]
fn gzip_and_gunzip_round_trip_with_gnu_gzip_and_log_the_references_lines() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("data.bin");
    // Text and high bytes (the checksum sign-extends them), 3 MiB.
    let data: Vec<u8> =
        (0..3u32 << 20).map(|i| if i % 7 == 0 { (i >> 3) as u8 } else { b"some text, "[i as usize % 11] }).collect();
    std::fs::write(&input, &data).unwrap();
    let path = input.to_str().unwrap();
    let out = run(ws_args(&["gzip", path, "--run_count", "3"]), b"", T);
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert!(
        out.stdout.contains(&format!("gzip input: {path} size {} cksum {}", data.len(), cksum_signed(&data))),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("compress median runtime: "), "{}", out.stdout);
    let gz = std::fs::read(format!("{path}.gz")).unwrap();
    assert!(
        out.stdout.contains(&format!("gzip output: {path}.gz size {} cksum {}", gz.len(), cksum_signed(&gz))),
        "{}",
        out.stdout
    );
    // GNU gunzip reads it back.
    let back = Command::new("gzip").args(["-dc", &format!("{path}.gz")]).output().expect("gzip");
    assert!(back.status.success());
    assert!(back.stdout == data, "GNU gzip -d gave other bytes");
    // An existing output is kept without --force.
    let out = run(ws_args(&["gzip", path]), b"", T);
    assert_eq!(out.code(), 1);
    assert!(out.stderr.contains("already exists"), "{}", out.stderr);

    // ws gunzip of GNU gzip's output (two members, as `cat a.gz b.gz` makes).
    let gnu = dir.path().join("gnu.txt.gz");
    let make = format!("(printf 'first\\n' | gzip -6; printf 'second\\n' | gzip -6) > {}", gnu.display());
    assert!(Command::new("sh").arg("-c").arg(make).status().unwrap().success());
    let out = run(ws_args(&["gunzip", gnu.to_str().unwrap()]), b"", T);
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(dir.path().join("gnu.txt")).unwrap(), "first\nsecond\n");
    assert!(out.stdout.contains("gunzip output: ") && out.stdout.contains("size 13 cksum"), "{}", out.stdout);
    assert!(out.stderr.contains("decompressing file completed in "), "{}", out.stderr);

    // Truncated and not-gzip inputs: one line, exit 1, nothing left behind.
    let cut = dir.path().join("cut.bin.gz");
    std::fs::write(&cut, &gz[..gz.len() / 2]).unwrap();
    let not_gz = dir.path().join("plain.txt.gz");
    std::fs::write(&not_gz, "just text\n").unwrap();
    for (file, why) in [(&cut, "truncated"), (&not_gz, "not in gzip format")] {
        let before: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        let out = run(ws_args(&["gunzip", file.to_str().unwrap()]), b"", T);
        assert_eq!(out.code(), 1, "{}", out.stderr);
        assert!(out.stderr.trim().lines().count() == 1 && out.stderr.contains(why), "{}", out.stderr);
        let after: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(before.len(), after.len(), "something was left behind: {after:?}");
    }
}

#[test]
fn push_server_pushes_n_messages_to_autoroute_and_to_a_python_client() {
    let server = Server::start("push_server", &["--send_msg", "tick"]);
    let out = run(ws_args(&["autoroute", &server.url("ws"), "--msg_count", "20000"]), b"", T);
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert!(out.stdout.contains("AUTOROUTE IXWebSocket :: "), "{}", out.stdout);
    server.wait_for_line("Sending 20000 messages", T);
    // As the reference, the server's run ends with its first client.
    let mut server = server;
    let deadline = std::time::Instant::now() + T;
    while server.is_running() {
        assert!(std::time::Instant::now() < deadline, "push_server still running after its client left");
        std::thread::sleep(Duration::from_millis(20));
    }

    // A Python client reads 5 pushes of the chosen text, then an echo.
    let server = Server::start("push_server", &["--send_msg", "hello there"]);
    let script = r#"
import sys
from websockets.sync.client import connect
with connect(sys.argv[1] + "/5", open_timeout=10) as ws:
    got = [ws.recv(timeout=10) for _ in range(5)]
    assert got == ["hello there"] * 5, got
    ws.send("echo?")
    assert ws.recv(timeout=10) == "echo?"
print("python ok")
"#;
    let mut py = Command::new(crate::util::python());
    py.arg("-c").arg(script).arg(server.url("ws"));
    let out = run(py, b"", T);
    assert!(out.stdout.contains("python ok"), "{}{}", out.stdout, out.stderr);

    // -p: the same pushes, then frames echoed as they come, pings left unanswered; with the
    // client's permessage-deflate on (its compressed echo comes back compressed).
    let server = Server::start("push_server", &["-p", "--send_msg", "raw"]);
    let script = r#"
import asyncio, sys
from websockets.asyncio.client import connect
async def main():
    async with connect(sys.argv[1] + "/3", open_timeout=10) as ws:
        got = [await asyncio.wait_for(ws.recv(), 10) for _ in range(3)]
        assert got == ["raw"] * 3, got
        pong = await ws.ping()
        try:
            await asyncio.wait_for(pong, 1)
            print("answered a ping")
        except asyncio.TimeoutError:
            pass
        await ws.send("compress me " * 50)
        assert await asyncio.wait_for(ws.recv(), 10) == "compress me " * 50
        print("python -p ok", ws.response.headers.get("Sec-WebSocket-Extensions"))
asyncio.run(main())
"#;
    let mut py = Command::new(crate::util::python());
    py.arg("-c").arg(script).arg(server.url("ws"));
    let out = run(py, b"", T);
    assert!(out.stdout.contains("python -p ok permessage-deflate"), "{}{}", out.stdout, out.stderr);
    assert!(!out.stdout.contains("answered a ping"), "{}", out.stdout);

    // A server that closes early: autoroute says how many came, one line, exit 1.
    let mut cmd = peer_script("echo_server.py");
    cmd.args(["--close-with", "1001", "going away"]);
    let peer = Server::start_cmd("py-closer", &mut cmd);
    let out = run(ws_args(&["autoroute", &peer.url("ws"), "--msg_count", "3"]), b"", T);
    assert_eq!(out.code(), 1, "{}", out.stderr);
    assert!(out.stderr.contains("closed (1001 going away) after 0 of 3 messages"), "{}", out.stderr);
}

#[test]
fn version_after_a_subcommand_is_the_tools_and_logfile_takes_every_log_line() {
    let top = run(ws_args(&["--version"]), b"", T);
    assert_eq!(top.code(), 0);
    for sub in ["echo_server", "gzip", "curl"] {
        let out = run(ws_args(&[sub, "--version"]), b"", T);
        assert_eq!((out.code(), out.stdout.as_str()), (0, top.stdout.as_str()), "{sub}: {}", out.stderr);
    }

    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("ws.log");
    std::fs::write(&log, "old contents\n").unwrap();
    // Before the subcommand (the host passes it on) and after it.
    for args in [
        vec!["--logfile", log.to_str().unwrap(), "dnslookup", "127.0.0.1"],
        vec!["dnslookup", "127.0.0.1", "--logfile", log.to_str().unwrap()],
    ] {
        let out = run(ws_args(&args), b"", T);
        assert_eq!(out.code(), 0, "{}", out.stderr);
        assert_eq!(out.stdout, "", "log lines still on stdout");
        assert_eq!(out.stderr, format!("All logs will be redirected to {}\n", log.display()));
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(!text.contains("old contents") && text.contains("[info] host: 127.0.0.1 ip: 127.0.0.1"), "{text}");
    }
    // A server: its ready line and connection lines go to the file (through its writer
    // thread), nothing to stdout.
    let port = crate::util::free_port();
    let mut server = ws_args(&["echo_server", "--port", &port.to_string(), "--logfile", log.to_str().unwrap()]);
    server.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::null());
    let mut server = KillOnDrop(server.spawn().unwrap());
    crate::util::wait_for_port(port, "echo_server", T);
    let out = run(ws_args(&["connect", &format!("ws://127.0.0.1:{port}")]), b"hello\n", T);
    assert_eq!(out.stdout, "hello\n");
    let deadline = std::time::Instant::now() + T;
    loop {
        let text = std::fs::read_to_string(&log).unwrap();
        // Client 0 was wait_for_port's probe, whose failed handshake is an error line.
        if text.contains("Closed connection: client id 1") {
            assert!(text.lines().next().unwrap().contains("Listening on"), "{text}");
            assert!(text.contains("[error] client 127.0.0.1:"), "{text}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = server.0.kill();
    let mut printed = String::new();
    std::io::Read::read_to_string(server.0.stdout.as_mut().unwrap(), &mut printed).unwrap();
    assert_eq!(printed, "", "the server printed log lines to stdout");
    let out = run(ws_args(&["dnslookup", "x", "--logfile", "/nonexistent/dir/ws.log"]), b"", T);
    assert_eq!(out.code(), 1);
    assert!(out.stderr.contains("cannot open log file /nonexistent/dir/ws.log"), "{}", out.stderr);
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
