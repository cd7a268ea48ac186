//! `ws httpd` against the real `curl`: content, headers, ranges, revalidation, gzip,
//! keep-alive, TLS, every traversal variant, a slowloris crowd, and the -L/-D modes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::util::{Output, Server, certs, run};

const T: Duration = Duration::from_secs(30);

pub(crate) fn curl(args: &[&str]) -> Output {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "20"]).args(args);
    run(cmd, b"", T)
}

pub(crate) fn site() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(p.join("index.html"), "<h1>home</h1>\n").unwrap();
    std::fs::create_dir(p.join("docs")).unwrap();
    let text: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
    std::fs::write(p.join("docs/big.txt"), text).unwrap();
    let bin: Vec<u8> = (0..300_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    std::fs::write(p.join("docs/data.bin"), bin).unwrap();
    std::fs::write(p.join("docs/a file.txt"), "spaced\n").unwrap();
    dir
}

pub(crate) fn httpd(root: &Path, extra: &[&str]) -> Server {
    let mut args = vec!["--root", root.to_str().unwrap()];
    args.extend_from_slice(extra);
    Server::start("httpd", &args)
}

pub(crate) fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn serves_files_with_their_type_length_and_validators_and_head_and_404() {
    let dir = site();
    let s = httpd(dir.path(), &[]);
    let base = s.url("http");
    let tmp = tempfile::tempdir().unwrap();
    let out_file = tmp.path().join("data.bin");
    let out = curl(&["-D", "-", "-o", out_file.to_str().unwrap(), &format!("{base}/docs/data.bin")]);
    assert!(out.stdout.starts_with("HTTP/1.1 200"), "{}", out.stdout);
    assert_eq!(std::fs::read(&out_file).unwrap(), std::fs::read(dir.path().join("docs/data.bin")).unwrap());
    assert_eq!(header(&out.stdout, "content-length"), Some("300000"));
    assert_eq!(header(&out.stdout, "content-type"), Some("application/octet-stream"));
    assert_eq!(header(&out.stdout, "accept-ranges"), Some("bytes"));
    assert!(header(&out.stdout, "etag").is_some() && header(&out.stdout, "last-modified").is_some());
    let out = curl(&["-D", "-", &format!("{base}/")]);
    assert!(out.stdout.ends_with("<h1>home</h1>\n"), "{}", out.stdout);
    assert_eq!(header(&out.stdout, "content-type"), Some("text/html; charset=utf-8"));
    let out = curl(&["-I", &format!("{base}/docs/big.txt")]);
    assert!(
        out.stdout.starts_with("HTTP/1.1 200") && header(&out.stdout, "content-length").is_some(),
        "{}",
        out.stdout
    );
    let out = curl(&["-s", "-o", "/dev/null", "-w", "%{http_code}", &format!("{base}/nope.html")]);
    assert_eq!(out.stdout, "404");
    let out = curl(&["-o", "/dev/null", "-w", "%{http_code}", &format!("{base}/docs/a%20file.txt?v=3")]);
    assert_eq!(out.stdout, "200", "query strings are ignored and names percent-decoded");
    let out = curl(&["-X", "POST", "-D", "-", "-o", "/dev/null", &format!("{base}/")]);
    assert!(
        out.stdout.starts_with("HTTP/1.1 405") && header(&out.stdout, "allow") == Some("GET, HEAD"),
        "{}",
        out.stdout
    );
    s.wait_for_line("GET /docs/data.bin 200 300000", T);
}

