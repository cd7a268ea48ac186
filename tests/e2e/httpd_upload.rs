//! Issue 19: `ws httpd --upload` against the real `curl`: `-T` (PUT) and `-F` (multipart
//! POST) land whole, under the root only, never replacing a file without `--overwrite`; a body
//! over `--max-upload-size`, or one cut off, leaves nothing behind; memory stays flat.

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::httpd::{curl, header, httpd};

/// Files in `dir` whose names start with the upload's temporary prefix.
fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(".ws-upload-"))
        .collect()
}

fn status(out: &crate::util::Output) -> String {
    out.stdout.lines().rfind(|l| l.starts_with("HTTP/")).unwrap_or("").to_string()
}

#[test]
fn put_and_multipart_uploads_land_whole_and_only_under_the_root() {
    let outside = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("site");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::os::unix::fs::symlink(outside.path(), root.join("away")).unwrap();
    let src = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(src.path().join("big.bin"), &big).unwrap();
    std::fs::write(src.path().join("a.txt"), "first\n").unwrap();
    std::fs::write(src.path().join("b.txt"), "second\n").unwrap();
    let (a, b, bigp) = (src.path().join("a.txt"), src.path().join("b.txt"), src.path().join("big.bin"));
    let (a, b, bigp) = (a.to_str().unwrap(), b.to_str().unwrap(), bigp.to_str().unwrap());

    // Without --upload, PUT and POST are 405 and nothing is written.
    let plain = httpd(&root, &[]);
    let out = curl(&["-i", "-T", a, &format!("{}/sub/a.txt", plain.url("http"))]);
    assert!(status(&out).starts_with("HTTP/1.1 405"), "{}", out.stdout);
    assert_eq!(header(&out.stdout, "allow"), Some("GET, HEAD"));
    assert!(!root.join("sub/a.txt").exists());

    let server = httpd(&root, &["--upload"]);
    let base = server.url("http");
    // PUT: 201 with Location, the bytes as sent.
    let out = curl(&["-i", "-T", a, &format!("{base}/sub/a.txt")]);
    assert!(status(&out).starts_with("HTTP/1.1 201"), "{}", out.stdout);
    assert_eq!(header(&out.stdout, "location"), Some("/sub/a.txt"));
    assert_eq!(std::fs::read_to_string(root.join("sub/a.txt")).unwrap(), "first\n");
    // A second PUT of the same name: 409, the first file untouched.
    let out = curl(&["-i", "-T", b, &format!("{base}/sub/a.txt")]);
    assert!(status(&out).starts_with("HTTP/1.1 409"), "{}", out.stdout);
    assert!(out.stdout.contains("--overwrite"), "{}", out.stdout);
    assert_eq!(std::fs::read_to_string(root.join("sub/a.txt")).unwrap(), "first\n");
    // Multipart: every file of the form, byte for byte, with the name given by ;filename=.
    let out = curl(&[
        "-i",
        "-F",
        &format!("one=@{bigp}"),
        "-F",
        &format!("two=@{b};filename=renamed.txt"),
        "-F",
        "note=hi",
        &format!("{base}/sub/"),
    ]);
    assert!(status(&out).starts_with("HTTP/1.1 201"), "{}", out.stdout);
    assert!(out.stdout.contains("created /sub/big.bin (3000000 bytes)"), "{}", out.stdout);
    assert_eq!(std::fs::read(root.join("sub/big.bin")).unwrap(), big);
    assert_eq!(std::fs::read_to_string(root.join("sub/renamed.txt")).unwrap(), "second\n");
    assert!(!root.join("sub/note").exists(), "a text field is not a file");
    // The uploaded file is served at once (the small-file cache sees a new file).
    assert_eq!(curl(&[&format!("{base}/sub/renamed.txt")]).stdout, "second\n");

    // Names that try to leave the root: each refused, nothing written anywhere else.
    for evil in ["../evil.txt", "../../evil.txt", "sub/../../evil.txt", "..\\evil.txt", "/etc/evil.txt", ".."] {
        let out = curl(&["-i", "-F", &format!("f=@{a};filename={evil}"), &format!("{base}/sub/")]);
        assert!(status(&out).starts_with("HTTP/1.1 400"), "{evil}: {}", out.stdout);
    }
    // (curl -T to a URL ending in '/' appends the file's name, so those go as they are.)
    for path in ["/%2e%2e/evil.txt", "/sub/..%2fevil.txt", "/away/evil.txt", "/nope/evil.txt"] {
        let out = curl(&["-i", "--path-as-is", "-T", a, &format!("{base}{path}")]);
        let s = status(&out);
        assert!(s.starts_with("HTTP/1.1 400") || s.starts_with("HTTP/1.1 409"), "{path}: {}", out.stdout);
    }
    for path in ["/", "/sub/", "/away/"] {
        let out = curl(&["-i", "-X", "PUT", "--data-binary", "x", &format!("{base}{path}")]);
        let s = status(&out);
        assert!(s.starts_with("HTTP/1.1 400"), "PUT {path} is no file: {}", out.stdout);
    }
    let out = curl(&["-i", "-F", &format!("f=@{a}"), &format!("{base}/away/")]);
    assert!(status(&out).starts_with("HTTP/1.1 409"), "a symlink out of the root is no folder: {}", out.stdout);
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0, "nothing outside the root");
    assert!(!dir.path().join("evil.txt").exists());
    assert!(leftovers(&root.join("sub")).is_empty(), "{:?}", leftovers(&root.join("sub")));

    // Not multipart: 415.
    let out = curl(&["-i", "-d", "x=1", &format!("{base}/sub/")]);
    assert!(status(&out).starts_with("HTTP/1.1 415"), "{}", out.stdout);
    // The listing carries the upload form; a browser's POST gets 303 back to the folder.
    let listing = curl(&[&format!("{base}/sub/")]).stdout;
    assert!(listing.contains("<form method=\"post\" enctype=\"multipart/form-data\">"), "{listing}");
    let out = curl(&["-i", "-H", "Accept: text/html", "-F", &format!("f=@{a};filename=c.txt"), &format!("{base}/sub")]);
    assert!(status(&out).starts_with("HTTP/1.1 303"), "{}", out.stdout);
    assert_eq!(header(&out.stdout, "location"), Some("/sub/"));
    assert!(plain.output().iter().all(|l| !l.contains("warning")), "no warning without --upload");
    server.wait_for_line("--upload without --auth", Duration::from_secs(5));
}

