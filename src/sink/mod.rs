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

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};

/// A destination for SQL statements.
pub trait Sink: Send {
    /// Writes one complete statement (ending in `;\n`) and flushes it.
    fn write_statement(&mut self, statement: &[u8]) -> io::Result<()>;
}

/// Writes one statement to `file`, unbuffered. If that fails part-way and
/// `file` is a regular file, it is cut back to its length just before, so
/// the writer's retry never leaves half a statement (or a second copy) in
/// it. Through a pipe nothing can be taken back; a pipe fails this way only
/// when its reader has gone, and then nothing more reaches it anyway.
fn write_whole(file: &mut File, statement: &[u8]) -> io::Result<()> {
    let before = match file.metadata() {
        Ok(meta) if meta.is_file() => Some(meta.len()),
        _ => None,
    };
    let result = file.write_all(statement);
    if let (Err(_), Some(len)) = (&result, before) {
        // Measured just now, not remembered: the file may have been
        // truncated by log rotation since the last statement.
        let _ = file.set_len(len);
        let _ = file.seek(SeekFrom::Start(len));
    }
    result
}
