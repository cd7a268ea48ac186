//! `ws broadcast_server` and `ws chat`, with Python and Node chat peers in the same room,
//! and a stuck client that must not hold up anyone.

use std::time::Duration;

use crate::raw::RawWs;
use crate::util::{Interactive, Server, peer_script, run, ws};

const T: Duration = Duration::from_secs(20);

fn chat(server: &Server, user: &str) -> Interactive {
    let c = Interactive::start(user, ws().args(["chat", &server.url("ws"), user]));
    c.wait_for_lines(&format!("ws chat: user {user} connected !"), 1, T);
    c
}

#[test]
fn three_chat_clients_each_get_the_others_lines_exactly_once_in_order() {
    let server = Server::start("broadcast_server", &[]);
    let mut clients: Vec<Interactive> = ["alice", "bob", "carol"].iter().map(|u| chat(&server, u)).collect();
    // Wait until the server registered all three before anyone talks.
    for id in 0..3 {
        server.wait_for_line(&format!("id: {id}"), T);
    }
    let users = ["alice", "bob", "carol"];
    for round in 0..5 {
        for (i, c) in clients.iter_mut().enumerate() {
            c.send_line(&format!("line {round} from {}", users[i]));
        }
    }
    for (i, c) in clients.iter().enumerate() {
        // 2 other users × 5 lines each.
        let got = c.wait_for_lines(" bytes) > line ", 10, T);
        for (j, other) in users.iter().enumerate() {
            let from_other: Vec<&String> = got.iter().filter(|l| l.starts_with(&format!("{other}("))).collect();
            if i == j {
                assert!(from_other.is_empty(), "{} got its own lines back: {from_other:?}", users[i]);
                continue;
            }
            let texts: Vec<String> =
                from_other.iter().map(|l| l.split(" > ").nth(1).unwrap_or_default().to_string()).collect();
            let want: Vec<String> = (0..5).map(|r| format!("line {r} from {other}")).collect();
            assert_eq!(texts, want, "{} saw {other}'s lines out of order or more than once", users[i]);
        }
    }
    // The exact wire size of the reference's chat PDU shows in the output.
    let line = clients[1].wait_for_lines("alice(", 1, T).remove(0);
    assert_eq!(line, format!("alice({} bytes) > line 0 from alice", ws_pdu_len("alice", "line 0 from alice")));
    for c in clients {
        assert!(c.finish(T).success());
    }
}

