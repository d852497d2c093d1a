//! Where finished statements go. One file per sink.
//!
//! The writer hands each sink one complete statement at a time; a sink writes
//! it through (flushing whatever it buffers) before returning, so a statement
//! reported written is no longer in trackd's memory.

mod file;
mod memory;
mod stdout;

pub use file::FileSink;
pub use memory::MemorySink;
pub use stdout::StdoutSink;

use std::io;

/// A destination for SQL statements.
pub trait Sink: Send {
    /// Writes one complete statement (ending in `;\n`) and flushes it.
    fn write_statement(&mut self, statement: &[u8]) -> io::Result<()>;
}
