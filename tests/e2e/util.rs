//! The harness: finds the real `ws` and its plugins, runs them in a hermetic environment,
//! starts servers on port 0 and reads their ready line, and bounds every wait with a timeout.
//!
//! `ws` and the plugins are found next to the test executable (`target/<profile>/deps/..`),
//! unless `WS_BIN` / `WS_PLUGIN_PATH` say otherwise. They are built by `scripts/test.sh`
//! (`cargo build --workspace` before `cargo test`): a test binary cannot build its own
//! workspace's cdylibs.

#![allow(dead_code)]

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// The repository's top folder.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// `target/<profile>`: where `ws` and the plugins were built.
pub fn build_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let deps = exe.parent().expect("deps folder");
    deps.parent().expect("profile folder").to_path_buf()
}

/// The `target` folder itself.
pub fn target_dir() -> PathBuf {
    build_dir().parent().expect("target folder").to_path_buf()
}

/// The `ws` binary under test.
pub fn ws_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("WS_BIN") {
        return PathBuf::from(p);
    }
    let p = build_dir().join(format!("ws{}", std::env::consts::EXE_SUFFIX));
    assert!(p.is_file(), "{} is missing: run scripts/test.sh (it builds the workspace before testing)", p.display());
    p
}

/// The folder holding the plugins under test.
pub fn plugin_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("WS_PLUGIN_PATH") {
        return PathBuf::from(p);
    }
    build_dir()
}

/// Fails with a clear message when a plugin was not built.
pub fn require_plugin(name: &str) {
    let file = format!("{}ws_{name}{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX);
    let p = plugin_dir().join(&file);
    assert!(p.is_file(), "plugin {} is missing: run scripts/test.sh", p.display());
}

/// A private, empty HOME for each spawned process (no user config, no history file).
fn scratch_home() -> &'static Path {
    static HOME: OnceLock<tempfile::TempDir> = OnceLock::new();
    HOME.get_or_init(|| tempfile::tempdir().expect("temp home")).path()
}

/// A `ws` command with a hermetic environment: only PATH survives; HOME is a temp folder,
/// no colours, no backtraces, and plugins come from the build folder.
pub fn ws() -> Command {
    let mut cmd = Command::new(ws_bin());
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", scratch_home())
        .env("LANG", "C.UTF-8")
        .env("RUST_BACKTRACE", "0")
        .env("NO_COLOR", "1")
        .env("TERM", "dumb");
    if let Some(p) = std::env::var_os("WS_PLUGIN_PATH") {
        cmd.env("WS_PLUGIN_PATH", p);
    }
    cmd
}

/// `ws ARGS…`, ready to [`run`].
pub fn ws_args(args: &[&str]) -> Command {
    let mut cmd = ws();
    cmd.args(args);
    cmd
}

/// What a finished process left behind.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }
}

/// Runs `cmd` with `stdin` fed in, killing it and failing the test after `timeout`.
pub fn run(mut cmd: Command, stdin: &[u8], timeout: Duration) -> Output {
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let desc = format!("{cmd:?}");
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {desc}: {e}"));
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = read_all(child.stdout.take().expect("stdout"));
    let err = read_all(child.stderr.take().expect("stderr"));
    let status = wait_timeout(&mut child, timeout).unwrap_or_else(|| {
        let _ = child.kill();
        let _ = child.wait();
        panic!("timed out after {timeout:?}: {desc}\nstdout so far: {}\nstderr so far: {}", out.peek(), err.peek());
    });
    let _ = writer.join();
    Output { status, stdout: out.finish(), stderr: err.finish() }
}

struct Collector {
    buf: Arc<Mutex<Vec<u8>>>,
    handle: thread::JoinHandle<()>,
}

impl Collector {
    fn peek(&self) -> String {
        String::from_utf8_lossy(&self.buf.lock().unwrap()).into_owned()
    }
    fn finish(self) -> String {
        let _ = self.handle.join();
        String::from_utf8_lossy(&self.buf.lock().unwrap()).into_owned()
    }
}

