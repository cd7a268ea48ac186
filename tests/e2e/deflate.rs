//! permessage-deflate (RFC 7692) against real peers: Python `websockets` and Node `ws` as
//! clients of `ws echo_server` and as servers for `ws` clients, with and without context
//! takeover; `-x` on each side, checked on the handshake bytes; and a compression bomb.
//! (Autobahn's compression cases 12 and 13 are in `autobahn`.)

use std::io::Read;
use std::net::TcpListener;
use std::time::Duration;

use crate::raw::upgrade_with;
use crate::util::{Server, peer_script, run, ws};

const T: Duration = Duration::from_secs(120);

#[test]
fn python_and_node_clients_get_every_size_echoed_compressed_with_and_without_context_takeover() {
    peers_get_everything_echoed(&Server::start("echo_server", &["-q"]));
}

#[test]
fn echo_server_in_frame_mode_echoes_compressed_frames_as_they_are() {
    // With -p the frames go back untouched: the peers' inflaters must still make sense of
    // them, with and without context takeover, fragmented or not.
    peers_get_everything_echoed(&Server::start("echo_server", &["-q", "-p"]));
}

fn peers_get_everything_echoed(server: &Server) {
    for (script, no_takeover) in
        [("deflate_peer.py", false), ("deflate_peer.py", true), ("deflate_peer.js", false), ("deflate_peer.js", true)]
    {
        let mut cmd = peer_script(script);
        cmd.args(["client", &server.url("ws")]);
        if no_takeover {
            cmd.arg("--no-takeover");
        }
        let out = run(cmd, b"", T);
        assert_eq!(out.code(), 0, "{script} no_takeover={no_takeover}: {out:?}");
        let ext = out.stdout.lines().next().unwrap_or("");
        assert!(ext.starts_with("extensions: permessage-deflate"), "{script}: deflate was not negotiated: {ext}");
        if no_takeover && script.ends_with(".py") {
            assert!(ext.contains("server_no_context_takeover") && ext.contains("client_no_context_takeover"), "{ext}");
        }
        assert!(out.stdout.contains("ok 16777216") && out.stdout.contains("all ok"), "{script}: {}", out.stdout);
    }
}

/// `ws bench --deflate` checks every echoed byte; `ws connect -v` shows the negotiated header.
fn ws_clients_against(server: &Server, expect_answer: &str) {
    for size in ["1", "1000", "70000", "16777216"] {
        for binary in [false, true] {
            let mut cmd = ws();
            cmd.args(["bench", &server.url("ws"), "--deflate", "-s", size, "-n", "6", "-w", "2", "--warmup", "0"]);
            if binary {
                cmd.arg("--binary");
            }
            let out = run(cmd, b"", T);
            assert_eq!(out.code(), 0, "bench -s {size} binary={binary}: {out:?}");
            assert!(out.stdout.contains("errors: 0"), "{}", out.stdout);
        }
    }
    let mut cmd = ws();
    cmd.args(["connect", "-v", &server.url("ws")]);
    let out = run(cmd, b"squeeze me\n", T);
    assert_eq!(out.code(), 0, "{out:?}");
    assert_eq!(out.stdout, "squeeze me\n");
    assert!(
        out.stderr.lines().any(|l| l.contains("Sec-Websocket-Extensions: ") && l.contains(expect_answer)),
        "no {expect_answer:?} answer: {}",
        out.stderr
    );
}

#[test]
fn ws_clients_interoperate_with_python_and_node_deflate_servers() {
    let py = Server::start_cmd("py-deflate", peer_script("deflate_peer.py").arg("server"));
    ws_clients_against(&py, "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12");
    let node = Server::start_cmd("node-deflate", peer_script("deflate_peer.js").arg("server"));
    ws_clients_against(&node, "permessage-deflate");
    let node = Server::start_cmd("node-deflate", peer_script("deflate_peer.js").args(["server", "--no-takeover"]));
    ws_clients_against(&node, "client_no_context_takeover");
}

const OFFER: &str = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n";

