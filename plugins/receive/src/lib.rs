//! `ws receive URL`: receives files sent by `ws send` (ours or IXWebSocket's) through a
//! relay, in constant memory.
//!
//! The file PDU arrives as the fragments of one binary message; each fragment is decoded as
//! it comes (`ws_common::pdu::StreamDecoder`) into a temporary file in the target folder,
//! hashing as it goes. Only when the whole message is in and `djb2_hash` matches is the file
//! renamed to its final name and the ack sent. The name is the last component of the
//! `filename` field, checked so it can never point outside the target folder, and an existing
//! file is never replaced unless `--overwrite` says so.

use std::ffi::{CStr, OsString};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use futures_lite::io::{AsyncWriteExt, BufReader};
use ws_common::deflate::inflate::{InflatePos, MessageInflater};
use ws_common::frames::{self, FrameReader, op};
use ws_common::net::Stream;
use ws_common::pdu::{self, Djb2, StreamDecoder};
use ws_common::ws::ClientArgs;
use ws_common::{error, info};
use ws_plugin_api::{Error, Plugin, declare_plugin};

/// Receive a file
#[derive(Debug, Parser)]
#[command(name = "ws receive", about = "Receive files sent with `ws send` through `ws transfer`")]
struct Args {
    /// Connection url (ws:// or wss://)
    url: String,
    /// Milliseconds to sleep after each fragment (simulates a slow reader)
    #[arg(long, default_value_t = 0, value_name = "MS")]
    delay: u64,
    /// Folder to write files into
    #[arg(long = "save-dir", default_value = ".", value_name = "DIR")]
    save_dir: PathBuf,
    /// Keep receiving files until the connection closes (default: exit after one)
    #[arg(long = "keep-going")]
    keep_going: bool,
    /// Replace a file that already exists (default: refuse it with an error PDU)
    #[arg(long)]
    overwrite: bool,
    /// Largest frame accepted, in bytes (default: any; frames are read in pieces of 256 KiB,
    /// never held whole)
    #[arg(long = "max-frame-size", value_name = "BYTES")]
    max_frame: Option<usize>,
    /// Do not offer permessage-deflate (offered by default; the reference never offers it)
    #[arg(short = 'x')]
    no_deflate: bool,
    #[command(flatten)]
    client: ClientArgs,
}

/// How much of a frame is read at a time (and the socket's read buffer).
const PIECE: usize = 256 * 1024;

#[derive(Debug, Default)]
struct Receive;

impl Plugin for Receive {
    const NAME: &'static CStr = c"receive";
    const SUMMARY: &'static CStr = c"Receive a file";

    fn run(&self, args: Vec<OsString>) -> Result<(), Error> {
        let args: Args = ws_common::args::parse(args)?;
        let url = ws_common::url::parse_ws_url(&args.url)?;
        if !args.save_dir.is_dir() {
            return Err(Error::usage(format!("--save-dir {} is not a folder", args.save_dir.display())));
        }
        args.client.prepare()?;
        ws_common::runtime::block_on(|_| receive(args, url))
    }
}

/// One file being received.
struct Incoming {
    decoder: StreamDecoder,
    file: BufWriter<tempfile::NamedTempFile>,
    hash: Djb2,
    fragments: u64,
    failed: Option<String>,
    /// The message came compressed (RSV1): its frames are inflated before they are decoded.
    compressed: bool,
}