fn read_all(mut r: impl Read + Send + 'static) -> Collector {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let b = buf.clone();
    let handle = thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        while let Ok(n) = r.read(&mut chunk) {
            if n == 0 {
                break;
            }
            b.lock().unwrap().extend_from_slice(&chunk[..n]);
        }
    });
    Collector { buf, handle }
}

/// Waits for `child` at most `timeout`.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port` (a peer started on a
/// port chosen for it, which prints no `Listening on` line); fails after `timeout`.
pub fn wait_for_port(port: u16, what: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {port} within {timeout:?}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// A running server: started with `--port 0`, its address read from the ready line, its
/// output forwarded (prefixed) and kept for assertions, killed on Drop.
pub struct Server {
    child: Child,
    /// Where it listens (`0.0.0.0:0` for a server on a Unix socket).
    pub addr: SocketAddr,
    lines: Arc<Mutex<Vec<String>>>,
    name: String,
}

impl Server {
    /// Starts `ws <name> --port 0 <args>` and waits (10 s at most) for `Listening on`.
    pub fn start(name: &str, args: &[&str]) -> Server {
        Self::start_cmd(name, ws().arg(name).args(["--port", "0"]).args(args))
    }

    /// Starts any command that prints a `Listening on HOST:PORT` line.
    pub fn start_cmd(name: &str, cmd: &mut Command) -> Server {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<String>();
        // The ready line may come on either stream (gunicorn logs to stderr).
        forward(child.stdout.take().expect("stdout"), name, "out", lines.clone(), Some(tx.clone()));
        forward(child.stderr.take().expect("stderr"), name, "err", lines.clone(), Some(tx));
        let ready = rx.recv_timeout(Duration::from_secs(10));
        let addr = match ready.as_deref().map(parse_listening) {
            Ok(Some(a)) => Some(a),
            // A Unix socket: no address to keep.
            Ok(None) if ready.as_deref().is_ok_and(|l| l.contains("Listening on unix:") || l.contains("at: unix:")) => {
                None
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{name} printed no 'Listening on' line within 10 s (ready line {ready:?}); output: {:?}",
                    lines.lock().unwrap()
                );
            }
        };
        let addr = addr.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        Server { child, addr, lines, name: name.to_string() }
    }

    /// Starts `ws <name> --unix PATH <args>` and waits for `Listening on unix:PATH`.
    pub fn start_unix(name: &str, path: &std::path::Path, args: &[&str]) -> Server {
        Self::start_cmd(name, ws().arg(name).arg("--unix").arg(path).args(args))
    }

    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://{}", self.addr)
    }

    /// Everything the server printed so far.
    pub fn output(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits until a printed line contains `needle`; fails after `timeout`.
    pub fn wait_for_line(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.output().into_iter().find(|l| l.contains(needle)) {
                return l;
            }
            assert!(Instant::now() < deadline, "{} never printed {needle:?}; output: {:?}", self.name, self.output());
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process's peak resident memory so far (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        self.status_kib("VmHWM:")
    }

    /// The process's resident memory now (VmRSS), in KiB.
    pub fn rss_kib(&self) -> u64 {
        self.status_kib("VmRSS:")
    }

    fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("/proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{field} in /proc/PID/status"))
    }

    /// Sends `signal` (e.g. `QUIT`) and waits up to 5 s for the process to exit, for servers
    /// that must take their own children down (a SIGKILL orphans gunicorn's workers).
    pub fn stop_with(&mut self, signal: &str) {
        let _ = Command::new("kill").args([format!("-{signal}"), self.child.id().to_string()]).status();
        let _ = wait_timeout(&mut self.child, Duration::from_secs(5));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn forward(
    r: impl Read + Send + 'static,
    name: &str,
    stream: &'static str,
    lines: Arc<Mutex<Vec<String>>>,
    ready: Option<mpsc::Sender<String>>,
) {
    let name = name.to_string();
    thread::spawn(move || {
        let mut ready = ready;
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            eprintln!("[{name} {stream}] {line}");
            if let Some(tx) = &ready
                && (line.contains("Listening on ") || line.contains("Listening at: "))
            {
                let _ = tx.send(line.clone());
                ready = None;
            }
            lines.lock().unwrap().push(line);
        }
    });
}

