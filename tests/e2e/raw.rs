//! A deliberately bad WebSocket client on a raw socket: the handshake by hand, then any
//! frame we like (invalid UTF-8, reserved bits, oversized), to see how servers react.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

pub struct RawWs {
    s: TcpStream,
}

impl RawWs {
    /// Connects and runs the opening handshake; panics unless the server answers 101.
    pub fn connect(addr: SocketAddr) -> RawWs {
        let (s, head) = upgrade(addr);
        assert!(head.starts_with("HTTP/1.1 101"), "no upgrade: {head}");
        RawWs { s }
    }

    /// Sends one masked frame: `first_byte` carries FIN, RSV and the opcode.
    pub fn send_frame(&mut self, first_byte: u8, payload: &[u8]) {
        let mut f = vec![first_byte];
        let mask = [0x11u8, 0x22, 0x33, 0x44];
        match payload.len() {
            n if n < 126 => f.push(0x80 | n as u8),
            n if n < 65536 => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.s.write_all(&f).unwrap();
    }

    /// Reads whatever comes at about `bytes_per_sec`, until `total` bytes or the end of the
    /// stream; returns how many bytes came.
    pub fn read_slowly(&mut self, total: usize, bytes_per_sec: usize) -> usize {
        let started = std::time::Instant::now();
        let mut buf = vec![0u8; 64 * 1024];
        let mut got = 0;
        while got < total {
            match self.s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
            let due = Duration::from_secs_f64(got as f64 / bytes_per_sec as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        got
    }

    /// Reads one (unmasked, server-sent) frame: its opcode and payload; None if the socket
    /// closed.
    pub fn read_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        let mut h = [0u8; 2];
        self.s.read_exact(&mut h).ok()?;
        let opcode = h[0] & 0x0f;
        let mut len = (h[1] & 0x7f) as u64;
        if len == 126 {
            let mut b = [0u8; 2];
            self.s.read_exact(&mut b).ok()?;
            len = u16::from_be_bytes(b) as u64;
        } else if len == 127 {
            let mut b = [0u8; 8];
            self.s.read_exact(&mut b).ok()?;
            len = u64::from_be_bytes(b);
        }
        let mut payload = vec![0u8; len as usize];
        self.s.read_exact(&mut payload).ok()?;
        Some((opcode, payload))
    }

    /// Reads frames until a close frame; returns its code (None if the socket just closed).
    pub fn read_close_code(&mut self) -> Option<u16> {
        loop {
            let (opcode, payload) = self.read_frame()?;
            if opcode == 8 {
                return (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
            }
        }
    }
}

/// Sends a valid upgrade request on a new connection; returns the socket and the answer's
/// head, whatever it is (101, 503, …).
pub fn upgrade(addr: SocketAddr) -> (TcpStream, String) {
    upgrade_with(addr, "")
}

/// Like [`upgrade`], with `extra` header lines (each ending in CRLF) in the request.
pub fn upgrade_with(addr: SocketAddr, extra: &str) -> (TcpStream, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
    .unwrap();
    let head = read_head(&mut s);
    (s, head)
}

/// Reads an HTTP response head (up to the blank line).
pub fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => head.push(b[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}
