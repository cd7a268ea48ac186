//! Inflating permessage-deflate messages frame by frame, for the code that reads frames
//! itself (the `transfer` relay, `receive`): each frame's payload becomes parts of at most
//! [`INFLATED_FRAME`] bytes, made one at a time, so a frame that inflates to gigabytes is
//! handed on in pieces and never held.

use flate2::{Decompress, FlushDecompress, Status};

use crate::frames::FrameError;

/// The largest part a frame is inflated into.
pub const INFLATED_FRAME: usize = 256 * 1024;

/// Inflates compressed messages frame by frame, in parts of at most [`INFLATED_FRAME`]
/// bytes, for code that works on frames rather than through [`super::DeflateIo`].
#[derive(Debug)]
pub struct MessageInflater {
    z: Decompress,
    /// The deflate stream ended (BFINAL): what follows in the message is ignored.
    ended: bool,
}

impl MessageInflater {
    /// An inflater for a peer whose window is `2^bits`.
    pub fn new(bits: u8) -> Self {
        MessageInflater { z: Decompress::new_with_window_bits(false, bits.clamp(9, 15)), ended: false }
    }

    /// After a message's last part: forgets the window when the peer agreed no context
    /// takeover (or its stream ended), ready for the next message.
    pub fn end_message(&mut self, no_context_takeover: bool) {
        if no_context_takeover || self.ended {
            self.z.reset(false);
        }
        self.ended = false;
    }

    /// The next part of what one frame's payload inflates to (with, on the message's last
    /// frame, the tail RFC 7692 §7.2.2 restores): at most [`INFLATED_FRAME`] bytes, and
    /// whether it ends the message. `None` once the frame is used up.
    pub fn next_part(
        &mut self,
        payload: &[u8],
        fin: bool,
        pos: &mut InflatePos,
    ) -> Result<Option<(bool, Vec<u8>)>, FrameError> {
        const TAIL: [u8; 4] = [0, 0, 0xff, 0xff];
        if pos.done {
            return Ok(None);
        }
        let mut part = Vec::with_capacity(INFLATED_FRAME);
        while part.len() < INFLATED_FRAME && !self.ended {
            let in_tail = pos.at == payload.len();
            if in_tail && !fin {
                break;
            }
            let (input, at, flush) = if in_tail {
                (&TAIL[..], &mut pos.tail_at, FlushDecompress::Sync)
            } else {
                (payload, &mut pos.at, FlushDecompress::None)
            };
            let (in0, out0) = (self.z.total_in(), self.z.total_out());
            let status = self
                .z
                .decompress_vec(&input[*at..], &mut part, flush)
                .map_err(|_| FrameError::Protocol("invalid compressed data"))?;
            let (took, made) = ((self.z.total_in() - in0) as usize, (self.z.total_out() - out0) as usize);
            *at += took;
            if status == Status::StreamEnd {
                self.ended = true;
            }
            let flushed = in_tail && pos.tail_at == TAIL.len() && part.len() < INFLATED_FRAME;
            if flushed || (took == 0 && made == 0) {
                break;
            }
        }
        let used_up = self.ended
            || (pos.at == payload.len() && (!fin || (pos.tail_at == TAIL.len() && part.len() < INFLATED_FRAME)));
        pos.done = used_up;
        let last = fin && used_up;
        if part.is_empty() && !last {
            return Ok(None);
        }
        Ok(Some((last, part)))
    }
}

/// How far [`MessageInflater::next_part`] got through one frame.
#[derive(Debug, Default)]
pub struct InflatePos {
    at: usize,
    tail_at: usize,
    done: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inflates `frames` (one compressed message's payloads) part by part.
    fn inflate_all(frames: &[Vec<u8>]) -> Vec<(bool, usize)> {
        let mut inf = MessageInflater::new(15);
        let mut parts = Vec::new();
        let mut bytes = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            let fin = i + 1 == frames.len();
            let mut pos = InflatePos::default();
            while let Some((last, part)) = inf.next_part(f, fin, &mut pos).unwrap() {
                assert!(part.len() <= INFLATED_FRAME);
                parts.push((last, part.len()));
                bytes.extend_from_slice(&part);
                if last {
                    break;
                }
            }
        }
        assert!(bytes.iter().all(|&b| b == 7), "inflated content");
        parts
    }

    #[test]
    fn a_compressed_message_is_inflated_in_bounded_parts_across_its_frames() {
        let data = vec![7u8; 3 * INFLATED_FRAME + 5];
        let body = crate::deflate::compress_message(&data, 15);
        // Whole, and split into three frames at odd places.
        for frames in [vec![body.clone()], vec![body[..3].to_vec(), body[3..7].to_vec(), body[7..].to_vec()]] {
            let parts = inflate_all(&frames);
            assert_eq!(parts.iter().map(|p| p.1).sum::<usize>(), data.len());
            assert_eq!(parts.iter().filter(|p| p.0).count(), 1, "one last part: {parts:?}");
            assert!(parts.last().unwrap().0, "the last part ends the message: {parts:?}");
        }
    }
}
