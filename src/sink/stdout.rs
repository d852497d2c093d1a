//! The default sink: statements on standard output, blue on a terminal.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;

use super::{write_whole, Sink};

const BLUE: &[u8] = b"\x1b[94m";
const RESET: &[u8] = b"\x1b[0m";

/// Writes statements to standard output, which carries SQL and nothing else.
#[derive(Debug)]
pub struct StdoutSink {
    /// Standard output without Rust's buffering, so a failed write leaves
    /// nothing behind to be written twice by the retry.
    out: File,
    /// Wrap each statement in ANSI blue, for people watching a terminal.
    color: bool,
    /// The coloured statement, built here so it goes out in one write.
    scratch: Vec<u8>,
}

impl StdoutSink {
    /// A sink that colours its output when `color` is set.
    pub fn new(color: bool) -> io::Result<Self> {
        let out = File::from(io::stdout().as_fd().try_clone_to_owned()?);
        Ok(StdoutSink {
            out,
            color,
            scratch: Vec::new(),
        })
    }
}

impl Sink for StdoutSink {
    fn write_statement(&mut self, statement: &[u8]) -> io::Result<()> {
        if !self.color {
            return write_whole(&mut self.out, statement);
        }
        // Keep the newline outside the colour so the prompt is not blue.
        let body = statement.strip_suffix(b"\n").unwrap_or(statement);
        self.scratch.clear();
        self.scratch.extend_from_slice(BLUE);
        self.scratch.extend_from_slice(body);
        self.scratch.extend_from_slice(RESET);
        self.scratch.push(b'\n');
        write_whole(&mut self.out, &self.scratch)
    }
}