#[test]
fn overwrite_replaces_files_but_not_through_symlinks_or_if_none_match() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("target.txt"), "outside\n").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("doc.txt"), "old\n").unwrap();
    std::os::unix::fs::symlink(outside.path().join("target.txt"), root.join("link.txt")).unwrap();
    std::fs::create_dir(root.join("folder")).unwrap();
    let server = httpd(root, &["--upload", "--overwrite"]);
    let base = server.url("http");
    let put = |path: &str, body: &str, extra: &[&str]| {
        let mut args = vec!["-i", "-X", "PUT", "--data-binary", body];
        args.extend_from_slice(extra);
        let url = format!("{base}{path}");
        args.push(&url);
        status(&curl(&args))
    };
    assert!(put("/doc.txt", "new\n", &[]).starts_with("HTTP/1.1 204"), "replaced: 204");
    assert_eq!(std::fs::read_to_string(root.join("doc.txt")).unwrap(), "new\n");
    assert!(put("/doc.txt", "newer\n", &["-H", "If-None-Match: *"]).starts_with("HTTP/1.1 412"));
    assert_eq!(std::fs::read_to_string(root.join("doc.txt")).unwrap(), "new\n");
    // The symlink is replaced by a file; what it pointed to outside the root is untouched.
    assert!(put("/link.txt", "inside\n", &[]).starts_with("HTTP/1.1 204"));
    assert_eq!(std::fs::read_to_string(outside.path().join("target.txt")).unwrap(), "outside\n");
    assert!(!std::fs::symlink_metadata(root.join("link.txt")).unwrap().is_symlink());
    assert!(put("/folder", "x", &[]).starts_with("HTTP/1.1 409"), "a folder is not replaced by a file");
    assert!(root.join("folder").is_dir());
    assert!(leftovers(root).is_empty());
}

#[test]
fn oversized_and_broken_uploads_leave_nothing_and_big_ones_stream_in_constant_memory() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let src = tempfile::tempdir().unwrap();
    let body = vec![b'x'; 100 * 1024];
    std::fs::write(src.path().join("100k"), &body).unwrap();
    let file = src.path().join("100k");
    let server = httpd(root, &["--upload", "--max-upload-size", "64k"]);
    let base = server.url("http");
    // Content-Length over the limit: 413 before the body is sent (no 100 Continue).
    let out = curl(&["-i", "-T", file.to_str().unwrap(), &format!("{base}/a.bin")]);
    assert!(out.stdout.starts_with("HTTP/1.1 413"), "{}", out.stdout);
    // Chunked from a pipe: counted as it comes, 413, the partial file removed.
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-sS", "-i", "--max-time", "20", "-T", "-", &format!("{base}/b.bin")]);
    let out = crate::util::run(cmd, &body, Duration::from_secs(30));
    assert!(status(&out).starts_with("HTTP/1.1 413"), "{}", out.stdout);
    // multipart over the limit.
    let out = curl(&["-i", "-F", &format!("f=@{}", file.display()), &format!("{base}/")]);
    assert!(status(&out).starts_with("HTTP/1.1 413"), "{}", out.stdout);
    // A client that goes away mid-body.
    let mut s = TcpStream::connect(server.addr).unwrap();
    write!(s, "PUT /c.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\n").unwrap();
    s.write_all(&[b'y'; 20_000]).unwrap();
    s.flush().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    drop(s);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let names: Vec<_> = std::fs::read_dir(root).unwrap().filter_map(|e| e.ok()).map(|e| e.file_name()).collect();
        if names.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "left behind: {names:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Within the limit, fine.
    let out = curl(&["-i", "-X", "PUT", "--data-binary", "small", &format!("{base}/ok.txt")]);
    assert!(status(&out).starts_with("HTTP/1.1 201"), "{}", out.stdout);

    // 200 MiB through one PUT: peak RSS stays far below it.
    let big = src.path().join("big");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(200 << 20).unwrap();
    let server = httpd(root, &["--upload", "-q"]);
    let out = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-T",
        big.to_str().unwrap(),
        &format!("{}/big", server.url("http")),
    ]);
    assert_eq!(out.stdout, "201");
    assert_eq!(std::fs::metadata(root.join("big")).unwrap().len(), 200 << 20);
    let rss = server.peak_rss_kib();
    assert!(rss < 48 * 1024, "peak RSS {rss} KiB for a 200 MiB upload");
}