#[test]
fn echo_server_accepts_an_offer_unless_dash_x() {
    for (args, accepts) in [(&["-q"][..], true), (&["-q", "-x"][..], false)] {
        let server = Server::start("echo_server", args);
        let (_s, head) = upgrade_with(server.addr, OFFER);
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        let answered = head.lines().any(|l| l == "Sec-WebSocket-Extensions: permessage-deflate");
        assert_eq!(answered, accepts, "echo_server {args:?} answered: {head}");
        if !accepts {
            assert!(!head.to_ascii_lowercase().contains("extensions"), "{head}");
        }
    }
}

#[test]
fn clients_offer_deflate_unless_dash_x() {
    let clients =
        [("connect", false), ("connect", true), ("send", false), ("send", true), ("receive", false), ("receive", true)];
    for (client, x) in clients.into_iter().chain([("ping", false), ("chat", false)]) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("ws://{}/", listener.local_addr().unwrap());
        let file = tempfile::NamedTempFile::new().unwrap();
        let mut cmd = ws();
        cmd.args([client, &url]);
        if client == "send" {
            cmd.arg(file.path());
        }
        if client == "chat" {
            cmd.arg("someone");
        }
        if x {
            cmd.arg("-x");
        }
        cmd.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
        let mut child = cmd.spawn().unwrap();
        listener.set_nonblocking(false).unwrap();
        let (mut sock, _) = listener.accept().unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && sock.read(&mut b).unwrap_or(0) == 1 {
            head.push(b[0]);
        }
        let _ = child.kill();
        let _ = child.wait();
        let head = String::from_utf8_lossy(&head).into_owned();
        assert!(head.starts_with("GET /"), "{client}: {head}");
        let offers = head.lines().any(|l| l.starts_with("Sec-WebSocket-Extensions: permessage-deflate"));
        assert_eq!(offers, !x, "{client} -x={x} sent: {head}");
        if x {
            assert!(!head.to_ascii_lowercase().contains("extensions"), "{head}");
        }
    }
}

#[test]
fn a_compression_bomb_is_refused_with_1009_before_it_is_inflated() {
    // 1 GiB of zeros in ~1 MB. The inflated size counts against the limit as it grows, so the
    // server stops at 16 MiB (the limit given) instead of holding the gigabyte.
    let mut server = Server::start("echo_server", &["-q", "--max-message-size", "16777216"]);
    let mut cmd = peer_script("deflate_bomb.py");
    cmd.arg(server.addr.to_string());
    let out = run(cmd, b"", T);
    assert_eq!(out.code(), 0, "{out:?}");
    assert!(out.stdout.contains("extensions: permessage-deflate"), "{}", out.stdout);
    assert!(out.stdout.lines().any(|l| l == "close 1009"), "{}", out.stdout);
    // tungstenite holds the message up to the limit; the deflate layer holds no more than a
    // few 16 KiB frames of it (before it inflated a whole piece at once: 38 MB here).
    let peak = server.peak_rss_kib();
    assert!(peak < 32 * 1024, "echo_server peaked at {peak} KiB for a 1 GiB bomb");
    assert!(server.is_running());
    // Data that is not deflate at all: 1002, and the reason says so (not tungstenite's word
    // for the frame the layer handed it to refuse).
    let mut cmd = peer_script("deflate_bomb.py");
    cmd.args([&server.addr.to_string(), "--garbage"]);
    let out = run(cmd, b"", T);
    assert!(out.stdout.lines().any(|l| l == "close 1002"), "{}", out.stdout);
    assert!(out.stdout.contains("reason protocol error: invalid compressed data"), "{}", out.stdout);
    // And it still serves.
    let mut cmd = peer_script("deflate_peer.py");
    cmd.args(["client", &server.url("ws"), "--no-takeover"]);
    // (16 MiB messages are at the limit: the peer's last size is refused, the rest pass.)
    let out = run(cmd, b"", T);
    assert!(out.stdout.contains("ok 1048576"), "{out:?}");
}

