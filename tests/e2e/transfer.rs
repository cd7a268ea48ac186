//! `ws send` → `ws transfer` → `ws receive`, the port of the reference's test_ws.sh, plus
//! interop with a Python peer speaking the reference's PDU, and the faults.

use std::path::Path;
use std::time::Duration;

use crate::util::{Interactive, Server, certs, peer_script, run, ws};

const T: Duration = Duration::from_secs(60);

pub(crate) fn random_file(dir: &Path, name: &str, size: usize) -> std::path::PathBuf {
    let mut state: u64 = size as u64 ^ 0x9e37_79b9_7f4a_7c15;
    let data: Vec<u8> = (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

/// Starts `ws receive` into `dir` and waits until it is connected and the relay knows it.
fn receiver(server: &Server, url: &str, dir: &Path, extra: &[&str], nth_client: usize) -> Interactive {
    let r = Interactive::start("receive", ws().args(["receive", url, "--save-dir", dir.to_str().unwrap()]).args(extra));
    r.wait_for_lines("ws_receive: Waiting for message...", 1, T);
    server.wait_for_line(&format!("id: {nth_client}"), T);
    r
}

fn send(url: &str, path: &Path, extra: &[&str]) -> crate::util::Output {
    let mut cmd = ws();
    cmd.args(["send", url, path.to_str().unwrap()]).args(extra);
    run(cmd, b"", T)
}

fn transfer_and_compare(server: &Server, url: &str, tls_args: &[&str], size: usize, name: &str) {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let file = random_file(src.path(), name, size);
    let n = server.output().iter().filter(|l| l.contains("New connection")).count();
    let r = receiver(server, url, dst.path(), tls_args, n);
    let out = send(url, &file, tls_args);
    assert_eq!(out.code(), 0, "send failed: {out:?}");
    assert!(r.finish(T).success(), "receive failed");
    let got = std::fs::read(dst.path().join(name)).unwrap();
    assert!(got == std::fs::read(&file).unwrap(), "{name}: received bytes differ");
    // Issue 25.7: the mode a file made the ordinary way gets (0666 less the umask), as cp's,
    // not the temporary file's 0600.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let plain = dst.path().join(".plain");
    std::fs::write(&plain, "").unwrap();
    assert_eq!(format!("{:o}", mode(&dst.path().join(name))), format!("{:o}", mode(&plain)), "{name}'s mode");
    std::fs::remove_file(plain).unwrap();
    let leftovers: Vec<_> =
        std::fs::read_dir(dst.path()).unwrap().filter_map(Result::ok).map(|e| e.file_name()).collect();
    assert_eq!(leftovers.len(), 1, "temporary files left behind: {leftovers:?}");
}

#[test]
fn a_20_mb_file_and_empty_and_one_byte_files_arrive_intact_over_ws() {
    let server = Server::start("transfer", &[]);
    let url = server.url("ws");
    transfer_and_compare(&server, &url, &[], 20_000_000, "big.bin");
    transfer_and_compare(&server, &url, &[], 0, "empty");
    transfer_and_compare(&server, &url, &[], 1, "one byte.txt");
    server.wait_for_line("received 40000164 bytes, relayed to 1 clients", T);
}

#[test]
fn a_20_mb_file_arrives_intact_over_wss() {
    let c = certs();
    let server = Server::start(
        "transfer",
        &["--tls", "--cert-file", &c.path("server.crt"), "--key-file", &c.path("server.key")],
    );
    let ca = c.path("ca.crt");
    transfer_and_compare(&server, &server.url("wss"), &["--ca-file", &ca], 20_000_000, "secure.bin");
}

#[test]
fn ws_receive_accepts_the_reference_pdu_and_answers_a_wrong_hash_with_an_error() {
    let server = Server::start("transfer", &[]);
    let url = server.url("ws");
    let dst = tempfile::tempdir().unwrap();
    // A whole-message PDU as IXWebSocket sends it, with a name that tries to escape.
    let r = receiver(&server, &url, dst.path(), &["--keep-going"], 0);
    let mut peer = peer_script("pdu_peer.py");
    peer.args(["send", &url, "../../escape.bin", "100000"]);
    let out = run(peer, b"", T);
    assert_eq!(out.code(), 0, "{out:?}");
    assert!(out.stdout.contains("reply ack=true filename=../../escape.bin"), "{}", out.stdout);
    assert!(out.stdout.contains("id ok"), "{}", out.stdout);
    assert_eq!(std::fs::metadata(dst.path().join("escape.bin")).unwrap().len(), 100_000);
    // A corrupted hash: error PDU, nothing written.
    let mut peer = peer_script("pdu_peer.py");
    peer.args(["send", &url, "corrupt.bin", "5000", "--bad-hash"]);
    let out = run(peer, b"", T);
    assert!(out.stdout.contains("reply id= kind=error message=Hash mismatch."), "{}", out.stdout);
    assert!(!dst.path().join("corrupt.bin").exists());
    // A name with nothing safe left in it.
    let mut peer = peer_script("pdu_peer.py");
    peer.args(["send", &url, "..", "10"]);
    let out = run(peer, b"", T);
    assert!(out.stdout.contains("kind=error message=Invalid file name."), "{}", out.stdout);
    drop(r); // --keep-going: it would wait for more files
    let names: Vec<_> = std::fs::read_dir(dst.path()).unwrap().filter_map(Result::ok).map(|e| e.file_name()).collect();
    assert!(names.iter().all(|n| n == "escape.bin" || n.to_string_lossy().starts_with(".ws-receive-")), "{names:?}");
}

#[test]
fn a_python_receiver_gets_our_streamed_pdu_as_one_valid_message() {
    let server = Server::start("transfer", &[]);
    let url = server.url("ws");
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let file = random_file(src.path(), "to-python.bin", 3_000_000);
    let py = Interactive::start(
        "py-receive",
        peer_script("pdu_peer.py").args(["receive", &url, dst.path().to_str().unwrap()]),
    );
    py.wait_for_lines("ready", 1, T);
    server.wait_for_line("id: 0", T);
    let out = send(&url, &file, &[]);
    assert_eq!(out.code(), 0, "{out:?}");
    py.wait_for_lines("got to-python.bin 3000000", 1, T);
    assert!(std::fs::read(dst.path().join("to-python.bin")).unwrap() == std::fs::read(&file).unwrap());
}

#[test]
fn send_exits_1_with_the_receivers_reason_when_the_file_is_refused() {
    let server = Server::start("transfer", &[]);
    let url = server.url("ws");
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let file = random_file(src.path(), "exists.bin", 1000);
    std::fs::write(dst.path().join("exists.bin"), b"keep me").unwrap();
    let r = receiver(&server, &url, dst.path(), &[], 0);
    let out = send(&url, &file, &[]);
    assert_eq!(out.code(), 1, "{out:?}");
    assert!(out.stderr.contains("the receiver refused the file: File exists.bin not saved."), "{}", out.stderr);
    assert_eq!(std::fs::read(dst.path().join("exists.bin")).unwrap(), b"keep me");
    assert_eq!(r.finish(T).code(), Some(1));
}

#[test]
fn a_receiver_killed_mid_transfer_leaves_no_file_and_the_sender_fails() {
    let server = Server::start("transfer", &[]);
    let url = server.url("ws");
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let file = random_file(src.path(), "killed.bin", 20_000_000);
    let r = receiver(&server, &url, dst.path(), &["--delay", "100"], 0);
    let mut sender = ws();
    sender.args(["send", &url, file.to_str().unwrap(), "--timeout", "3"]);
    let s = Interactive::start("send", &mut sender);
    std::thread::sleep(Duration::from_millis(800));
    drop(r); // SIGKILL
    let status = s.finish(T);
    assert_eq!(status.code(), Some(1), "the sender must fail when nobody acknowledges");
    assert!(!dst.path().join("killed.bin").exists(), "a partial file was left under the final name");
}

#[test]
fn send_refuses_a_missing_file_before_connecting() {
    let out = send("ws://127.0.0.1:1/", Path::new("/nonexistent/file"), &[]);
    assert_eq!(out.code(), 2, "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.contains("cannot read /nonexistent/file"), "{}", out.stderr);
}

/// Issue 22: every receiver of the relay gets the file; --overwrite replaces an existing one.
#[test]
fn several_receivers_each_get_the_file_and_overwrite_replaces() {
    let server = Server::start("transfer", &[]);
    let url = server.url("ws");
    let src = tempfile::tempdir().unwrap();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::fs::write(d2.path().join("shared.bin"), b"old content").unwrap();
    let file = random_file(src.path(), "shared.bin", 3_000_000);
    let r1 = receiver(&server, &url, d1.path(), &[], 0);
    let r2 = receiver(&server, &url, d2.path(), &["--overwrite"], 1);
    let out = send(&url, &file, &[]);
    assert_eq!(out.code(), 0, "{out:?}");
    assert!(r1.finish(T).success() && r2.finish(T).success());
    let want = std::fs::read(&file).unwrap();
    assert!(std::fs::read(d1.path().join("shared.bin")).unwrap() == want, "receiver 1");
    assert!(std::fs::read(d2.path().join("shared.bin")).unwrap() == want, "receiver 2 (--overwrite)");
}

/// Issue 22: a receiver that stops reading is closed after --stall-timeout (1008), and the
/// file still reaches the others; the relay's memory stays bounded by --max-queue-bytes.
#[test]
fn a_stalled_receiver_is_closed_and_the_others_get_the_file() {
    let server = Server::start("transfer", &["--stall-timeout", "1", "--max-queue-bytes", "262144"]);
    let url = server.url("ws");
    let stuck = crate::raw::RawWs::connect(server.addr);
    server.wait_for_line("id: 0", T);
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let file = random_file(src.path(), "past-the-stuck.bin", 20_000_000);
    let r = receiver(&server, &url, dst.path(), &[], 1);
    let out = send(&url, &file, &[]);
    assert_eq!(out.code(), 0, "{out:?}");
    assert!(r.finish(T).success());
    assert!(std::fs::read(dst.path().join("past-the-stuck.bin")).unwrap() == std::fs::read(&file).unwrap());
    server.wait_for_line("Closed connection: client id 0 code 1008", T);
    let peak = server.peak_rss_kib();
    assert!(peak < 64 * 1024, "relay peak RSS {peak} KiB");
    drop(stuck);
}

/// Issue 22: back-pressure at `--max-queue-bytes`, apart from the stall timeout: a receiver
/// that reads slowly but steadily is not closed (the timeout is far off), the sender is held
/// to its pace instead of the relay buffering the file, and the relay's memory stays bounded.
#[test]
fn a_slow_receiver_holds_the_sender_back_without_being_closed() {
    let server = Server::start("transfer", &["--stall-timeout", "30", "--max-queue-bytes", "262144"]);
    let url = server.url("ws");
    let size = 16_000_000;
    let mut slow = crate::raw::RawWs::connect(server.addr);
    server.wait_for_line("id: 0", T);
    // The file PDU carries the content as hex: 32 MB of frames at 12 MB/s take about 2.7 s,
    // far more than the sockets between can hold.
    let reader = std::thread::spawn(move || slow.read_slowly(2 * size, 12_000_000));
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let file = random_file(src.path(), "paced.bin", size);
    let r = receiver(&server, &url, dst.path(), &[], 1);
    let started = std::time::Instant::now();
    let out = send(&url, &file, &[]);
    let took = started.elapsed();
    assert_eq!(out.code(), 0, "{out:?}");
    assert!(took >= Duration::from_millis(1500), "the sender was not held back: {took:?}");
    assert!(r.finish(T).success());
    assert!(std::fs::read(dst.path().join("paced.bin")).unwrap() == std::fs::read(&file).unwrap());
    assert!(reader.join().unwrap() >= 2 * size, "the slow receiver did not get the whole file");
    assert!(!server.output().iter().any(|l| l.contains("code 1008")), "a slow receiver was closed as stuck");
    let peak = server.peak_rss_kib();
    assert!(peak < 24 * 1024, "relay peak RSS {peak} KiB: the file was buffered");
}

/// A relay in Python that answers a file first with an ack carrying another id, then (with
/// `right`) with the real one.
fn fake_relay(mode: &str) -> Server {
    let script = r#"
import sys
sys.path.insert(0, sys.argv[2])
from websockets.sync.server import serve
from pdu import decode, encode
def handler(ws):
    p = decode(ws.recv())
    ws.send(encode({"ack": b"true", "filename": p["filename"], "id": b"0" * 32}))
    if sys.argv[1] == "right":
        ws.send(encode({"ack": b"true", "filename": p["filename"], "id": p["id"]}))
    try:
        ws.recv(timeout=10)
    except Exception:
        pass
with serve(handler, "127.0.0.1", 0, max_size=None, compression=None) as server:
    print(f"Listening on 127.0.0.1:{server.socket.getsockname()[1]}", flush=True)
    server.serve_forever()
"#;
    let mut cmd = std::process::Command::new(crate::util::python());
    cmd.args(["-c", script, mode, crate::util::repo_root().join("tests/peers").to_str().unwrap()]);
    Server::start_cmd("fake-relay", &mut cmd)
}

/// Issue 22: `send` waits for an ack with its own id: another id is ignored (and logged),
/// the right one ends it with 0, none is exit 1 after --timeout; a relay that dies
/// mid-send is exit 1 promptly.
#[test]
fn send_ignores_acks_for_other_ids_and_fails_when_the_relay_dies() {
    let src = tempfile::tempdir().unwrap();
    let file = random_file(src.path(), "acked.bin", 10_000);
    let right = fake_relay("right");
    let out = send(&right.url("ws"), &file, &["--timeout", "5"]);
    assert_eq!(out.code(), 0, "{out:?}");
    assert!(out.stdout.contains("ignoring a message"), "{}", out.stdout);
    let wrong = fake_relay("wrong");
    let out = send(&wrong.url("ws"), &file, &["--timeout", "2"]);
    assert_eq!(out.code(), 1, "{out:?}");
    assert!(out.stderr.contains("no acknowledgement within 2 s"), "{}", out.stderr);
    // The relay dies while a slow receiver holds the transfer back.
    let mut relay = Server::start("transfer", &[]);
    let url = relay.url("ws");
    let dst = tempfile::tempdir().unwrap();
    let big = random_file(src.path(), "cut.bin", 20_000_000);
    let _r = receiver(&relay, &url, dst.path(), &["--delay", "100"], 0);
    let s = Interactive::start("send", ws().args(["send", &url, big.to_str().unwrap(), "--timeout", "30"]));
    std::thread::sleep(Duration::from_millis(800));
    relay.stop_with("KILL");
    let started = std::time::Instant::now();
    let status = s.finish(T);
    assert_eq!(status.code(), Some(1), "the sender must fail when its relay dies");
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
}

/// Issue 22: rooms: a file sent to /room/b reaches the receivers in that room only.
#[test]
fn a_file_sent_to_a_room_reaches_only_that_room() {
    let server = Server::start("transfer", &[]);
    let base = server.url("ws");
    let (room_a, room_b) = (format!("{base}/room/a"), format!("{base}/room/b"));
    let src = tempfile::tempdir().unwrap();
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let file = random_file(src.path(), "for-b.bin", 100_000);
    let ra = receiver(&server, &room_a, da.path(), &[], 0);
    let rb = receiver(&server, &room_b, db.path(), &[], 1);
    let out = send(&room_b, &file, &[]);
    assert_eq!(out.code(), 0, "{out:?}");
    assert!(rb.finish(T).success());
    assert!(std::fs::read(db.path().join("for-b.bin")).unwrap() == std::fs::read(&file).unwrap());
    server.wait_for_line("relayed to 1 clients", T);
    std::thread::sleep(Duration::from_millis(300));
    assert!(!da.path().join("for-b.bin").exists(), "room a got room b's file");
    assert!(ra.output().iter().all(|l| !l.contains("for-b.bin")), "{:?}", ra.output());
}

/// Issue 18: with `--threads 4`, each room is served whole by one worker. Clients land on
/// the worker the kernel picks; those whose room another worker holds are handed to it (TLS
/// sessions included) and every receiver of a room gets its room's file, and only that.
#[test]
fn with_four_workers_every_room_gets_its_files_over_wss() {
    let c = certs();
    let server = Server::start(
        "transfer",
        &["--threads", "4", "--tls", "--cert-file", &c.path("server.crt"), "--key-file", &c.path("server.key")],
    );
    let ca = c.path("ca.crt");
    let tls = ["--ca-file", ca.as_str()];
    let base = server.url("wss");
    let src = tempfile::tempdir().unwrap();
    let rooms: Vec<String> = (0..6).map(|r| format!("{base}/room/r{r}")).collect();
    let mut receivers = Vec::new();
    for (r, url) in rooms.iter().enumerate() {
        for k in 0..2 {
            let dir = tempfile::tempdir().unwrap();
            let rcv = receiver(&server, url, dir.path(), &tls, 2 * r + k);
            receivers.push((r, dir, rcv));
        }
    }
    let files: Vec<_> =
        (0..rooms.len()).map(|r| random_file(src.path(), &format!("room{r}.bin"), 300_000 + r)).collect();
    for (url, file) in rooms.iter().zip(&files) {
        let out = send(url, file, &tls);
        assert_eq!(out.code(), 0, "{url}: {out:?}");
    }
    for (r, dir, rcv) in receivers {
        assert!(rcv.finish(T).success(), "a receiver of room {r} failed");
        let got: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
        assert_eq!(got, [format!("room{r}.bin")], "room {r}'s receiver got {got:?}");
        assert!(std::fs::read(dir.path().join(format!("room{r}.bin"))).unwrap() == std::fs::read(&files[r]).unwrap());
    }
    let log = server.output();
    let workers: std::collections::BTreeSet<_> = log.iter().filter_map(|l| l.split("] worker: ").nth(1)).collect();
    assert!(workers.len() > 1, "every connection was accepted by one worker: {workers:?}");
    assert!(log.iter().any(|l| l.contains("served by worker")), "no client was handed to its room's worker");
}

/// A relay that forwards a file as one frame (Node's `ws` as a broadcast server sends each
/// message whole): `ws receive` reads the 40 MB frame in pieces and saves the file, holding
/// nothing near the frame's size. Before, any frame over 16 MiB was refused.
#[test]
fn a_file_relayed_as_one_40_mb_frame_is_received_in_pieces() {
    let relay = Server::start_cmd("node relay", &mut peer_script("../../scripts/peers/broadcast_server.js"));
    let url = relay.url("ws");
    let (src, dst, tmp) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let file = random_file(src.path(), "whole.bin", 20_000_000);
    let rss = tmp.path().join("rss");
    let plain = ws();
    let mut cmd = std::process::Command::new("/usr/bin/time");
    cmd.env_clear().envs(plain.get_envs().filter_map(|(k, v)| Some((k, v?))));
    cmd.args(["-f", "%M", "-o", rss.to_str().unwrap()]).arg(plain.get_program());
    cmd.args(["receive", &url, "--save-dir", dst.path().to_str().unwrap()]);
    let r = Interactive::start("receive", &mut cmd);
    r.wait_for_lines("ws_receive: Waiting for message...", 1, T);
    let out = send(&url, &file, &[]);
    assert_eq!(out.code(), 0, "{out:?}\nreceive: {:?}", r.output());
    assert!(r.finish(T).success(), "receive failed");
    assert!(std::fs::read(dst.path().join("whole.bin")).unwrap() == std::fs::read(&file).unwrap());
    let peak_kib: u64 = std::fs::read_to_string(&rss).unwrap().trim().lines().last().unwrap().parse().unwrap();
    assert!(peak_kib < 24 * 1024, "ws receive peaked at {peak_kib} KiB for a 40 MB frame");
}

/// A sender that sends its file as one frame, as browsers, Node and Python `websockets` send
/// every message: `ws transfer` relays the 40 MB frame in 1 MiB fragments, in bounded
/// memory, and `ws receive` saves it. Before, a frame over 16 MiB closed the sender with
/// 1009, and a larger `--max-frame-size` held the whole frame (and a copy per receiver).
#[test]
fn a_file_sent_as_one_40_mb_frame_is_relayed_in_pieces() {
    let server = Server::start("transfer", &[]);
    let url = server.url("ws");
    let dst = tempfile::tempdir().unwrap();
    let r = receiver(&server, &url, dst.path(), &[], 0);
    let mut peer = peer_script("pdu_peer.py");
    peer.args(["send", &url, "one-frame.bin", "20000000"]);
    let out = run(peer, b"", T);
    assert_eq!(out.code(), 0, "{out:?}");
    assert!(out.stdout.contains("reply ack=true filename=one-frame.bin"), "{}", out.stdout);
    assert!(r.finish(T).success(), "receive failed");
    assert_eq!(std::fs::metadata(dst.path().join("one-frame.bin")).unwrap().len(), 20_000_000);
    let peak = server.peak_rss_kib();
    assert!(peak < 32 * 1024, "the relay peaked at {peak} KiB for a 40 MB frame");
}
