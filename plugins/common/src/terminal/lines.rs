//! Messages as lines of a pipe, for the clients and servers people type into (`connect`,
//! `listen`): how a received message is written to stdout when stdout is not a terminal, and
//! how an input line in `--jsonl` form becomes the message it describes.
//!
//! - Text: the payload, then a newline. Binary: `--binary-output raw|base64|hex`.
//! - `--jsonl`: `{"type":"text"|"binary","data":…}` per message, binary as base64 — lossless,
//!   whatever the payload holds; `listen` adds `"client":ID`.

use base64::Engine;

use crate::ws::Message;

/// How a binary message is printed in a pipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BinaryOutput {
    /// The bytes as received, then a newline
    Raw,
    Base64,
    Hex,
}

/// A received message as one line of a pipe's output (see the module docs); `client` goes
/// into the JSON object (and nowhere else).
pub fn pipe_line(
    payload: &[u8],
    binary: bool,
    jsonl: bool,
    binary_output: BinaryOutput,
    client: Option<u64>,
) -> Vec<u8> {
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let mut line = if jsonl {
        let (kind, data) = match std::str::from_utf8(payload) {
            Ok(text) if !binary => ("text", serde_json::Value::from(text)),
            _ => ("binary", serde_json::Value::from(b64(payload))),
        };
        match client {
            Some(id) => format!("{{\"client\":{id},\"type\":\"{kind}\",\"data\":{data}}}").into_bytes(),
            None => format!("{{\"type\":\"{kind}\",\"data\":{data}}}").into_bytes(),
        }
    } else if binary {
        match binary_output {
            BinaryOutput::Raw => payload.to_vec(),
            BinaryOutput::Base64 => b64(payload).into_bytes(),
            BinaryOutput::Hex => payload.iter().map(|b| format!("{b:02x}")).collect::<String>().into_bytes(),
        }
    } else {
        payload.to_vec()
    };
    line.push(b'\n');
    line
}

/// With `--jsonl`, an input line `{"type":"text"|"binary","data":…}` (binary as base64) is the
/// message it describes; any other line is `None` (and sent as it is by the caller).
pub fn message_from_json(line: &str) -> Option<Message> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let data = v.get("data")?.as_str()?;
    match v.get("type")?.as_str()? {
        "text" => Some(Message::Text(data.into())),
        "binary" => base64::engine::general_purpose::STANDARD.decode(data).ok().map(|b| Message::Binary(b.into())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_through_jsonl() {
        let line = pipe_line(&[0, 159, 146, 150], true, true, BinaryOutput::Raw, Some(3));
        assert_eq!(line, b"{\"client\":3,\"type\":\"binary\",\"data\":\"AJ+Slg==\"}\n");
        let line = String::from_utf8(pipe_line(b"a \"q\"", false, true, BinaryOutput::Raw, None)).unwrap();
        assert_eq!(message_from_json(line.trim_end()), Some(Message::Text("a \"q\"".into())));
        assert_eq!(pipe_line(&[1, 255], true, false, BinaryOutput::Hex, None), b"01ff\n");
        assert_eq!(message_from_json("not json"), None);
    }
}
