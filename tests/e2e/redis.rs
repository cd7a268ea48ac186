//! Scale-out through a real `redis-server` (installed by scripts/peers.sh, started here on a
//! free loopback port): two `ws broadcast_server`s share their rooms, survive Redis going
//! away, and keep rooms apart; two `ws transfer` relays pass a file across.

use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::util::{Interactive, Server, certs, free_port, peer_script, run, ws};

const T: Duration = Duration::from_secs(20);

/// A `redis-server` on 127.0.0.1 with persistence off, killed on Drop.
pub(crate) struct Redis {
    child: Option<Child>,
    pub(crate) port: u16,
    /// TLS with this certificate (`server`: signed by the test CA, clients must present a
    /// certificate; `self`: self-signed, no client certificate asked).
    tls: Option<&'static str>,
}

impl Redis {
    pub(crate) fn start() -> Redis {
        let mut r = Redis { child: None, port: free_port(), tls: None };
        r.restart();
        r
    }

    /// TLS only, with client certificates required (signed by the test CA).
    fn start_tls() -> Redis {
        let mut r = Redis { child: None, port: free_port(), tls: Some("server") };
        r.restart();
        r
    }

    /// TLS only, with a self-signed certificate made the usual way (CA:TRUE).
    fn start_self_signed() -> Redis {
        let mut r = Redis { child: None, port: free_port(), tls: Some("self") };
        r.restart();
        r
    }

    fn url(&self) -> String {
        format!("{}://127.0.0.1:{}", if self.tls.is_some() { "rediss" } else { "redis" }, self.port)
    }