#[test]
fn ranges_revalidation_and_gzip_work_with_curl() {
    let dir = site();
    let s = httpd(dir.path(), &[]);
    let url = format!("{}/docs/data.bin", s.url("http"));
    let data = std::fs::read(dir.path().join("docs/data.bin")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let part = tmp.path().join("part");
    let out = curl(&["-r", "1000-1999", "-D", "-", "-o", part.to_str().unwrap(), &url]);
    assert!(out.stdout.starts_with("HTTP/1.1 206"), "{}", out.stdout);
    assert_eq!(header(&out.stdout, "content-range"), Some("bytes 1000-1999/300000"));
    assert_eq!(std::fs::read(&part).unwrap(), &data[1000..2000]);
    let out = curl(&["-r", "400000-", "-o", "/dev/null", "-D", "-", &url]);
    assert!(out.stdout.starts_with("HTTP/1.1 416") && header(&out.stdout, "content-range") == Some("bytes */300000"));
    // Revalidation: the ETag and the date both give 304.
    let head = curl(&["-I", &url]).stdout;
    let etag = header(&head, "etag").unwrap().to_string();
    let out = curl(&["-H", &format!("If-None-Match: {etag}"), "-o", "/dev/null", "-w", "%{http_code}", &url]);
    assert_eq!(out.stdout, "304");
    let lm = header(&head, "last-modified").unwrap().to_string();
    let out = curl(&["-H", &format!("If-Modified-Since: {lm}"), "-o", "/dev/null", "-w", "%{http_code}", &url]);
    assert_eq!(out.stdout, "304");
    // Compressed text when asked (curl --compressed offers gzip, br and zstd: br is the
    // smallest); curl decodes it back to the file.
    let txt = format!("{}/docs/big.txt", s.url("http"));
    let got = tmp.path().join("big.txt");
    let out = curl(&["--compressed", "-D", "-", "-o", got.to_str().unwrap(), &txt]);
    assert_eq!(header(&out.stdout, "content-encoding"), Some("br"), "{}", out.stdout);
    assert!(header(&out.stdout, "content-length").unwrap().parse::<usize>().unwrap() < 100_000);
    assert_eq!(std::fs::read(&got).unwrap(), std::fs::read(dir.path().join("docs/big.txt")).unwrap());
}

#[test]
fn two_requests_share_one_connection() {
    let dir = site();
    let s = httpd(dir.path(), &[]);
    let base = s.url("http");
    let out = curl(&["-v", "-o", "/dev/null", "-o", "/dev/null", &format!("{base}/"), &format!("{base}/docs/big.txt")]);
    assert!(out.stderr.contains("Re-using existing connection"), "{}", out.stderr);
}

#[test]
fn https_with_a_test_ca() {
    let dir = site();
    let c = certs();
    let s = httpd(dir.path(), &["--tls", "--cert-file", &c.path("server.crt"), "--key-file", &c.path("server.key")]);
    let url = format!("{}/", s.url("https"));
    let out = curl(&["--cacert", &c.path("ca.crt"), &url]);
    assert_eq!(out.stdout, "<h1>home</h1>\n", "{out:?}");
    let out = curl(&[&url]);
    assert_eq!(out.code(), 60, "curl must refuse the unknown CA: {out:?}");
}

#[test]
fn http2_over_tls_by_alpn_and_h2c_with_curl_and_h2load() {
    let dir = site();
    let c = certs();
    let tls = httpd(dir.path(), &["--tls", "--cert-file", &c.path("server.crt"), "--key-file", &c.path("server.key")]);
    let plain = httpd(dir.path(), &[]);
    let want = std::fs::read(dir.path().join("docs/data.bin")).unwrap();
    for (url, how) in [
        (format!("{}/docs/data.bin", tls.url("https")), "--http2"),
        (format!("{}/docs/data.bin", plain.url("http")), "--http2-prior-knowledge"),
    ] {
        let out_file = dir.path().join("got.bin");
        let out = curl(&[how, "--cacert", &c.path("ca.crt"), "-D", "-", "-o", out_file.to_str().unwrap(), &url]);
        assert!(out.stdout.starts_with("HTTP/2 200"), "{how}: not HTTP/2: {out:?}");
        assert_eq!(header(&out.stdout, "content-length"), Some("300000"), "{out:?}");
        assert!(std::fs::read(&out_file).unwrap() == want, "{how}: body differs");
        // Ranges and revalidation are the same service.
        let out = curl(&[how, "--cacert", &c.path("ca.crt"), "-D", "-", "-o", "/dev/null", "-r", "10-19", &url]);
        assert!(out.stdout.starts_with("HTTP/2 206"), "{out:?}");
        assert_eq!(header(&out.stdout, "content-range"), Some("bytes 10-19/300000"), "{out:?}");
    }
    // HTTP/1.1 still works on the TLS port when the client offers only that.
    let out = curl(&[
        "--http1.1",
        "--cacert",
        &c.path("ca.crt"),
        "-D",
        "-",
        "-o",
        "/dev/null",
        &format!("{}/", tls.url("https")),
    ]);
    assert!(out.stdout.starts_with("HTTP/1.1 200"), "{out:?}");
    // h2load: many streams on few connections, all answered.
    for url in [format!("{}/index.html", tls.url("https")), format!("{}/index.html", plain.url("http"))] {
        let mut cmd = Command::new("h2load");
        cmd.args(["-n", "400", "-c", "4", "-m", "10", &url]);
        let out = run(cmd, b"", T);
        assert!(out.stdout.contains("Application protocol: h2"), "{out:?}");
        assert!(out.stdout.contains("400 succeeded, 0 failed") && out.stdout.contains("400 2xx"), "{out:?}");
    }
}

#[test]
fn an_idle_http2_connection_is_closed_after_the_idle_timeout() {
    let dir = site();
    let s = httpd(dir.path(), &["--idle-timeout", "1"]);
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The HTTP/2 preface and an empty SETTINGS frame, then silence.
    c.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0").unwrap();
    let start = std::time::Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("the idle connection was not closed: {e}"),
        }
    }
    let waited = start.elapsed();
    assert!(got.len() >= 9 && got[3] == 0x04, "the server spoke HTTP/2 first (SETTINGS): {got:?}");
    assert!(waited >= Duration::from_millis(900) && waited < Duration::from_secs(5), "closed after {waited:?}");
    // Meanwhile the server serves others.
    let out = curl(&["--http2-prior-knowledge", &format!("{}/", s.url("http"))]);
    assert_eq!(out.stdout, "<h1>home</h1>\n", "{out:?}");
}

