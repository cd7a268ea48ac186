//! Negotiation of permessage-deflate (RFC 7692 §5–§7): a server picks the first valid offer
//! of `Sec-WebSocket-Extensions` and answers it; a client offers it and checks the answer.
//!
//! ```text
//! client: Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits
//! server: Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover
//! ```
//!
//! An offer with an unknown, duplicate or invalid parameter is declined (the server goes on
//! to the next one, §5.1); an answer with one fails the client's handshake (§5.1, §7.1).

/// What one side agreed to do, seen from that side: how it compresses what it sends and how
/// the peer compresses what it receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agreement {
    /// Our LZ77 window, as a power of two (8–15); zlib's smallest raw window is 9, whose
    /// longest distance (250) still fits the 256 bytes a window of 8 promises.
    pub send_window_bits: u8,
    /// We start every message with an empty window (and may free the compressor between).
    pub send_no_context_takeover: bool,
    /// The peer's window, for our inflater.
    pub receive_window_bits: u8,
    /// The peer starts every message afresh, so our inflater may be freed between messages.
    pub receive_no_context_takeover: bool,
}

/// What a server adds to what clients ask, to spend less memory per connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerPolicy {
    /// Answer `server_no_context_takeover` even when not asked: each message is compressed
    /// on its own, so the compressor is freed after each and one compressed message can be
    /// sent to many clients (`broadcast_server`).
    pub server_no_context_takeover: bool,
    /// The server sends the client's compressed frames back as they are (`echo_server -p`):
    /// the client must then compress within what it may receive, so its window is limited
    /// to the server's (an offer that does not allow that is declined) and it may not take
    /// context over where the server may not.
    pub echo_frames: bool,
}

/// The extension's name.
pub const NAME: &str = "permessage-deflate";

/// The offers a client sends, in order of preference: deflate with our context kept between
/// messages (the server may limit our window), else deflate without it, for a server that
/// accepts only clients that start each message afresh (§7.1.1.2; Autobahn 13.2, 13.5, 13.6).
/// A server answers the first it accepts, so most keep the better first one.
pub const CLIENT_OFFER: &str = "permessage-deflate; client_max_window_bits, permessage-deflate; client_no_context_takeover; client_max_window_bits";

/// One offer's or answer's parameters.
#[derive(Debug, Default, PartialEq, Eq)]
struct Params {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: present without a value (only valid in an offer).
    client_max_window_bits: Option<Option<u8>>,
}

/// An extension's name and its `key[=value]` parameters.
type Extension = (String, Vec<(String, Option<String>)>);

/// Splits a header value into extensions. Commas inside quoted strings do not split.
fn extensions(value: &str) -> Vec<Extension> {
    let mut out = Vec::new();
    for ext in split_outside_quotes(value, ',') {
        let mut parts = split_outside_quotes(ext, ';').into_iter().map(str::trim);
        let Some(name) = parts.next().filter(|n| !n.is_empty()) else { continue };
        let params = parts
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v.trim().trim_matches('"').to_string())),
                None => (p.to_ascii_lowercase(), None),
            })
            .collect();
        out.push((name.to_ascii_lowercase(), params));
    }
    out
}

fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let (mut out, mut start, mut quoted) = (Vec::new(), 0, false);
    for (i, c) in s.char_indices() {
        if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            out.push(&s[start..i]);
            start = i + 1;
        }
    }
    out.push(&s[start..]);
    out
}

/// A window size: 8 to 15, digits only, no leading zero (RFC 7692 §7.1.2).
fn window_bits(v: &str) -> Option<u8> {
    if v.is_empty() || v.len() > 2 || v.starts_with('0') || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok().filter(|b| (8..=15).contains(b))
}

/// Parses the parameters of one permessage-deflate element; `None` when one is unknown,
/// repeated or has a bad value. `offer` allows `client_max_window_bits` without a value.
fn parse(params: &[(String, Option<String>)], offer: bool) -> Option<Params> {
    let mut p = Params::default();
    let mut seen = Vec::new();
    for (k, v) in params {
        if seen.contains(&k.as_str()) {
            return None;
        }
        seen.push(k);
        match (k.as_str(), v.as_deref()) {
            ("server_no_context_takeover", None) => p.server_no_context_takeover = true,
            ("client_no_context_takeover", None) => p.client_no_context_takeover = true,
            ("server_max_window_bits", Some(v)) => p.server_max_window_bits = Some(window_bits(v)?),
            ("client_max_window_bits", None) if offer => p.client_max_window_bits = Some(None),
            ("client_max_window_bits", Some(v)) => p.client_max_window_bits = Some(Some(window_bits(v)?)),
            _ => return None,
        }
    }
    Some(p)
}

