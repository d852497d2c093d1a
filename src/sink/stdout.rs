//! The default sink: statements on standard output, blue on a terminal.

use std::io::{self, Write};

use super::Sink;

const BLUE: &[u8] = b"\x1b[94m";
const RESET: &[u8] = b"\x1b[0m";

/// Writes statements to standard output, which carries SQL and nothing else.
#[derive(Debug)]
pub struct StdoutSink {
    out: io::BufWriter<io::Stdout>,
    /// Wrap each statement in ANSI blue, for people watching a terminal.
    color: bool,
}

impl StdoutSink {
    /// A sink that colours its output when `color` is set.
    pub fn new(color: bool) -> Self {
        StdoutSink {
            out: io::BufWriter::with_capacity(1 << 16, io::stdout()),
            color,
        }
    }
}

impl Sink for StdoutSink {
    fn write_statement(&mut self, statement: &[u8]) -> io::Result<()> {
        if self.color {
            // Keep the newline outside the colour so the prompt is not blue.
            let body = statement.strip_suffix(b"\n").unwrap_or(statement);
            self.out.write_all(BLUE)?;
            self.out.write_all(body)?;
            self.out.write_all(RESET)?;
            self.out.write_all(b"\n")?;
        } else {
            self.out.write_all(statement)?;
        }
        self.out.flush()
    }
}