    /// (Re)starts the server on the same port and waits until it accepts connections.
    fn restart(&mut self) {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
        if let Some(cert) = self.tls {
            let c = certs();
            let clients = if cert == "server" { "yes" } else { "no" };
            cmd.args(["--port", "0", "--tls-port", &self.port.to_string(), "--tls-auth-clients", clients]);
            cmd.args([
                "--tls-cert-file",
                &c.path(&format!("{cert}.crt")),
                "--tls-key-file",
                &c.path(&format!("{cert}.key")),
            ]);
            cmd.args(["--tls-ca-cert-file", &c.path("ca.crt")]);
        } else {
            cmd.args(["--port", &self.port.to_string()]);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("redis-server is missing: scripts/peers.sh installs it");
        self.child = Some(child);
        crate::util::wait_for_port(self.port, "redis-server", T);
    }

    /// Kills the server the hard way: no goodbye to its clients beyond the closed sockets.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

fn broadcast(redis: &Redis) -> Server {
    Server::start("broadcast_server", &["--redis", &redis.url()])
}

fn chat(url: &str, user: &str) -> Interactive {
    let c = Interactive::start(user, ws().args(["chat", url, user]));
    c.wait_for_lines(&format!("ws chat: user {user} connected !"), 1, T);
    c
}

/// The texts `client` printed from `user`, in order.
fn lines_from(client: &Interactive, user: &str) -> Vec<String> {
    let prefix = format!("{user}(");
    client
        .output()
        .iter()
        .filter(|l| l.starts_with(&prefix))
        .map(|l| l.split(" > ").nth(1).unwrap_or_default().to_string())
        .collect()
}

/// Waits for `want` from `user` at `client`, then checks nothing more came (exactly once).
fn expect_exactly(client: &Interactive, name: &str, user: &str, want: &[String]) {
    let deadline = Instant::now() + T;
    while lines_from(client, user).len() < want.len() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    // A duplicate would follow within moments on loopback.
    thread::sleep(Duration::from_millis(300));
    assert_eq!(lines_from(client, user), want, "{name} got {user}'s lines wrong: {:#?}", client.output());
}

#[test]
fn two_servers_share_a_room_every_message_reaches_every_other_client_once() {
    let redis = Redis::start();
    let (a, b) = (broadcast(&redis), broadcast(&redis));
    let mut alice = chat(&a.url("ws"), "alice");
    let mut bob = chat(&b.url("ws"), "bob");
    let mut py = Interactive::start("py", peer_script("chat_peer.py").args([&b.url("ws"), "py", "6"]));
    py.wait_for_lines("ready", 1, T);
    a.wait_for_line("redis: subscribed to ws:broadcast", T);
    b.wait_for_line("redis: subscribed to ws:broadcast", T);
    b.wait_for_line("id: 1", T);
    let said = |who: &str| (0..3).map(|i| format!("{who} {i}")).collect::<Vec<_>>();
    for i in 0..3 {
        alice.send_line(&format!("alice {i}"));
        bob.send_line(&format!("bob {i}"));
        py.send_line(&format!("py {i}"));
    }
    expect_exactly(&alice, "alice", "bob", &said("bob"));
    expect_exactly(&alice, "alice", "py", &said("py"));
    expect_exactly(&bob, "bob", "alice", &said("alice"));
    expect_exactly(&bob, "bob", "py", &said("py"));
    expect_exactly(&py, "py", "alice", &said("alice"));
    expect_exactly(&py, "py", "bob", &said("bob"));
    assert!(lines_from(&alice, "alice").is_empty() && lines_from(&bob, "bob").is_empty(), "echoed to the sender");
    assert!(py.finish(T).success());
    assert!(alice.finish(T).success() && bob.finish(T).success());
}

#[test]
fn servers_survive_redis_restarting_and_resume_while_clients_stay_connected() {
    let mut redis = Redis::start();
    let (a, b) = (broadcast(&redis), broadcast(&redis));
    let (mut alice, carol) = (chat(&a.url("ws"), "alice"), chat(&a.url("ws"), "carol"));
    let mut bob = chat(&b.url("ws"), "bob");
    a.wait_for_line("redis: subscribed", T);
    b.wait_for_line("redis: subscribed", T);
    a.wait_for_line("id: 1", T);
    alice.send_line("before");
    expect_exactly(&bob, "bob", "alice", &["before".to_string()]);

    redis.kill();
    a.wait_for_line("redis: connection to", T);
    b.wait_for_line("redis: connection to", T);
    // Local clients are still served, and what is sent now is dropped for remote ones.
    alice.send_line("during");
    carol.wait_for_lines("alice(", 2, T);

    redis.restart();
    for s in [&a, &b] {
        s.wait_for_line("redis: connection restored", T);
        let deadline = Instant::now() + T;
        while s.output().iter().filter(|l| l.contains("redis: subscribed to ws:broadcast")).count() < 2 {
            assert!(Instant::now() < deadline, "never resubscribed: {:#?}", s.output());
            thread::sleep(Duration::from_millis(10));
        }
    }
    let restored = a.wait_for_line("redis: connection restored", T);
    assert!(restored.contains("1 messages from local clients were dropped"), "{restored}");
    alice.send_line("after");
    bob.send_line("bob after");
    expect_exactly(&bob, "bob", "alice", &["before".to_string(), "after".to_string()]);
    expect_exactly(&alice, "alice", "bob", &["bob after".to_string()]);
    expect_exactly(&carol, "carol", "bob", &["bob after".to_string()]);
    for c in [alice, bob, carol] {
        assert!(c.finish(T).success(), "a client lost its connection");
    }
}

#[test]
fn two_rooms_on_the_same_servers_do_not_see_each_others_messages() {
    let redis = Redis::start();
    let (a, b) = (broadcast(&redis), broadcast(&redis));
    let mut red_a = chat(&format!("{}/room/red", a.url("ws")), "red_a");
    let red_b = chat(&format!("{}/room/red", b.url("ws")), "red_b");
    let mut blue_a = chat(&format!("{}/room/blue", a.url("ws")), "blue_a");
    let blue_b = chat(&format!("{}/room/blue", b.url("ws")), "blue_b");
    for s in [&a, &b] {
        s.wait_for_line("redis: subscribed to ws:room:red", T);
        s.wait_for_line("redis: subscribed to ws:room:blue", T);
    }
    red_a.send_line("red news");
    blue_a.send_line("blue news");
    expect_exactly(&red_b, "red_b", "red_a", &["red news".to_string()]);
    expect_exactly(&blue_b, "blue_b", "blue_a", &["blue news".to_string()]);
    assert!(lines_from(&red_b, "blue_a").is_empty(), "red room saw blue: {:#?}", red_b.output());
    assert!(lines_from(&blue_b, "red_a").is_empty(), "blue room saw red: {:#?}", blue_b.output());
    assert!(lines_from(&red_a, "blue_a").is_empty() && lines_from(&blue_a, "red_a").is_empty());
    drop((red_a, blue_a));
    // The last local client out unsubscribes.
    a.wait_for_line("redis: unsubscribed from ws:room:red", T);
}

#[test]
fn a_file_sent_to_one_transfer_relay_is_received_from_another() {
    let redis = Redis::start();
    let a = Server::start("transfer", &["--redis", &redis.url()]);
    let b = Server::start("transfer", &["--redis", &redis.url()]);
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let file = src.path().join("across.bin");
    std::fs::write(&file, &data).unwrap();
    let r =
        Interactive::start("receive", ws().args(["receive", &b.url("ws"), "--save-dir", dst.path().to_str().unwrap()]));
    r.wait_for_lines("ws_receive: Waiting for message...", 1, T);
    b.wait_for_line("redis: subscribed to ws:broadcast", T);
    let mut send = ws();
    send.args(["send", &a.url("ws"), file.to_str().unwrap()]);
    let out = run(send, b"", T);
    assert_eq!(out.code(), 0, "send failed: {out:?}");
    assert!(r.finish(T).success(), "receive failed");
    assert!(std::fs::read(dst.path().join("across.bin")).unwrap() == data, "received bytes differ");
}

#[test]
fn redis_down_at_start_is_one_clear_line_and_exit_1() {
    let port = free_port();
    let mut cmd = ws();
    cmd.args(["broadcast_server", "--port", "0", "--redis", &format!("redis://127.0.0.1:{port}")]);
    let out = run(cmd, b"", T);
    assert_eq!(out.code(), 1, "{out:?}");
    let err: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(err.len(), 1, "{err:?}");
    assert!(err[0].contains("cannot connect to Redis at redis://127.0.0.1:") && err[0].contains("refused"), "{err:?}");
    assert!(!out.stdout.contains("Listening on"), "listened anyway: {}", out.stdout);
}

#[test]
fn rediss_with_a_client_certificate_carries_the_room_and_an_unknown_ca_is_refused() {
    let redis = Redis::start_tls();
    let c = certs();
    let (ca, cert, key) = (c.path("ca.crt"), c.path("client.crt"), c.path("client.key"));
    let tls = ["--redis", &redis.url(), "--redis-ca-file", &ca, "--redis-cert-file", &cert, "--redis-key-file", &key];
    let (a, b) = (Server::start("broadcast_server", &tls), Server::start("broadcast_server", &tls));
    let mut alice = chat(&a.url("ws"), "alice");
    let bob = chat(&b.url("ws"), "bob");
    a.wait_for_line("redis: subscribed", T);
    b.wait_for_line("redis: subscribed", T);
    alice.send_line("over TLS");
    expect_exactly(&bob, "bob", "alice", &["over TLS".to_string()]);

    // Without the test CA the server's certificate is not trusted: one line, exit 1.
    let mut cmd = ws();
    cmd.args(["broadcast_server", "--port", "0", "--redis", &redis.url()]);
    let out = run(cmd, b"", T);
    assert_eq!(out.code(), 1, "{out:?}");
    assert!(out.stderr.contains("cannot connect to Redis") && out.stderr.contains("unknown issuer"), "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
}

/// Issue 25.11: a self-signed Redis certificate given as the CA is trusted, as by curl and
/// redis-cli (the redis crate's own TLS refused it: CaUsedAsEndEntity).
#[test]
fn rediss_trusts_a_self_signed_certificate_given_as_the_ca() {
    let redis = Redis::start_self_signed();
    let tls = ["--redis", &redis.url(), "--redis-ca-file", &certs().path("self.crt")];
    let (a, b) = (Server::start("broadcast_server", &tls), Server::start("broadcast_server", &tls));
    let mut alice = chat(&a.url("ws"), "alice");
    let bob = chat(&b.url("ws"), "bob");
    a.wait_for_line("redis: subscribed", T);
    b.wait_for_line("redis: subscribed", T);
    alice.send_line("self-signed and trusted");
    expect_exactly(&bob, "bob", "alice", &["self-signed and trusted".to_string()]);
}

/// Issue 22: --channel names the default room's channel (anything published there reaches
/// the clients), and binary messages cross Redis as binary.
#[test]
fn a_named_channel_and_binary_messages_cross_redis() {
    let redis = Redis::start();
    let args = ["--redis", &redis.url(), "--channel", "custom:room"];
    let (a, b) = (Server::start("broadcast_server", &args), Server::start("broadcast_server", &args));
    let mut probe = peer_script("probe_client.py");
    probe.args([&b.url("ws"), "--expect", "2"]);
    let receiver = Interactive::start("probe", &mut probe);
    b.wait_for_line("redis: subscribed", T);
    let publish = Command::new("redis-cli")
        .args(["-p", &redis.port.to_string(), "publish", "custom:room", "hello-from-redis"])
        .output()
        .expect("redis-cli");
    assert!(publish.status.success());
    receiver.wait_for_lines("recv text 16 hello-from-redis", 1, T);
    let mut sender = peer_script("probe_client.py");
    sender.args([&a.url("ws"), "--send-size", "10", "--expect", "0"]);
    let _ = run(sender, b"", T);
    receiver.wait_for_lines("recv binary 10", 1, T);
}
