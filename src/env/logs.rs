//! The tail of a service's output, kept in memory while it runs so that a failed repetition
//! can record what the service said last ([`crate::env::Instance::log_tail`]).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::sync::{Arc, Mutex};

/// Lines kept per instance: enough for a panic message and the requests around it, small
/// enough that a chatty service costs nothing.
pub const KEPT_LINES: usize = 200;

/// The last [`KEPT_LINES`] lines of one or more output streams, in arrival order.
#[derive(Debug, Clone, Default)]
pub struct LogTail {
    lines: Arc<Mutex<VecDeque<String>>>,
}

impl LogTail {
    /// An empty tail.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one line, dropping the oldest beyond [`KEPT_LINES`].
    pub fn push(&self, line: String) {
        let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        if lines.len() == KEPT_LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    /// Reads `stream` line by line into the tail on a thread of its own, until it closes
    /// (the process exited), so the process never blocks on a full pipe.
    pub fn follow(&self, stream: impl Read + Send + 'static) {
        let tail = self.clone();
        std::thread::spawn(move || tail.drain(BufReader::new(stream)));
    }

    /// Reads `reader` into the tail until it ends or fails.
    pub fn drain(&self, reader: impl BufRead) {
        for line in reader.split(b'\n') {
            let Ok(line) = line else { break };
            self.push(String::from_utf8_lossy(&line).trim_end().to_owned());
        }
    }

    /// The last `count` lines, oldest first.
    pub fn last(&self, count: usize) -> Vec<String> {
        let lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        let skip = lines.len().saturating_sub(count);
        lines.iter().skip(skip).cloned().collect()
    }
}

/// The last `count` lines of `text`, oldest first.
pub fn last_lines(text: &str, count: usize) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(count)..]
        .iter()
        .map(|line| (*line).to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_lines_in_order() {
        let tail = LogTail::new();
        tail.drain(&b"one\ntwo\r\nthree\n"[..]);
        assert_eq!(tail.last(2), ["two", "three"]);
        assert_eq!(tail.last(10), ["one", "two", "three"]);
        assert!(tail.last(0).is_empty());
        for index in 0..KEPT_LINES + 5 {
            tail.push(index.to_string());
        }
        assert_eq!(tail.last(1), [(KEPT_LINES + 4).to_string()]);
        assert_eq!(tail.last(usize::MAX).len(), KEPT_LINES);
        assert_eq!(tail.last(usize::MAX)[0], "5");
    }

    #[test]
    fn invalid_utf8_does_not_stop_the_tail() {
        let tail = LogTail::new();
        tail.drain(&b"a\xff\nb\n"[..]);
        assert_eq!(tail.last(2), ["a\u{fffd}", "b"]);
        assert_eq!(last_lines("x\ny\nz\n", 2), ["y", "z"]);
    }
}