#[test]
fn broadcast_server_sends_each_message_compressed_once_to_every_kind_of_receiver() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let server = Server::start("broadcast_server", &["-q"]);
    let lines = ["short", &"a JSON-ish line {\"k\":1} ".repeat(4000), "ünïcode after a long one"];
    let start = |cmd: &mut std::process::Command| {
        let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        (
            child,
            std::iter::from_fn(move || {
                let mut l = String::new();
                (out.read_line(&mut l).ok()? > 0).then(|| l.trim_end_matches('\n').to_string())
            }),
        )
    };
    // Two Python receivers with deflate (both get the same compressed frames) and a `ws
    // connect -x` receiver without it.
    let mut receivers = Vec::new();
    for _ in 0..2 {
        let (child, mut out) = start(peer_script("deflate_peer.py").args(["receive", &server.url("ws"), "3"]));
        let ext = out.next().unwrap_or_default();
        assert!(ext.contains("permessage-deflate") && ext.contains("server_no_context_takeover"), "{ext}");
        assert_eq!(out.next().as_deref(), Some("ready"));
        receivers.push((child, Box::new(out) as Box<dyn Iterator<Item = String>>));
    }
    let mut plain = ws();
    let (plain_child, plain_out) = start(plain.args(["connect", "-x", "--max-messages", "3", &server.url("ws")]));
    std::thread::sleep(Duration::from_millis(300));
    let mut sender = ws();
    sender.args(["connect", &server.url("ws")]);
    let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let out = run(sender, input.as_bytes(), T);
    assert_eq!(out.code(), 0, "{out:?}");
    let expect: Vec<String> = lines
        .iter()
        .map(|l| {
            use std::fmt::Write;
            let digest = sha1_hex(l.as_bytes());
            let mut s = String::new();
            write!(s, "text {} {digest}", l.len()).unwrap();
            s
        })
        .collect();
    for (mut child, out) in receivers {
        let got: Vec<String> = out.take(3).collect();
        assert_eq!(got, expect);
        let _ = child.wait();
    }
    let got: Vec<String> = plain_out.take(3).collect();
    assert_eq!(got, lines.iter().map(|l| l.to_string()).collect::<Vec<_>>());
    let mut plain_child = plain_child;
    let _ = plain_child.kill();
    let _ = plain_child.wait();
}

fn sha1_hex(data: &[u8]) -> String {
    let mut cmd = std::process::Command::new("sha1sum");
    cmd.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), data).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or("").to_string()
}

#[test]
fn a_server_answer_the_client_did_not_allow_fails_the_handshake_with_one_line() {
    use std::io::Write;
    for (answer, why) in [
        ("permessage-deflate; mystery=1", "invalid parameters"),
        ("permessage-deflate; client_max_window_bits", "invalid parameters"),
        ("x-webkit-deflate-frame", "not offered"),
    ] {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("ws://{}/", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let (mut sock, _) = listener.accept().unwrap();
            sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut head = Vec::new();
            let mut b = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && sock.read(&mut b).unwrap_or(0) == 1 {
                head.push(b[0]);
            }
            let head = String::from_utf8_lossy(&head).into_owned();
            let key =
                head.lines().find_map(|l| l.strip_prefix("Sec-WebSocket-Key: ")).unwrap_or_default().trim().to_string();
            let accept = std::process::Command::new(crate::util::python())
                .args([
                    "-c",
                    "import base64, hashlib, sys; print(base64.b64encode(hashlib.sha1(\
                     (sys.argv[1] + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').encode()).digest()).decode())",
                    &key,
                ])
                .output()
                .unwrap();
            let accept = String::from_utf8_lossy(&accept.stdout).trim().to_string();
            let _ = write!(
                sock,
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Extensions: {answer}\r\n\r\n"
            );
            std::thread::sleep(Duration::from_millis(500));
        });
        let mut cmd = ws();
        cmd.args(["connect", "-d", &url]);
        let out = run(cmd, b"", T);
        server.join().unwrap();
        assert_eq!(out.code(), 1, "{answer}: {out:?}");
        assert_eq!(out.stderr.lines().count(), 1, "one line: {}", out.stderr);
        assert!(out.stderr.contains(why), "{answer}: {}", out.stderr);
    }
}