#[test]
fn every_traversal_variant_is_refused() {
    let dir = site();
    // A secret next to the root, and a symlink inside the root that points at it.
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "TOP SECRET").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).unwrap();
    let s = httpd(dir.path(), &[]);
    let base = s.url("http");
    let variants = [
        "/../../../../etc/passwd",
        "/docs/../../../../etc/passwd",
        "/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/%2E%2E/%2E%2E/etc/passwd",
        "/.%2e/.%2e/etc/passwd",
        "/%2e./%2e./etc/passwd",
        "/docs%2f..%2f..%2f..%2fetc%2fpasswd",
        "/docs/..%2f..%2f..%2fetc/passwd",
        "/..%5c..%5c..%5cetc%5cpasswd",
        "/docs\\..\\..\\etc\\passwd",
        "/%252e%252e/%252e%252e/etc/passwd",
        "/docs/big.txt%00.html",
        "/%00/etc/passwd",
        "/etc/passwd",
        "//etc/passwd",
        "/link/secret.txt",
        "/link/../../etc/passwd",
        "/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd",
    ];
    for v in variants {
        let out = curl(&["--path-as-is", "-o", "-", "-w", "\n%{http_code}", &format!("{base}{v}")]);
        let code = out.stdout.lines().last().unwrap_or_default();
        assert!(code == "404" || code == "400" || code == "403", "{v} gave {code}: {}", out.stdout);
        assert!(!out.stdout.contains("root:") && !out.stdout.contains("TOP SECRET"), "{v} leaked: {}", out.stdout);
    }
}