/// Parses the address out of a `... Listening on HOST:PORT` line (ours, and the peers'), or
/// gunicorn's `Listening at: http://HOST:PORT (pid)`.
pub fn parse_listening(line: &str) -> Option<SocketAddr> {
    let rest = match line.find("Listening on ") {
        Some(i) => &line[i + "Listening on ".len()..],
        None => line[line.find("Listening at: http://")? + "Listening at: http://".len()..].trim_end(),
    };
    rest.split_whitespace().next()?.parse().ok()
}

/// The Python interpreter of the peers' venv (made by scripts/test.sh).
pub fn python() -> PathBuf {
    let p = std::env::var_os("WS_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".peers/venv/bin/python"));
    assert!(p.is_file(), "the Python peer venv is missing ({}): run scripts/test.sh, which installs it", p.display());
    p
}

/// A command running one of the peer scripts in `tests/peers/`.
pub fn peer_script(script: &str) -> Command {
    let path = repo_root().join("tests/peers").join(script);
    let program: PathBuf = match path.extension().and_then(OsStr::to_str) {
        Some("py") => python(),
        Some("js") => PathBuf::from("node"),
        _ => panic!("unknown peer script type: {script}"),
    };
    let mut cmd = Command::new(program);
    cmd.arg(path);
    if script.ends_with(".js") {
        let modules = repo_root().join(".peers/node/node_modules");
        assert!(modules.join("ws").is_dir(), "Node peer 'ws' is missing ({}): run scripts/test.sh", modules.display());
        cmd.env("NODE_PATH", modules);
    }
    cmd
}

/// Builds an out-of-tree plugin crate exactly as a third party would (its own Cargo.toml,
/// `ws-plugin-api` by path) and returns the folder holding its `.so`.
///
/// `abi_bump` builds it against a copy of `plugin-api` whose `ABI_VERSION` is raised by that
/// much, i.e. a plugin from a future (or past) ws.
pub fn build_fixture(fixture: &str, abi_bump: u32) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<(String, u32), PathBuf>>> = OnceLock::new();
    let cache = BUILT.get_or_init(|| Mutex::new(HashMap::new()));
    let mut cache = cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(p) = cache.get(&(fixture.to_string(), abi_bump)) {
        return p.clone();
    }
    let src = repo_root().join("tests/fixtures").join(fixture);
    let work = target_dir().join("fixtures").join(format!("{fixture}-abi{abi_bump}"));
    let _ = std::fs::remove_dir_all(work.join("src"));
    copy_dir(&src, &work);
    let api = work.join("plugin-api");
    copy_dir(&repo_root().join("plugin-api"), &api);
    if abi_bump != 0 {
        let lib = api.join("src/lib.rs");
        let text = std::fs::read_to_string(&lib).unwrap();
        let needle = "pub const ABI_VERSION: u32 = ";
        let at = text.find(needle).expect("ABI_VERSION in plugin-api") + needle.len();
        let end = at + text[at..].find(';').unwrap();
        let current: u32 = text[at..end].parse().unwrap();
        let patched = format!("{}{}{}", &text[..at], current + abi_bump, &text[end..]);
        std::fs::write(&lib, patched).unwrap();
    }
    // The fixture names its dependency as a third party would; point it at our copy.
    let manifest = work.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let text = text.replace("path = \"../../../plugin-api\"", "path = \"plugin-api\"");
    std::fs::write(&manifest, text).unwrap();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let build = || {
        // A clean environment, as an outside author's shell would have: nothing of the outer
        // `cargo test` (CARGO_*, RUSTFLAGS) leaks into this build.
        let mut cmd = Command::new(&cargo);
        cmd.env_clear();
        for key in ["PATH", "HOME", "RUSTUP_HOME", "RUSTUP_TOOLCHAIN", "CARGO_HOME", "TMPDIR", "LANG"] {
            if let Some(v) = std::env::var_os(key) {
                cmd.env(key, v);
            }
        }
        cmd.args(["build", "--quiet", "--offline", "--manifest-path"])
            .arg(&manifest)
            .arg("--target-dir")
            .arg(work.join("target"))
            .stdin(Stdio::null())
            .output()
            .expect("run cargo for the fixture")
    };
    let out = build();
    assert!(out.status.success(), "building fixture {fixture} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let dir = work.join("target/debug");
    cache.insert((fixture.to_string(), abi_bump), dir.clone());
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == "target" || name == "Cargo.lock" {
            continue;
        }
        let dest = to.join(&name);
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

/// A test CA and a server certificate for `localhost` and `127.0.0.1` signed by it, plus a
/// client certificate signed by the same CA, and two self-signed certificates (`self` for
/// localhost and 127.0.0.1, `elsewhere` for example.test), made with openssl at test time.
pub struct Certs {
    pub dir: tempfile::TempDir,
}

impl Certs {
    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

/// Makes [`Certs`] once per test process.
pub fn certs() -> &'static Certs {
    static CERTS: OnceLock<Certs> = OnceLock::new();
    CERTS.get_or_init(|| {
        let dir = tempfile::tempdir().expect("cert dir");
        let script = r#"
set -e
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 30 -subj "/CN=ws-test-CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=localhost"
printf "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n" > server.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 30 -sha256 -extfile server.ext
openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj "/CN=ws-test-client"
printf "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n" > client.ext
openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out client.crt -days 30 -sha256 -extfile client.ext
# Self-signed the usual way (OpenSSL marks it CA:TRUE), for this host and for another name.
openssl req -x509 -newkey rsa:2048 -nodes -keyout self.key -out self.crt -days 30 -subj "/CN=localhost" \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1"
openssl req -x509 -newkey rsa:2048 -nodes -keyout elsewhere.key -out elsewhere.crt -days 30 -subj "/CN=example.test" \
  -addext "subjectAltName=DNS:example.test"
"#;
        let out = Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(dir.path())
            .output()
            .expect("openssl is needed for TLS tests (scripts/peers.sh installs it)");
        assert!(out.status.success(), "making test certificates failed: {}", String::from_utf8_lossy(&out.stderr));
        Certs { dir }
    })
}

/// A long-running interactive process (a `ws chat`, a peer script): lines written to its
/// stdin, its output collected for assertions, killed on Drop.
pub struct Interactive {
    child: Child,
    stdin: Option<std::process::ChildStdin>,
    lines: Arc<Mutex<Vec<String>>>,
    name: String,
}

impl Interactive {
    pub fn start(name: &str, cmd: &mut Command) -> Interactive {
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        forward(child.stdout.take().expect("stdout"), name, "out", lines.clone(), None);
        forward(child.stderr.take().expect("stderr"), name, "err", lines.clone(), None);
        let stdin = child.stdin.take();
        Interactive { child, stdin, lines, name: name.to_string() }
    }

    pub fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        writeln!(stdin, "{line}").and_then(|_| stdin.flush()).expect("write to stdin");
    }

    /// Closes stdin (EOF), leaving the process running.
    pub fn close_stdin(&mut self) {
        drop(self.stdin.take());
    }

    /// Closes stdin (EOF) and waits for the exit.
    pub fn finish(mut self, timeout: Duration) -> ExitStatus {
        drop(self.stdin.take());
        wait_timeout(&mut self.child, timeout)
            .unwrap_or_else(|| panic!("{} did not exit within {timeout:?} after EOF", self.name))
    }

    pub fn output(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until `count` printed lines contain `needle`.
    pub fn wait_for_lines(&self, needle: &str, count: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let found: Vec<String> = self.output().into_iter().filter(|l| l.contains(needle)).collect();
            if found.len() >= count {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "{} printed {} of {count} lines containing {needle:?}; output: {:#?}",
                self.name,
                found.len(),
                self.output()
            );
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Interactive {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port for a peer that must be told its port before it starts (kosoku's fuzzingserver,
/// nginx, redis-server, a server that comes back on the port it had). It lies below the
/// kernel's ephemeral range, so that neither a port-0 listener nor the source port of an
/// outgoing connection (which every test makes) can take it between here and the peer's
/// bind; calls in one process never return the same port twice.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    let (low, span) = (10_000u32, ephemeral_low.saturating_sub(10_000).max(1000));
    // Each test process starts at its own place in the range.
    let start = std::process::id() * 7919;
    loop {
        let port = (low + (start + NEXT.fetch_add(1, Ordering::Relaxed) * 13) % span) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// `ws httpd` serving one file from a folder of its own, and that file's URL.
pub struct OneFile {
    _site: tempfile::TempDir,
    pub server: Server,
    pub url: String,
}

/// Serves `body` as `/name` with `ws httpd -q`.
pub fn serve_one_file(name: &str, body: &str) -> OneFile {
    let site = tempfile::tempdir().unwrap();
    std::fs::write(site.path().join(name), body).unwrap();
    let server = Server::start("httpd", &["-q", "--root", site.path().to_str().unwrap()]);
    let url = format!("{}/{name}", server.url("http"));
    OneFile { _site: site, server, url }
}

/// `ws` on a real pseudo-terminal (a tmux session of its own), read off the screen.
pub struct Tmux {
    socket: String,
    /// The HOME it runs with (history files land there).
    pub home: tempfile::TempDir,
}

impl Tmux {
    /// `ws connect` to `url`, without reconnection or heartbeat.
    pub fn start(url: &str) -> Tmux {
        Self::start_with(&format!("connect -d --ping_interval 0 {url}"))
    }

    /// `ws ARGS` on a terminal of its own; `echo EXIT=$?` when it ends, and the pane stays.
    pub fn start_with(args: &str) -> Tmux {
        let home = tempfile::tempdir().unwrap();
        let socket = format!("ws-test-{}-{}", std::process::id(), free_port());
        let command = format!(
            "env -i PATH=/usr/bin:/bin HOME={} TERM=xterm WS_PLUGIN_PATH={} {} {args}; echo EXIT=$?; sleep 60",
            home.path().display(),
            plugin_dir().display(),
            ws_bin().display()
        );
        let ok = std::process::Command::new("tmux")
            .args(["-L", &socket, "new-session", "-d", "-x", "120", "-y", "40", &command])
            .status()
            .expect("tmux is needed (scripts/peers.sh installs it)");
        assert!(ok.success());
        Tmux { socket, home }
    }

    pub fn screen(&self) -> String {
        let out = std::process::Command::new("tmux").args(["-L", &self.socket, "capture-pane", "-p"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn keys(&self, keys: &[&str]) {
        std::process::Command::new("tmux").args(["-L", &self.socket, "send-keys"]).args(keys).status().unwrap();
    }

    /// Waits until the screen holds `needle`; returns the screen.
    pub fn wait_for(&self, needle: &str) -> String {
        let start = std::time::Instant::now();
        loop {
            let screen = self.screen();
            if screen.contains(needle) {
                return screen;
            }
            assert!(start.elapsed() < Duration::from_secs(10), "never saw {needle:?} on the screen:\n{screen}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = std::process::Command::new("tmux").args(["-L", &self.socket, "kill-server"]).status();
    }
}
