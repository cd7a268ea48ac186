//! `ws send URL PATH`: sends one file as IXWebSocket's file PDU (`ws_common::pdu`), in
//! constant memory, and waits for the receiver's verdict.
//!
//! The PDU's fields are sorted by name, and `content` sorts first, so the message can be
//! *streamed*: the first fragment opens with `content `, each following fragment carries the
//! hex of the next piece of the file (hashing as it goes), and the last one holds
//! `djb2_hash`, `filename`, `id` and `kind`. The reference reads the whole file and builds a
//! message twice its size; on the wire the two are identical, so either side interoperates.
//!
//! Exit codes: 0 only on an ack with our id; 1 on an error PDU (with its message), a
//! timeout, or a dropped connection (the reference waited forever and exited 0); 2 for a
//! path that cannot be read, before any connection is made.

use std::ffi::{CStr, OsString};
use std::fs::File;
use std::io::Read;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use async_tungstenite::tungstenite::protocol::frame::Frame;
use async_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use clap::Parser;
use futures_util::StreamExt;
use ws_common::pdu::{self, Djb2};
use ws_common::ws::{ClientArgs, ClientOptions, Message, close_parts};
use ws_common::{error, info};
use ws_plugin_api::{Error, Plugin, declare_plugin};

/// Bytes of file per fragment (the fragment carries twice as many hex digits).
const CHUNK: usize = 256 * 1024;

/// Send a file
#[derive(Debug, Parser)]
#[command(name = "ws send", about = "Send a file to `ws receive` through `ws transfer`")]
struct Args {
    /// Connection url (ws:// or wss://)
    url: String,
    /// The file to send
    path: PathBuf,
    /// Do not offer permessage-deflate (offered by default; used when the server agrees)
    #[arg(short = 'x')]
    no_deflate: bool,
    /// Seconds to wait for the receiver's acknowledgement after the file is sent
    #[arg(long, default_value_t = 60, value_name = "S")]
    timeout: u64,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Default)]
struct Send;

impl Plugin for Send {
    const NAME: &'static CStr = c"send";
    const SUMMARY: &'static CStr = c"Send a file";

    fn run(&self, args: Vec<OsString>) -> Result<(), Error> {
        let args: Args = ws_common::args::parse(args)?;
        let url = ws_common::url::parse_ws_url(&args.url)?;
        let meta = std::fs::metadata(&args.path)
            .map_err(|e| Error::usage(format!("cannot read {}: {e}", args.path.display())))?;
        if !meta.is_file() {
            return Err(Error::usage(format!("{} is not a regular file", args.path.display())));
        }
        let file =
            File::open(&args.path).map_err(|e| Error::usage(format!("cannot read {}: {e}", args.path.display())))?;
        let name = args.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        args.client.prepare()?;
        let client = ClientOptions { deflate: !args.no_deflate, ..args.client.options(url) };
        ws_common::runtime::block_on(|_| send(args, client, file, meta.len(), name))
    }
}

async fn send(args: Args, client: ClientOptions, mut file: File, size: u64, name: String) -> Result<(), Error> {
    info!("ws_send: Connecting to url: {}", args.url);
    let (mut ws, response) = ws_common::ws::connect(&client)
        .await
        .map_err(|e| Error::failure(format!("cannot connect to {}: {e}", args.url)))?;
    info!("ws_send: connected");
    info!("Uri: {}", client.url.path());
    info!("Headers:");
    ws_common::ws::log_headers(&response);
    let id = ws_common::transfer::new_id();
    info!("ws_send: Sending {name} ({size} bytes), id {id}");
    let progress = ws_common::progress::Progress::new(
        Some(size),
        true,
        Some(Box::new(|done, total| info!("ws_send: {done} of {total} bytes sent ({}%)", done * 100 / total))),
    );
    let started = Instant::now();
    let mut hash = Djb2::default();
    let mut buf = vec![0u8; CHUNK];
    let mut frame = b"content ".to_vec();
    let mut sent: u64 = 0;
    let mut first = true;
    let lost = |e: async_tungstenite::tungstenite::Error| Error::failure(format!("connection lost while sending: {e}"));
    loop {
        let n = read_full(&mut file, &mut buf).map_err(|e| Error::failure(format!("cannot read {name}: {e}")))?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        if first
            && let Some(d) = ws.get_mut().deflate_mut()
            && !ws_common::deflate::worth_compressing(&buf[..n.min(256 * 1024)])
        {
            // Deflate would win only the hex encoding's half back, at many times the cost of
            // sending it: such a file goes out uncompressed (RFC 7692 §6.1 allows it).
            d.set_compress(false);
            info!("ws_send: {name} does not compress: sent uncompressed");
        }
        pdu::hex_encode_into(&buf[..n], &mut frame);
        let opcode = if first { Data::Binary } else { Data::Continue };
        first = false;
        ws.send(Message::Frame(Frame::message(std::mem::take(&mut frame), OpCode::Data(opcode), false)))
            .await
            .map_err(lost)?;
        sent += n as u64;
        progress.set(sent);
    }
    if sent != size {
        info!("ws_send: {name} changed while it was read: sent {sent} bytes, not {size}");
    }
    let hash_text = hash.0.to_string();
    let tail = pdu::encode([
        ("djb2_hash", hash_text.as_bytes()),
        ("filename", name.as_bytes()),
        ("id", id.as_bytes()),
        ("kind", &b"send"[..]),
    ]);
    frame.push(b'\n');
    frame.extend_from_slice(&tail);
    let opcode = if first { Data::Binary } else { Data::Continue };
    ws.send(Message::Frame(Frame::message(frame, OpCode::Data(opcode), true))).await.map_err(lost)?;
    progress.finish();
    let secs = started.elapsed().as_secs_f64().max(1e-6);
    info!("ws_send: sent {sent} bytes in {secs:.3} s ({:.1} MB/s)", sent as f64 / secs / 1e6);
    info!("ws_send: Waiting for ack...");
    let deadline = Duration::from_secs(args.timeout.max(1));
    let verdict = async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Binary(b))) => match pdu::decode(&b) {
                    Ok(p) if pdu::field(&p, "kind") == "error" => {
                        return Err(Error::failure(format!(
                            "the receiver refused the file: {}",
                            pdu::field(&p, "message")
                        )));
                    }
                    Ok(p) if pdu::field(&p, "ack") == "true" && pdu::field(&p, "id") == id => return Ok(()),
                    Ok(_) => info!("ws_send: ignoring a message ({} bytes) that is not our ack", b.len()),
                    Err(e) => error!("ws_send: Invalid pdu response ({e})"),
                },
                Some(Ok(Message::Close(f))) => {
                    let (code, reason) = close_parts(f.as_ref());
                    return Err(Error::failure(format!(
                        "connection closed before the ack: code {code} reason {reason}"
                    )));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(Error::failure(format!("connection lost before the ack: {e}"))),
                None => return Err(Error::failure("connection closed before the ack")),
            }
        }
    };
    let result = futures_lite::FutureExt::or(verdict, async {
        ws_common::runtime::Timer::after(deadline).await;
        Err(Error::failure(format!("no acknowledgement within {} s", deadline.as_secs())))
    })
    .await;
    if result.is_ok() {
        info!("ws_send: Done !");
    }
    ws_common::session::close_and_drain(&mut ws, 1000, "Normal closure").await;
    result
}

/// Reads until `buf` is full or the file ends.
fn read_full(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

declare_plugin!(Send);