#[test]
fn a_slowloris_crowd_does_not_stop_a_normal_client() {
    let dir = site();
    let s = httpd(dir.path(), &["--header-timeout", "3", "--max-connections", "300"]);
    let mut crowd = Vec::new();
    for _ in 0..200 {
        let mut c = TcpStream::connect(s.addr).unwrap();
        c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ").unwrap();
        crowd.push(c);
    }
    let out = curl(&["-o", "-", "-w", "%{http_code}", &format!("{}/", s.url("http"))]);
    assert!(out.stdout.ends_with("200"), "{out:?}");
    // The half-sent requests are dropped after the header timeout (3 s from connecting).
    let mut one = crowd.pop().unwrap();
    one.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = Vec::new();
    one.read_to_end(&mut buf).expect("a half-sent request must be dropped, not kept");
    let text = String::from_utf8_lossy(&buf);
    assert!(buf.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
}

#[test]
fn trickled_headers_and_idle_keep_alive_are_cut_at_the_header_timeout() {
    let dir = site();
    let s = httpd(dir.path(), &["--header-timeout", "2"]);
    // A byte every 300 ms keeps the socket busy but never finishes the head.
    let mut slow = TcpStream::connect(s.addr).unwrap();
    let start = std::time::Instant::now();
    let mut closed = false;
    for b in b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter() {
        // The write after the server's close draws a reset; the one after that fails.
        if slow.write_all(&[*b]).is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let waited = start.elapsed();
    assert!(closed, "a trickling client was served for {waited:?}");
    assert!(waited >= Duration::from_millis(1800) && waited < Duration::from_secs(6), "cut after {waited:?}");
    // A kept-alive connection that goes quiet after a response is closed too.
    let mut idle = TcpStream::connect(s.addr).unwrap();
    idle.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let start = std::time::Instant::now();
    let mut got = Vec::new();
    idle.read_to_end(&mut got).expect("an idle keep-alive connection must be closed");
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"), "{got:?}");
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(1800) && waited < Duration::from_secs(6), "closed after {waited:?}");
}

#[test]
fn a_paused_download_outlives_the_header_timeout() {
    let dir = site();
    std::fs::write(dir.path().join("large.bin"), vec![5u8; 40 << 20]).unwrap();
    let s = httpd(dir.path(), &["--header-timeout", "1"]);
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.write_all(b"GET /large.bin HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut first = vec![0u8; 64 * 1024];
    c.read_exact(&mut first).unwrap();
    // The reader stops: the server's writes stall for three header timeouts.
    std::thread::sleep(Duration::from_secs(3));
    let mut rest = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    let head_len = first.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let want = (40 << 20) + head_len;
    while first.len() + rest.len() < want {
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => rest.extend_from_slice(&buf[..n]),
            Err(e) => panic!("download broken after the pause: {e}"),
        }
    }
    assert_eq!(first.len() + rest.len(), want, "the download was cut after the pause");
}

#[test]
fn redirect_and_debug_modes() {
    let s = Server::start("httpd", &["-L", "--redirect_url", "https://example.com/"]);
    let out = curl(&["-D", "-", "-o", "/dev/null", &format!("{}/any/path", s.url("http"))]);
    assert!(out.stdout.starts_with("HTTP/1.1 301"), "{}", out.stdout);
    assert_eq!(header(&out.stdout, "location"), Some("https://example.com/"));
    let out =
        curl(&["-X", "POST", "-d", "x=1", "-o", "/dev/null", "-w", "%{http_code}", &format!("{}/", s.url("http"))]);
    assert_eq!(out.stdout, "200");
    let d = Server::start("httpd", &["-D"]);
    let out = curl(&["-d", "hello=world", "-H", "X-Test: yes", &format!("{}/debug?q=1", d.url("http"))]);
    assert_eq!(out.stdout, "OK");
    d.wait_for_line("== Headers ==", T);
    d.wait_for_line("x-test: yes", T);
    d.wait_for_line("hello=world", T);
    // Issue 25.12: what a client sends is shown escaped, never obeyed by the terminal.
    let out = curl(&["--data-binary", "body\x1b]0;pwned\x07\r", &format!("{}/", d.url("http"))]);
    assert_eq!(out.stdout, "OK");
    d.wait_for_line(r"body\x1b]0;pwned\x07\r", T);
}

#[test]
fn small_files_are_answered_from_memory_only_while_unchanged() {
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("site");
    std::fs::create_dir(&root).unwrap();
    let page = root.join("page.txt");
    std::fs::write(&page, "version one\n").unwrap();
    std::fs::write(base.path().join("secret.txt"), "secret file\n").unwrap();
    let s = httpd(&root, &[]);
    let url = format!("{}/page.txt", s.url("http"));
    assert_eq!(curl(&[&url]).stdout, "version one\n");
    assert_eq!(curl(&[&url]).stdout, "version one\n", "the second answer (from memory) is the same");
    std::fs::write(&page, "version two\n").unwrap();
    assert_eq!(curl(&[&url]).stdout, "version two\n", "rewritten with the same length: the new bytes");
    assert_eq!(curl(&["-r", "8-10", &url]).stdout, "two", "a range of the kept copy");
    assert_eq!(curl(&["--compressed", &url]).stdout, "version two\n");
    std::fs::remove_file(&page).unwrap();
    std::os::unix::fs::symlink(base.path().join("secret.txt"), &page).unwrap();
    let out = curl(&["-o", "/dev/null", "-w", "%{http_code}", &url]);
    assert_eq!(out.stdout, "404", "now a symlink out of the root: refused, whatever was kept");
    std::fs::remove_file(&page).unwrap();
    let out = curl(&["-o", "/dev/null", "-w", "%{http_code}", &url]);
    assert_eq!(out.stdout, "404", "gone");
}

/// Issue 25.1: opening a FIFO for reading waits for a writer; on the executor thread that
/// stopped every client until something opened it.
#[test]
fn a_fifo_under_the_root_is_404_and_blocks_nobody() {
    let dir = site();
    let fifo = dir.path().join("pipe");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    std::fs::create_dir(dir.path().join("fifodir")).unwrap();
    assert!(Command::new("mkfifo").arg(dir.path().join("fifodir/index.html")).status().unwrap().success());
    let s = httpd(dir.path(), &[]);
    let base = s.url("http");
    // A folder whose index.html is a FIFO is listed, as if it had none.
    for (path, code) in [("/pipe", "404"), ("/fifodir/", "200")] {
        let started = std::time::Instant::now();
        let out = curl(&["-m", "3", "-o", "/dev/null", "-w", "%{http_code}", &format!("{base}{path}")]);
        assert_eq!(out.stdout, code, "{path}: {}", out.stderr);
        assert!(started.elapsed() < Duration::from_secs(3), "{path} took {:?}", started.elapsed());
    }
    let out = curl(&["-m", "3", &format!("{base}/index.html")]);
    assert_eq!(out.stdout, "<h1>home</h1>\n", "the server still answers: {}", out.stderr);
}

/// Sends `request` on a new connection and returns the status line.
fn status_of(addr: std::net::SocketAddr, request: &str) -> String {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(request.as_bytes()).unwrap();
    let mut buf = vec![0u8; 4096];
    let n = c.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or("").to_string()
}

/// Issue 25.10: RFC 9112 §3.2 (Host) and RFC 9110 §13.1.3 (a future If-Modified-Since).
#[test]
fn host_header_rules_and_a_future_if_modified_since() {
    let dir = site();
    let s = httpd(dir.path(), &[]);
    let get =
        |headers: &str| status_of(s.addr, &format!("GET /index.html HTTP/1.1\r\n{headers}Connection: close\r\n\r\n"));
    assert_eq!(get("Host: a\r\n"), "HTTP/1.1 200 OK");
    assert_eq!(get(""), "HTTP/1.1 400 Bad Request", "HTTP/1.1 without Host");
    assert_eq!(get("Host: a\r\nHost: b\r\n"), "HTTP/1.1 400 Bad Request", "two Host headers");
    assert_eq!(status_of(s.addr, "GET /index.html HTTP/1.0\r\n\r\n"), "HTTP/1.0 200 OK", "HTTP/1.0 may omit it");
    let future = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(86_400));
    assert_eq!(get(&format!("Host: a\r\nIf-Modified-Since: {future}\r\n")), "HTTP/1.1 200 OK");
    let now = httpdate::fmt_http_date(std::time::SystemTime::now());
    assert_eq!(get(&format!("Host: a\r\nIf-Modified-Since: {now}\r\n")), "HTTP/1.1 304 Not Modified");
}