async fn receive(args: Args, url: ws_common::url::Url) -> Result<(), Error> {
    info!("ws_receive: Connecting to url: {}", args.url);
    let connect = async {
        let via = args.client.options(url.clone()).via;
        let mut stream = ws_common::dial::open_stream(&url, &args.client.tls, &[], &via).await?;
        let offer: Vec<(String, String)> = if args.no_deflate {
            Vec::new()
        } else {
            vec![("Sec-WebSocket-Extensions".into(), ws_common::deflate::CLIENT_OFFER.into())]
        };
        let (headers, _) = frames::client_handshake(&mut stream, &url, &offer, true).await?;
        let answers = ws_common::headers::values(&headers, "Sec-WebSocket-Extensions");
        let agreed = match (args.no_deflate, answers.first()) {
            (true, Some(a)) => {
                return Err(ws_common::ws::ConnectError::Handshake(format!(
                    "the server accepted an extension that was not offered: {a}"
                )));
            }
            (true, None) => None,
            (false, _) => {
                ws_common::deflate::accept_answer(&answers).map_err(ws_common::ws::ConnectError::Handshake)?
            }
        };
        Ok::<_, ws_common::ws::ConnectError>((stream, headers, agreed))
    };
    let timeout = args.client.timeout();
    let (stream, headers, agreed) = futures_lite::FutureExt::or(connect, async {
        ws_common::runtime::Timer::after(timeout).await;
        Err(ws_common::ws::ConnectError::Timeout(timeout))
    })
    .await
    .map_err(|e| Error::failure(format!("cannot connect to {}: {e}", args.url)))?;
    info!("ws_receive: connected");
    info!("Uri: {}", url.path());
    info!("Headers:");
    for (k, v) in &headers {
        info!("{k}: {v}");
    }
    info!("ws_receive: Waiting for message...");
    let (read_half, mut writer) = futures_lite::io::split(stream);
    // A relay may send a whole file as one frame (Node's `ws` does): it is read, inflated
    // and written in pieces, as a fragmented message is.
    let max_frame = args.max_frame.unwrap_or(usize::MAX);
    let mut reader = FrameReader::new(BufReader::with_capacity(PIECE, read_half), max_frame, false)
        .with_rsv1(agreed.is_some())
        .in_pieces(PIECE);
    // Compressed messages are inflated frame by frame, in bounded parts (one window for the
    // connection, kept between messages unless the server agreed no context takeover).
    let mut inflater = agreed.map(|a| MessageInflater::new(a.receive_window_bits));
    let no_takeover = agreed.is_some_and(|a| a.receive_no_context_takeover);
    // The data message in progress came compressed.
    let mut msg_compressed = false;
    let mut incoming: Option<Incoming> = None;
    let mut received_ok = 0u64;
    let mut last_failure: Option<String> = None;
    loop {
        let frame = match reader.next().await {
            Ok(Some(f)) => f,
            Ok(None) => return end(received_ok, last_failure, "the connection closed"),
            Err(e) => {
                let code = e.close_code();
                if code != 1006 {
                    let _ = send_frame(&mut writer, op::CLOSE, &frames::close_payload(code, &e.to_string())).await;
                }
                return Err(Error::failure(format!("connection failed: {e}")));
            }
        };
        if frame.rsv1 && (frame.is_control() || frame.opcode == op::CONTINUATION) {
            let why = "RSV1 set on a control or continuation frame";
            let _ = send_frame(&mut writer, op::CLOSE, &frames::close_payload(1002, why)).await;
            return Err(Error::failure(format!("connection failed: protocol error: {why}")));
        }
        if matches!(frame.opcode, op::TEXT | op::BINARY) {
            msg_compressed = frame.rsv1;
        }
        // A compressed message that is not a file is still inflated (and dropped): with
        // context takeover, the next message may refer back to it.
        let skipped = frame.opcode == op::TEXT || (frame.opcode == op::CONTINUATION && incoming.is_none());
        if skipped
            && msg_compressed
            && let Some(z) = inflater.as_mut()
        {
            let mut pos = InflatePos::default();
            while let Ok(Some(_)) = z.next_part(&frame.payload, frame.fin, &mut pos) {}
            if frame.fin {
                z.end_message(no_takeover);
            }
        }
        match frame.opcode {
            op::PING => send_frame(&mut writer, op::PONG, &frame.payload).await?,
            op::PONG => {}
            op::CLOSE => {
                let (code, reason) = frames::parse_close(&frame.payload);
                info!("ws_receive: connection closed: code {code} reason {reason}");
                let _ = send_frame(&mut writer, op::CLOSE, &frame.payload).await;
                return end(received_ok, last_failure, &format!("the server closed the connection ({code} {reason})"));
            }
            op::TEXT => {
                if !frame.fin {
                    // A fragmented text message is nobody's file; skip its fragments.
                    incoming = None;
                }
            }
            opcode => {
                if opcode == op::BINARY {
                    incoming = Some(Incoming {
                        decoder: StreamDecoder::new("content", 64 * 1024),
                        file: BufWriter::with_capacity(
                            256 * 1024,
                            ws_common::transfer::partial_file(&args.save_dir, ".ws-receive-").map_err(|e| {
                                Error::failure(format!("cannot create a file in {}: {e}", args.save_dir.display()))
                            })?,
                        ),
                        hash: Djb2::default(),
                        fragments: 0,
                        failed: None,
                        compressed: frame.rsv1,
                    });
                }
                let Some(inc) = incoming.as_mut() else { continue };
                let Incoming { decoder, file, hash, failed, compressed, .. } = inc;
                let mut feed = |bytes: &[u8]| {
                    if failed.is_none()
                        && let Err(e) = decoder.feed(bytes, &mut |b| {
                            hash.update(b);
                            file.write_all(b)
                        })
                    {
                        *failed = Some(e.to_string());
                    }
                };
                match inflater.as_mut().filter(|_| *compressed) {
                    None => feed(&frame.payload),
                    Some(z) => {
                        let mut pos = InflatePos::default();
                        loop {
                            match z.next_part(&frame.payload, frame.fin, &mut pos) {
                                Ok(Some((_, part))) => feed(&part),
                                Ok(None) => break,
                                Err(e) => {
                                    let _ = send_frame(
                                        &mut writer,
                                        op::CLOSE,
                                        &frames::close_payload(1002, &e.to_string()),
                                    )
                                    .await;
                                    return Err(Error::failure(format!("connection failed: {e}")));
                                }
                            }
                        }
                        if frame.fin {
                            z.end_message(no_takeover);
                        }
                    }
                }
                ws_common::debug!("ws_receive: received fragment {}", inc.fragments);
                inc.fragments += 1;
                if args.delay > 0 {
                    ws_common::runtime::Timer::after(Duration::from_millis(args.delay)).await;
                }
                if frame.fin {
                    let inc = incoming.take().expect("checked above");
                    match finish(&args, inc) {
                        Outcome::Saved { ack, name, bytes } => {
                            info!("ws_receive: wrote {bytes} bytes to {}", args.save_dir.join(&name).display());
                            info!("Sending ack to sender");
                            send_frame(&mut writer, op::BINARY, &ack).await?;
                            received_ok += 1;
                            last_failure = None;
                        }
                        Outcome::Refused(reply, why) => {
                            error!("ws_receive: {why}");
                            send_frame(&mut writer, op::BINARY, &reply).await?;
                            last_failure = Some(why);
                        }
                        Outcome::NotAFile => ws_common::debug!("ws_receive: ignoring a message that is not a file"),
                    }
                    let done = !args.keep_going && (received_ok > 0 || last_failure.is_some());
                    if done {
                        info!("ws_receive: Done !");
                        let _ =
                            send_frame(&mut writer, op::CLOSE, &frames::close_payload(1000, "Normal closure")).await;
                        // Wait briefly for the server's close reply.
                        let _ = futures_lite::FutureExt::or(
                            async {
                                while let Ok(Some(f)) = reader.next().await {
                                    if f.opcode == op::CLOSE {
                                        break;
                                    }
                                }
                            },
                            async {
                                ws_common::runtime::Timer::after(Duration::from_secs(1)).await;
                            },
                        )
                        .await;
                        return end(received_ok, last_failure, "");
                    }
                }
            }
        }
    }
}