/// A server's choice among a client's offers (every `Sec-WebSocket-Extensions` value, in
/// order): the answer's header value and what it agreed, or `None` to decline them all.
pub fn negotiate(offers: &[&str], policy: ServerPolicy) -> Option<(String, Agreement)> {
    let offer = offers
        .iter()
        .flat_map(|v| extensions(v))
        .filter(|(name, _)| name == NAME)
        .filter_map(|(_, params)| parse(&params, true))
        // An echo can only limit the client's window if the client allows it.
        .find(|o| !policy.echo_frames || o.server_max_window_bits.is_none() || o.client_max_window_bits.is_some())?;
    let mut answer = String::from(NAME);
    let send_no_context_takeover = offer.server_no_context_takeover || policy.server_no_context_takeover;
    if send_no_context_takeover {
        answer.push_str("; server_no_context_takeover");
    }
    let client_no_context_takeover =
        offer.client_no_context_takeover || (policy.echo_frames && send_no_context_takeover);
    if client_no_context_takeover {
        answer.push_str("; client_no_context_takeover");
    }
    if let Some(bits) = offer.server_max_window_bits {
        answer.push_str(&format!("; server_max_window_bits={bits}"));
    }
    // The client may use up to the value it offered, or 15; an echo limits it to ours.
    let mut client_bits = offer.client_max_window_bits.flatten().unwrap_or(15);
    if policy.echo_frames
        && let Some(bits) = offer.server_max_window_bits
    {
        client_bits = client_bits.min(bits);
        answer.push_str(&format!("; client_max_window_bits={client_bits}"));
    }
    let agreed = Agreement {
        send_window_bits: offer.server_max_window_bits.unwrap_or(15),
        send_no_context_takeover,
        receive_window_bits: client_bits,
        receive_no_context_takeover: client_no_context_takeover,
    };
    Some((answer, agreed))
}

/// The permessage-deflate offers among `values` (every `Sec-WebSocket-Extensions` of a
/// request), as one header value: what a relay forwards upstream, leaving out extensions
/// that would change frames in ways it does not check.
pub fn deflate_offers(values: &[&str]) -> Option<String> {
    let offers: Vec<String> = values
        .iter()
        .flat_map(|v| extensions(v))
        .filter(|(name, _)| name == NAME)
        .map(|(name, params)| {
            let mut o = name;
            for (k, v) in params {
                o.push_str("; ");
                o.push_str(&k);
                if let Some(v) = v {
                    o.push('=');
                    o.push_str(&v);
                }
            }
            o
        })
        .collect();
    (!offers.is_empty()).then(|| offers.join(", "))
}