/// One HTTP/2 frame: length, type, flags, stream id, payload.
fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Issue 25.4: a client that opens many HTTP/2 streams of a big file and never reads must
/// not make the server hold ~520 KiB per stream (20 × 100 streams reached 1 GiB).
#[test]
fn stalled_http2_streams_hold_bounded_memory() {
    let dir = site();
    let big: Vec<u8> = (0..8 << 20).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    std::fs::write(dir.path().join("big.bin"), big).unwrap();
    let s = httpd(dir.path(), &[]);
    let before = s.peak_rss_kib();
    let mut conns = Vec::new();
    for _ in 0..10 {
        let mut c = TcpStream::connect(s.addr).unwrap();
        let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        // SETTINGS: initial window 2^31-1 (the server may send all it likes), then ack the
        // server's settings unread, and open the connection window as far as it goes.
        out.extend(h2_frame(4, 0, 0, &[0, 4, 0x7f, 0xff, 0xff, 0xff]));
        out.extend(h2_frame(4, 1, 0, &[]));
        out.extend(h2_frame(8, 0, 0, &0x7fff_0000u32.to_be_bytes()));
        for i in 0..100u32 {
            // GET http://a/big.bin, HPACK: :method GET, :scheme http, :path, :authority.
            let mut block = vec![0x82, 0x86, 0x44, 8];
            block.extend_from_slice(b"/big.bin");
            block.extend_from_slice(&[0x41, 1, b'a']);
            out.extend(h2_frame(1, 0x5, 1 + 2 * i, &block));
        }
        c.write_all(&out).unwrap();
        conns.push(c);
    }
    // Let the server fill what it will; it must keep answering others meanwhile.
    std::thread::sleep(Duration::from_secs(3));
    let out = curl(&["-m", "5", &format!("{}/index.html", s.url("http"))]);
    assert_eq!(out.stdout, "<h1>home</h1>\n", "{}", out.stderr);
    let grown = s.peak_rss_kib().saturating_sub(before);
    // 1,000 stalled streams: 32 KiB each at most is 32 MiB; the old ~520 KiB was 500 MiB.
    assert!(grown < 64 * 1024, "peak RSS grew by {grown} KiB with 1,000 stalled streams");
    drop(conns);
}

/// Issue 22: listings escape hostile names, --no-listing hides them, a folder without its
/// slash is redirected.
#[test]
fn listings_escape_hostile_names_and_folders_redirect_to_their_slash() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("files")).unwrap();
    for name in ["<img src=x onerror=alert(1)>.txt", "a&b\"c'.txt", "plain.txt", "sp ace#?.txt"] {
        std::fs::write(dir.path().join("files").join(name), "x").unwrap();
    }
    std::fs::create_dir(dir.path().join("files/sub")).unwrap();
    let s = httpd(dir.path(), &[]);
    let base = s.url("http");
    let out = curl(&["-D", "-", &format!("{base}/files/")]);
    let page = &out.stdout;
    assert!(
        page.starts_with("HTTP/1.1 200") && header(page, "content-type") == Some("text/html; charset=utf-8"),
        "{page}"
    );
    assert!(!page.contains("<img"), "an unescaped name: {page}");
    assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;.txt"), "{page}");
    assert!(page.contains("a&amp;b&quot;c'.txt"), "{page}");
    assert!(page.contains("href=\"sp%20ace%23%3F.txt\""), "the link must lead to the file: {page}");
    assert!(page.contains("href=\"sub/\""), "{page}");
    // Every link works.
    for (href, want) in [("sp%20ace%23%3F.txt", "200"), ("%3Cimg%20src=x%20onerror=alert(1)%3E.txt", "200")] {
        let out = curl(&["-o", "/dev/null", "-w", "%{http_code}", &format!("{base}/files/{href}")]);
        assert_eq!(out.stdout, want, "{href}");
    }
    let out = curl(&["-D", "-", "-o", "/dev/null", &format!("{base}/files")]);
    assert!(
        out.stdout.starts_with("HTTP/1.1 301") && header(&out.stdout, "location") == Some("/files/"),
        "{}",
        out.stdout
    );
    let hidden = httpd(dir.path(), &["--no-listing"]);
    let out = curl(&["-o", "/dev/null", "-w", "%{http_code}", &format!("{}/files/", hidden.url("http"))]);
    assert_eq!(out.stdout, "404");
}