fn end(received_ok: u64, last_failure: Option<String>, why: &str) -> Result<(), Error> {
    match last_failure {
        Some(f) => Err(Error::failure(f)),
        None if received_ok > 0 => Ok(()),
        None => Err(Error::failure(format!("no file received: {why}"))),
    }
}

enum Outcome {
    Saved { ack: Vec<u8>, name: String, bytes: u64 },
    Refused(Vec<u8>, String),
    NotAFile,
}

fn error_pdu(message: &str) -> Vec<u8> {
    pdu::encode([("id", &b""[..]), ("kind", b"error"), ("message", message.as_bytes())])
}

fn finish(args: &Args, inc: Incoming) -> Outcome {
    let Incoming { decoder, file, hash, failed, .. } = inc;
    if let Some(why) = failed {
        return Outcome::Refused(error_pdu("ws_receive: Invalid pdu"), format!("invalid file message: {why}"));
    }
    let (fields, had_content) = match decoder.finish() {
        Ok(f) => f,
        Err(e) => return Outcome::Refused(error_pdu("ws_receive: Invalid pdu"), format!("invalid file message: {e}")),
    };
    if pdu::field(&fields, "kind") != "send" || !had_content {
        return Outcome::NotAFile;
    }
    let id = pdu::field(&fields, "id");
    let raw_name = pdu::field(&fields, "filename");
    info!("id: {id}");
    let computed = hash.0.to_string();
    let reference = pdu::field(&fields, "djb2_hash");
    info!("ws_receive: Computed hash: {computed}");
    info!("ws_receive: Reference hash: {reference}");
    if computed != reference {
        return Outcome::Refused(error_pdu("Hash mismatch."), format!("hash mismatch for {raw_name}: nothing written"));
    }
    let Some(name) = ws_common::transfer::safe_file_name(&raw_name) else {
        return Outcome::Refused(
            error_pdu("Invalid file name."),
            format!("unsafe file name {raw_name:?}: nothing written"),
        );
    };
    let target = args.save_dir.join(&name);
    let tmp = match file.into_inner() {
        Ok(t) => t,
        Err(e) => return Outcome::Refused(error_pdu("Write error."), format!("cannot write {name}: {}", e.error())),
    };
    let bytes = tmp.as_file().metadata().map(|m| m.len()).unwrap_or(0);
    if let Err(e) = tmp.as_file().sync_all() {
        return Outcome::Refused(error_pdu("Write error."), format!("cannot write {name}: {e}"));
    }
    info!("ws_receive: Renaming temporary file to {}", target.display());
    let persisted =
        if args.overwrite { tmp.persist(&target).map(|_| ()) } else { tmp.persist_noclobber(&target).map(|_| ()) };
    if let Err(e) = persisted {
        let why = if e.error.kind() == std::io::ErrorKind::AlreadyExists {
            format!("{} already exists (use --overwrite to replace it): nothing written", target.display())
        } else {
            format!("cannot write {}: {}", target.display(), e.error)
        };
        return Outcome::Refused(error_pdu(&format!("File {name} not saved.")), why);
    }
    let ack = pdu::encode([("ack", &b"true"[..]), ("filename", raw_name.as_bytes()), ("id", id.as_bytes())]);
    Outcome::Saved { ack, name, bytes }
}

async fn send_frame(w: &mut futures_lite::io::WriteHalf<Stream>, opcode: u8, payload: &[u8]) -> Result<(), Error> {
    let bytes = frames::encode(true, opcode, payload, Some(frames::random_mask()));
    w.write_all(&bytes).await.map_err(|e| Error::failure(format!("connection lost: {e}")))?;
    w.flush().await.map_err(|e| Error::failure(format!("connection lost: {e}")))
}

declare_plugin!(Receive);