/// Issue 18: with `--threads 4`, three `ws chat` clients on three different workers (each
/// kept only once the server logged a worker none of the others has) get each other's lines
/// exactly once and in order: rooms span workers.
#[test]
fn chat_clients_on_different_workers_share_their_room_exactly_once_in_order() {
    let server = Server::start("broadcast_server", &["--threads", "4"]);
    let users = ["alice", "bob", "carol"];
    let mut kept: Vec<(Interactive, String)> = Vec::new();
    let mut tries = 0;
    while kept.len() < 3 {
        tries += 1;
        assert!(tries < 60, "60 connections never landed on three workers");
        let before = server.output().iter().filter(|l| l.contains("[info] worker: ")).count();
        let user = users[kept.len()];
        let c = chat(&server, user);
        let worker = loop {
            let lines: Vec<String> = server.output().into_iter().filter(|l| l.contains("[info] worker: ")).collect();
            if lines.len() > before {
                break lines[before].split("worker: ").nth(1).unwrap_or_default().to_string();
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        if kept.iter().any(|(_, w)| *w == worker) {
            assert!(c.finish(T).success());
            continue;
        }
        kept.push((c, worker));
    }
    // Every client that left is gone before anyone talks.
    let opened = server.output().iter().filter(|l| l.contains("[info] worker: ")).count();
    let deadline = std::time::Instant::now() + T;
    while server.output().iter().filter(|l| l.contains("Closed connection")).count() < opened - 3 {
        assert!(std::time::Instant::now() < deadline, "the extra clients never left");
        std::thread::sleep(Duration::from_millis(10));
    }
    const LINES: usize = 40;
    for round in 0..LINES {
        for (i, (c, _)) in kept.iter_mut().enumerate() {
            c.send_line(&format!("line {round} from {}", users[i]));
        }
    }
    for (i, (c, worker)) in kept.iter().enumerate() {
        let got = c.wait_for_lines(" bytes) > line ", 2 * LINES, T);
        for (j, other) in users.iter().enumerate() {
            let texts: Vec<String> = got
                .iter()
                .filter(|l| l.starts_with(&format!("{other}(")))
                .map(|l| l.split(" > ").nth(1).unwrap_or_default().to_string())
                .collect();
            let want: Vec<String> =
                if i == j { Vec::new() } else { (0..LINES).map(|r| format!("line {r} from {other}")).collect() };
            assert_eq!(texts, want, "{} (worker {worker}) got {other}'s lines wrong", users[i]);
        }
    }
    // Nothing more arrives (no second copy from another worker).
    std::thread::sleep(Duration::from_millis(300));
    for (c, _) in &kept {
        assert_eq!(c.output().iter().filter(|l| l.contains(" bytes) > line ")).count(), 2 * LINES);
    }
    for (c, _) in kept {
        assert!(c.finish(T).success());
    }
}

/// `text <hex>\nuser <hex>\n`
fn ws_pdu_len(user: &str, text: &str) -> usize {
    "text \n".len() + 2 * text.len() + "user \n".len() + 2 * user.len()
}

#[test]
fn python_and_node_chat_peers_share_a_room_with_ws_chat_both_ways() {
    let server = Server::start("broadcast_server", &[]);
    let mut alice = chat(&server, "alice");
    let mut py = Interactive::start("py", peer_script("chat_peer.py").args([&server.url("ws"), "py", "2"]));
    let mut node = Interactive::start("node", peer_script("chat_peer.js").args([&server.url("ws"), "node", "2"]));
    py.wait_for_lines("ready", 1, T);
    node.wait_for_lines("ready", 1, T);
    server.wait_for_line("id: 2", T);
    alice.send_line("hello from rust");
    py.send_line("hello from python");
    node.send_line("hello from node");
    alice.wait_for_lines("py(", 1, T);
    alice.wait_for_lines("node(", 1, T);
    for peer in [&py, &node] {
        let got = peer.wait_for_lines("alice(", 1, T);
        assert_eq!(got[0], format!("alice({} bytes) > hello from rust", ws_pdu_len("alice", "hello from rust")));
    }
    py.wait_for_lines("node(", 1, T);
    node.wait_for_lines("py(", 1, T);
    let want = format!("py({} bytes) > hello from python", ws_pdu_len("py", "hello from python"));
    assert!(alice.output().contains(&want), "{:?}", alice.output());
    assert!(py.finish(T).success());
    assert!(node.finish(T).success());
    assert!(alice.finish(T).success());
}

#[test]
fn a_malformed_message_is_reported_and_skipped_by_chat() {
    let server = Server::start("broadcast_server", &[]);
    let alice = chat(&server, "alice");
    server.wait_for_line("id: 0", T);
    let mut raw = RawWs::connect(server.addr);
    server.wait_for_line("id: 1", T);
    raw.send_frame(0x82, b"this is not a pdu\n");
    raw.send_frame(0x82, b"text 6869\nuser 626f62\n");
    alice.wait_for_lines("bob(22 bytes) > hi", 1, T);
    let err = alice.wait_for_lines("skipping a malformed message", 1, T);
    assert!(err[0].contains("18 bytes"), "{err:?}");
    assert!(alice.finish(T).success());
}

#[test]
fn a_stuck_client_is_closed_and_never_slows_the_others() {
    // A client that never reads; 10,000 messages of 4 KiB (40 MB, more than any socket
    // buffer) go through the room to two real receivers.
    let server = Server::start("broadcast_server", &["--max-queue-bytes", "262144"]);
    let _stuck = RawWs::connect(server.addr);
    server.wait_for_line("id: 0", T);
    let mut bench = ws();
    bench.args(["bench", &server.url("ws"), "--mode", "fanout", "-c", "2", "-n", "10000", "-s", "4096", "--binary"]);
    let out = run(bench, b"", Duration::from_secs(60));
    assert_eq!(out.code(), 0, "the receivers did not get every message: {out:?}");
    let line = server.wait_for_line("closing client id 0: Slow consumer", T);
    assert!(line.contains("outgoing queue full"), "{line}");
    server.wait_for_line("Closed connection: client id 0 code 1008", T);
    let hwm_kib = server.peak_rss_kib();
    assert!(hwm_kib < 64 * 1024, "server peak RSS {hwm_kib} KiB: memory was not bounded");
}

/// Issue 22: broadcast_server's other limits: --max-queue-messages (a client that does not
/// read is closed 1008 by count, not only by bytes), 1009 over --max-message-size, 503 over
/// --max-connections, and the room over wss with a Python client.
#[test]
fn queue_count_message_size_connection_limits_and_tls() {
    let server = Server::start("broadcast_server", &["--max-queue-messages", "100", "--max-message-size", "1000"]);
    let _stuck = RawWs::connect(server.addr);
    server.wait_for_line("id: 0", T);
    let mut bench = ws();
    bench.args(["bench", &server.url("ws"), "--mode", "fanout", "-c", "1", "-n", "1000000", "-s", "16"]);
    assert_eq!(run(bench, b"", T).code(), 0);
    let line = server.wait_for_line("closing client id 0: Slow consumer", T);
    let queued: usize = line
        .split("queue full (")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {line}"));
    assert!(queued <= 101, "closed by the message count, not the bytes: {line}");
    let mut probe = peer_script("probe_client.py");
    probe.args([&server.url("ws"), "--send-size", "2000"]);
    let out = run(probe, b"", T);
    assert!(out.stdout.contains("closed 1009"), "{out:?}");

    let limited = Server::start("broadcast_server", &["--max-connections", "1"]);
    let _first = RawWs::connect(limited.addr);
    limited.wait_for_line("id: 0", T);
    let mut probe = peer_script("probe_client.py");
    probe.arg(limited.url("ws"));
    let out = run(probe, b"", T);
    assert!(out.stderr.contains("503") || out.stdout.contains("503"), "{out:?}");

    let c = crate::util::certs();
    let (crt, key, ca) = (c.path("server.crt"), c.path("server.key"), c.path("ca.crt"));
    let secure = Server::start("broadcast_server", &["--tls", "--cert-file", &crt, "--key-file", &key]);
    let url = format!("wss://localhost:{}", secure.addr.port());
    let alice = Interactive::start("alice", ws().args(["chat", "--ca-file", &ca, &url, "alice"]));
    alice.wait_for_lines("ws chat: user alice connected !", 1, T);
    let mut bob = Interactive::start("bob", ws().args(["chat", "--ca-file", &ca, &url, "bob"]));
    bob.wait_for_lines("ws chat: user bob connected !", 1, T);
    secure.wait_for_line("id: 1", T);
    bob.send_line("over wss");
    alice.wait_for_lines("over wss", 1, T);
}