/// Issue 22: --max-connections answers 503 beyond the limit, and a big download streams in
/// constant memory.
#[test]
fn connections_over_the_limit_get_503_and_big_files_stream_in_constant_memory() {
    let dir = tempfile::tempdir().unwrap();
    let f = std::fs::File::create(dir.path().join("big.bin")).unwrap();
    f.set_len(512 << 20).unwrap();
    drop(f);
    std::fs::write(dir.path().join("small.txt"), "small\n").unwrap();
    let s = httpd(dir.path(), &["--max-connections", "1"]);
    let mut held = TcpStream::connect(s.addr).unwrap();
    held.write_all(b"GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    held.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 256];
    assert!(held.read(&mut buf).unwrap() > 0, "the first connection is served");
    assert_eq!(status_of(s.addr, "GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n"), "HTTP/1.1 503 Service Unavailable");
    drop(held);
    std::thread::sleep(Duration::from_millis(200));
    let out = curl(&["-o", "/dev/null", "-w", "%{http_code} %{size_download}", &format!("{}/big.bin", s.url("http"))]);
    assert_eq!(out.stdout, format!("200 {}", 512 << 20), "{}", out.stderr);
    let peak = s.peak_rss_kib();
    assert!(peak < 32 * 1024, "peak RSS {peak} KiB while sending 512 MiB");
}

/// Issue 19: `--cors` on every response and preflights answered, with curl as the browser
/// would ask; a named origin gets `Vary: Origin`.
#[test]
fn cors_headers_and_preflight() {
    let dir = site();
    let any = httpd(dir.path(), &["--cors"]);
    let url = format!("{}/index.html", any.url("http"));
    let out = curl(&["-i", "-H", "Origin: http://other.test", &url]);
    assert_eq!(header(&out.stdout, "access-control-allow-origin"), Some("*"), "{}", out.stdout);
    let preflight = |method: &str, url: &str| {
        let asked = format!("Access-Control-Request-Method: {method}");
        let (origin, headers) = ("Origin: http://other.test", "Access-Control-Request-Headers: x-token");
        curl(&["-i", "-X", "OPTIONS", "-H", origin, "-H", &asked, "-H", headers, url])
    };
    let pre = preflight("GET", &url);
    assert!(pre.stdout.starts_with("HTTP/1.1 204"), "{}", pre.stdout);
    assert_eq!(header(&pre.stdout, "access-control-allow-methods"), Some("GET, HEAD, OPTIONS"));
    assert_eq!(header(&pre.stdout, "access-control-allow-headers"), Some("x-token"));
    // With --upload the preflight allows PUT and POST as well.
    let uploads = httpd(dir.path(), &["--cors", "--upload"]);
    let pre = preflight("PUT", &format!("{}/x.txt", uploads.url("http")));
    assert_eq!(header(&pre.stdout, "access-control-allow-methods"), Some("GET, HEAD, PUT, POST, OPTIONS"));
    let named = httpd(dir.path(), &["--cors", "https://app.test"]);
    let out = curl(&["-i", &format!("{}/index.html", named.url("http"))]);
    assert_eq!(header(&out.stdout, "access-control-allow-origin"), Some("https://app.test"));
    assert!(header(&out.stdout, "vary").is_some_and(|v| v.ends_with("Origin")), "{}", out.stdout);
    // Without --cors, none.
    let plain = httpd(dir.path(), &[]);
    let out = curl(&["-i", &format!("{}/index.html", plain.url("http"))]);
    assert_eq!(header(&out.stdout, "access-control-allow-origin"), None);
}

/// Issue 19: `--spa`: a page route that asks for HTML gets index.html; a missing asset 404.
#[test]
fn spa_routes_get_the_index_and_missing_assets_404() {
    let dir = site();
    let server = httpd(dir.path(), &["--spa"]);
    let base = server.url("http");
    let out =
        curl(&["-w", "%{http_code}", "-H", "Accept: text/html,application/xhtml+xml", &format!("{base}/app/users/7")]);
    assert_eq!(out.stdout, "<h1>home</h1>\n200");
    let out = curl(&["-o", "/dev/null", "-w", "%{http_code}", "-H", "Accept: */*", &format!("{base}/static/app.js")]);
    assert_eq!(out.stdout, "404");
    // A file that exists is itself.
    let out = curl(&["-H", "Accept: text/html", &format!("{base}/docs/a%20file.txt")]);
    assert_eq!(out.stdout, "spaced\n");
}

/// Issue 19: basic auth from `--auth` and from an htpasswd file (bcrypt, apr1 from openssl,
/// SHA), checked with curl: missing and wrong credentials get 401 with the realm.
#[test]
fn basic_auth_from_flags_and_htpasswd() {
    let dir = site();
    let code = |url: &str, user: Option<&str>| {
        let mut args = vec!["-o", "/dev/null", "-w", "%{http_code}"];
        if let Some(u) = user {
            args.extend(["-u", u]);
        }
        args.push(url);
        curl(&args).stdout
    };
    let server = httpd(dir.path(), &["--auth", "alice:pw1", "--auth", "bob:pw2", "--cors"]);
    let url = format!("{}/index.html", server.url("http"));
    let out = curl(&["-i", &url]);
    assert!(out.stdout.starts_with("HTTP/1.1 401"), "{}", out.stdout);
    assert_eq!(header(&out.stdout, "www-authenticate"), Some("Basic realm=\"ws httpd\""));
    assert_eq!(code(&url, Some("alice:pw1")), "200");
    assert_eq!(code(&url, Some("bob:pw2")), "200");
    assert_eq!(code(&url, Some("alice:pw2")), "401");
    // A preflight carries no credentials and still passes.
    let pre = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-X",
        "OPTIONS",
        "-H",
        "Origin: http://x",
        "-H",
        "Access-Control-Request-Method: GET",
        &url,
    ]);
    assert_eq!(pre.stdout, "204");

    let apr1 = Command::new("openssl").args(["passwd", "-apr1", "md5pw"]).output().unwrap();
    let apr1 = String::from_utf8(apr1.stdout).unwrap();
    let sha = {
        use base64::Engine;
        let digest =
            Command::new("sh").arg("-c").arg("printf shapw | openssl dgst -sha1 -binary").output().unwrap().stdout;
        base64::engine::general_purpose::STANDARD.encode(digest)
    };
    let file = dir.path().join("users.htpasswd");
    let bcrypt = bcrypt::hash("bcryptpw", 5).unwrap();
    std::fs::write(&file, format!("carol:{bcrypt}\ndave:{}\nerin:{{SHA}}{sha}\n", apr1.trim())).unwrap();
    let server = httpd(dir.path(), &["--auth-file", file.to_str().unwrap()]);
    let url = format!("{}/index.html", server.url("http"));
    assert_eq!(code(&url, Some("carol:bcryptpw")), "200");
    assert_eq!(code(&url, Some("carol:wrong")), "401");
    assert_eq!(code(&url, Some("dave:md5pw")), "200");
    assert_eq!(code(&url, Some("erin:shapw")), "200");
    assert_eq!(code(&url, None), "401");
    // A file with a line no htpasswd makes is refused at start.
    std::fs::write(&file, "mallory:$2y$short\n").unwrap();
    let mut bad = crate::util::ws();
    bad.args(["httpd", "--port", "0", "--auth-file", file.to_str().unwrap()]);
    let out = run(bad, b"", T);
    assert_eq!(out.code(), 2, "{out:?}");
}

