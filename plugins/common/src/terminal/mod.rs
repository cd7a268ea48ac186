//! What people see and type: the reference's log lines ([`log`]), a line editor or piped
//! lines as input ([`prompt`]), messages as lines of a pipe ([`lines`]) and transfer
//! progress ([`progress`]).

pub mod lines;
pub mod log;
pub mod progress;
pub mod prompt;