#[test]
fn transfer_relays_compressed_frames_as_they_are_and_inflates_them_for_the_rest() {
    use crate::util::Interactive;
    let server = Server::start("transfer", &[]);
    let url = server.url("ws");
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let file = src.path().join("notes.txt");
    let text: String = (0..20_000).map(|i| format!("{{\"line\":{i},\"note\":\"compressible\"}}\n")).collect();
    std::fs::write(&file, &text).unwrap();
    // A raw receiver that agreed deflate (it sees whether frames came compressed), one that
    // allows the server only a 512-byte window (smaller than the sender's), one without
    // deflate, and `ws receive`, which saves the file and acknowledges it.
    let raw = Interactive::start("raw", peer_script("deflate_peer.py").args(["receive-raw", &url, "1"]));
    let small = Interactive::start(
        "small-window",
        peer_script("deflate_peer.py").args(["receive", &url, "1", "--server-window", "9"]),
    );
    let plain = Interactive::start("plain", peer_script("deflate_peer.py").args(["receive", &url, "1", "--plain"]));
    for r in [&raw, &small, &plain] {
        r.wait_for_lines("ready", 1, T);
    }
    // `ws receive` with deflate (it inflates the frames itself) and with -x (the relay does).
    let dst_x = tempfile::tempdir().unwrap();
    let receive =
        Interactive::start("receive", ws().args(["receive", &url, "--save-dir", dst.path().to_str().unwrap()]));
    receive.wait_for_lines("ws_receive: Waiting for message...", 1, T);
    let receive_x = Interactive::start(
        "receive-x",
        ws().args(["receive", "-x", &url, "--save-dir", dst_x.path().to_str().unwrap()]),
    );
    receive_x.wait_for_lines("ws_receive: Waiting for message...", 1, T);
    server.wait_for_line("id: 4", T);
    let mut send = ws();
    send.args(["send", &url, file.to_str().unwrap()]);
    let out = run(send, b"", T);
    assert_eq!(out.code(), 0, "{out:?}");
    assert!(receive.finish(T).success());
    assert!(receive_x.finish(T).success());
    assert_eq!(std::fs::read_to_string(dst.path().join("notes.txt")).unwrap(), text);
    assert_eq!(std::fs::read_to_string(dst_x.path().join("notes.txt")).unwrap(), text);
    let line = |r: &Interactive| r.wait_for_lines("binary ", 1, T).remove(0);
    let raw_line = line(&raw);
    assert!(raw_line.ends_with("rsv1 True"), "the frames were not relayed compressed: {raw_line}");
    let message = raw_line.trim_end_matches(" rsv1 True").to_string();
    assert!(raw.output().iter().any(|l| l.contains("server_no_context_takeover")), "{:?}", raw.output());
    assert!(small.output().iter().any(|l| l.contains("server_max_window_bits=9")), "{:?}", small.output());
    assert_eq!(line(&small), message, "inflated for the small window");
    assert_eq!(line(&plain), message, "inflated for the receiver without deflate");
}

#[test]
fn send_sends_a_file_that_does_not_compress_uncompressed() {
    use crate::util::Interactive;
    let server = Server::start("transfer", &[]);
    let url = server.url("ws");
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let file = crate::transfer::random_file(src.path(), "noise.bin", 1_000_000);
    let noise = std::fs::read(&file).unwrap();
    let raw = Interactive::start("raw", peer_script("deflate_peer.py").args(["receive-raw", &url, "1"]));
    raw.wait_for_lines("ready", 1, T);
    assert!(raw.output().iter().any(|l| l.contains("permessage-deflate")), "{:?}", raw.output());
    let receive =
        Interactive::start("receive", ws().args(["receive", &url, "--save-dir", dst.path().to_str().unwrap()]));
    receive.wait_for_lines("ws_receive: Waiting for message...", 1, T);
    server.wait_for_line("id: 1", T);
    let mut send = ws();
    send.args(["send", &url, file.to_str().unwrap()]);
    let out = run(send, b"", T);
    assert_eq!(out.code(), 0, "{out:?}");
    assert!(receive.finish(T).success());
    assert!(std::fs::read(dst.path().join("noise.bin")).unwrap() == noise);
    let line = raw.wait_for_lines("binary ", 1, T).remove(0);
    assert!(line.ends_with("rsv1 False"), "random bytes went compressed: {line}");
}