/// Issue 19: `-H` and `--cache-control` on every response (a 404 too); the combined log.
#[test]
fn extra_headers_cache_control_and_the_combined_log() {
    let dir = site();
    let server = httpd(
        dir.path(),
        &["-H", "X-Frame-Options: DENY", "--cache-control", "max-age=60", "--log-format", "combined"],
    );
    for path in ["/index.html", "/nothing"] {
        let out = curl(&["-i", "-A", "agent/1", "-e", "http://ref.test/", &format!("{}{path}", server.url("http"))]);
        assert_eq!(header(&out.stdout, "x-frame-options"), Some("DENY"), "{}", out.stdout);
        assert_eq!(header(&out.stdout, "cache-control"), Some("max-age=60"), "{}", out.stdout);
    }
    let line = server.wait_for_line("\"GET /nothing HTTP/1.1\" 404", T);
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    assert!(line.ends_with("\"http://ref.test/\" \"agent/1\""), "{line}");
}

/// Issue 19: brotli and zstd beside gzip, chosen by q-values, decoded by curl; a fresh
/// precompressed sibling is served as it is, a stale one is not.
#[test]
fn brotli_zstd_and_precompressed_siblings() {
    let dir = site();
    let server = httpd(dir.path(), &[]);
    let url = format!("{}/docs/big.txt", server.url("http"));
    let original = std::fs::read_to_string(dir.path().join("docs/big.txt")).unwrap();
    for (accept, coding) in [
        ("gzip, deflate, br, zstd", "br"),
        ("zstd, gzip", "zstd"),
        ("br;q=0.5, gzip;q=0.9", "gzip"),
        ("zstd;q=0, br;q=0, gzip;q=0", ""),
    ] {
        let out = curl(&["-i", "--compressed", "-H", &format!("Accept-Encoding: {accept}"), &url]);
        let (head, body) = out.stdout.split_once("\r\n\r\n").unwrap();
        assert_eq!(header(head, "content-encoding").unwrap_or(""), coding, "{accept}: {head}");
        assert_eq!(body, original, "{accept}: curl could not decode it");
    }
    // A precompressed sibling, fresh: served as it is (its content tells it apart).
    let js = dir.path().join("docs/app.js");
    std::fs::write(&js, "console.log('original');\n").unwrap();
    let make_gz = format!("printf 'console.log(\"precompressed\");\\n' | gzip -9 > {}.gz", js.display());
    assert!(Command::new("sh").arg("-c").arg(&make_gz).status().unwrap().success());
    let js_url = format!("{}/docs/app.js", server.url("http"));
    let out = curl(&["-i", "--compressed", "-H", "Accept-Encoding: gzip", &js_url]);
    assert!(out.stdout.contains("precompressed"), "{}", out.stdout);
    assert!(
        out.stdout.contains("Content-Type: text/javascript") || out.stdout.contains("content-type: text/javascript"),
        "{}",
        out.stdout
    );
    // Without gzip accepted, the file itself; with the sibling older than the file, the file.
    assert_eq!(curl(&[&js_url]).stdout, "console.log('original');\n");
    let stale = format!("touch -d '2001-01-01' {}.gz", js.display());
    assert!(Command::new("sh").arg("-c").arg(&stale).status().unwrap().success());
    let out = curl(&["--compressed", "-H", "Accept-Encoding: gzip", &js_url]);
    assert_eq!(out.stdout, "console.log('original');\n");
}