/// Checks a server's answer to [`CLIENT_OFFER`] (every `Sec-WebSocket-Extensions` value of
/// the response): `Ok(None)` when it declined, the agreement when it accepted, an error
/// sentence when it answered what we did not offer or allow.
pub fn accept_answer(values: &[&str]) -> Result<Option<Agreement>, String> {
    let all: Vec<_> = values.iter().flat_map(|v| extensions(v)).collect();
    let (name, params) = match all.as_slice() {
        [] => return Ok(None),
        [one] => one,
        _ => return Err(format!("the server accepted {} extensions; one was offered", all.len())),
    };
    if name != NAME {
        return Err(format!("the server accepted the extension {name:?}, which was not offered"));
    }
    let p = parse(params, false).ok_or_else(|| {
        format!("the server answered permessage-deflate with invalid parameters: {}", values.join(", "))
    })?;
    Ok(Some(Agreement {
        send_window_bits: p.client_max_window_bits.flatten().unwrap_or(15),
        send_no_context_takeover: p.client_no_context_takeover,
        receive_window_bits: p.server_max_window_bits.unwrap_or(15),
        receive_no_context_takeover: p.server_no_context_takeover,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(offers: &[&str]) -> Option<String> {
        negotiate(offers, ServerPolicy::default()).map(|(a, _)| a)
    }

    #[test]
    fn servers_answer_the_first_valid_offer() {
        assert_eq!(server(&["permessage-deflate"]).as_deref(), Some("permessage-deflate"));
        assert_eq!(
            server(&["permessage-deflate; client_max_window_bits"]).as_deref(),
            Some("permessage-deflate"),
            "a bare client_max_window_bits only says the client could be limited"
        );
        let (answer, agreed) = negotiate(
            &["permessage-deflate; server_max_window_bits=10; client_no_context_takeover; client_max_window_bits=9"],
            ServerPolicy::default(),
        )
        .unwrap();
        assert_eq!(answer, "permessage-deflate; client_no_context_takeover; server_max_window_bits=10");
        assert_eq!(
            agreed,
            Agreement {
                send_window_bits: 10,
                send_no_context_takeover: false,
                receive_window_bits: 9,
                receive_no_context_takeover: true
            }
        );
        // Autobahn 13.7: several offers in one header, the first valid one wins.
        assert_eq!(
            server(&["permessage-deflate; server_max_window_bits=8, permessage-deflate; client_no_context_takeover"])
                .as_deref(),
            Some("permessage-deflate; server_max_window_bits=8")
        );
        assert_eq!(
            server(&["x-webkit-deflate-frame", "permessage-deflate; server_max_window_bits=\"12\""]).as_deref(),
            Some("permessage-deflate; server_max_window_bits=12"),
            "offers spread over two headers; a quoted value"
        );
    }

    #[test]
    fn servers_decline_invalid_or_duplicate_parameters() {
        for bad in [
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; client_max_window_bits=abc",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; mystery",
            "x-webkit-deflate-frame",
        ] {
            assert_eq!(server(&[bad]), None, "{bad}");
        }
        assert_eq!(
            server(&["permessage-deflate; mystery, permessage-deflate"]).as_deref(),
            Some("permessage-deflate"),
            "a bad offer is skipped, not fatal"
        );
    }

    #[test]
    fn an_echo_of_frames_keeps_the_client_within_what_it_may_receive() {
        let echo = ServerPolicy { echo_frames: true, ..ServerPolicy::default() };
        let answer = |o: &str| negotiate(&[o], echo).map(|(a, _)| a);
        assert_eq!(answer("permessage-deflate").as_deref(), Some("permessage-deflate"));
        assert_eq!(
            answer("permessage-deflate; server_no_context_takeover").as_deref(),
            Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
        );
        assert_eq!(
            answer("permessage-deflate; server_max_window_bits=10; client_max_window_bits").as_deref(),
            Some("permessage-deflate; server_max_window_bits=10; client_max_window_bits=10")
        );
        assert_eq!(answer("permessage-deflate; server_max_window_bits=10"), None, "the client cannot be limited");
        assert_eq!(
            answer("permessage-deflate; server_max_window_bits=10, permessage-deflate").as_deref(),
            Some("permessage-deflate")
        );
    }

    #[test]
    fn a_server_policy_may_add_server_no_context_takeover() {
        let policy = ServerPolicy { server_no_context_takeover: true, ..ServerPolicy::default() };
        let (answer, agreed) = negotiate(&["permessage-deflate"], policy).unwrap();
        assert_eq!(answer, "permessage-deflate; server_no_context_takeover");
        assert!(agreed.send_no_context_takeover);
    }

    #[test]
    fn relays_forward_only_deflate_offers() {
        assert_eq!(
            deflate_offers(&[
                "x-webkit-deflate-frame, permessage-deflate; client_max_window_bits",
                "permessage-deflate"
            ])
            .as_deref(),
            Some("permessage-deflate; client_max_window_bits, permessage-deflate")
        );
        assert_eq!(deflate_offers(&["x-webkit-deflate-frame"]), None);
        assert_eq!(deflate_offers(&[]), None);
    }

    #[test]
    fn clients_check_the_answer() {
        assert_eq!(accept_answer(&[]), Ok(None));
        let agreed = accept_answer(&["permessage-deflate; server_no_context_takeover; client_max_window_bits=10"])
            .unwrap()
            .unwrap();
        assert_eq!(
            agreed,
            Agreement {
                send_window_bits: 10,
                send_no_context_takeover: false,
                receive_window_bits: 15,
                receive_no_context_takeover: true
            }
        );
        for bad in [
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate; server_max_window_bits=20",
            "permessage-deflate; unknown=1",
            "permessage-deflate, permessage-deflate",
            "x-webkit-deflate-frame",
        ] {
            assert!(accept_answer(&[bad]).is_err(), "{bad}");
        }
    }
}