/// Issue 19: a herd of clients asking for big text files as brotli at once holds bounded
/// memory: at most two compressions run at a time (each holds its encoder's window), the
/// others wait, and every client still gets its whole file.
#[test]
fn a_herd_asking_for_compressed_big_files_holds_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let words = ["alpha", "beta", "gamma", "delta", "socket", "frame", "server", "client", "message", "deflate"];
    let mut x = 1u64;
    let mut texts = Vec::new();
    for i in 0..8 {
        let text: String = (0..400_000)
            .map(|_| {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                words[(x >> 60) as usize % words.len()]
            })
            .collect::<Vec<_>>()
            .join(" ");
        std::fs::write(dir.path().join(format!("f{i}.txt")), &text).unwrap();
        texts.push(text);
    }
    let server = httpd(dir.path(), &["-q"]);
    let base = server.url("http");
    let clients: Vec<_> = (0..24)
        .map(|i| {
            let url = format!("{base}/f{}.txt", i % 8);
            std::thread::spawn(move || curl(&["--compressed", "-H", "Accept-Encoding: br", &url]).stdout)
        })
        .collect();
    for (i, c) in clients.into_iter().enumerate() {
        assert!(c.join().unwrap() == texts[i % 8], "client {i} got another body");
    }
    let rss = server.peak_rss_kib();
    eprintln!("peak RSS {rss} KiB");
    // Measured in a debug build: 44 MiB; with 24 compressions at once (no limit) 279 MiB.
    assert!(rss < 96 * 1024, "peak RSS {rss} KiB");
}

/// CPU seconds (user + system) of each thread of `pid`, by thread name.
fn thread_cpu(pid: u32) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().filter_map(Result::ok) {
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let name = stat[open + 1..close].to_string();
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        let ticks = fields.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
            + fields.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
        out.push((name, ticks));
    }
    out
}

/// Issue 18: `--threads`: a load of many connections is served by every worker (each
/// worker thread used CPU), and `--max-connections` counts them all.
#[test]
fn workers_share_the_requests_and_the_connection_limit() {
    let dir = site();
    let s = httpd(dir.path(), &["--threads", "3", "-q"]);
    let mut wrk = Command::new("wrk");
    wrk.args(["-t2", "-c32", "-d1s", &format!("{}/index.html", s.url("http"))]);
    let out = run(wrk, b"", T);
    assert!(out.stdout.contains("Requests/sec"), "{out:?}");
    assert!(!out.stdout.contains("Non-2xx"), "{}", out.stdout);
    let threads = thread_cpu(s.pid());
    // Worker 0 is the main thread (named after the program), the others ws-worker-N.
    let busy: Vec<&(String, u64)> =
        threads.iter().filter(|(n, t)| (n == "ws" || n.starts_with("ws-worker-")) && *t > 0).collect();
    assert!(threads.iter().filter(|(n, _)| n.starts_with("ws-worker-")).count() == 2, "{threads:?}");
    assert!(busy.len() >= 2, "only one worker served 32 connections: {threads:?}");
    // The limit is the server's: one connection held, every other refused, whichever worker.
    let limited = httpd(dir.path(), &["--threads", "3", "--max-connections", "1"]);
    let mut held = TcpStream::connect(limited.addr).unwrap();
    held.write_all(b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    held.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 256];
    assert!(held.read(&mut buf).unwrap() > 0, "the first connection is served");
    for _ in 0..6 {
        let got = status_of(limited.addr, "GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(got, "HTTP/1.1 503 Service Unavailable");
    }
}
