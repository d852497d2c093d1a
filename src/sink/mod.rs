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
use std::os::unix::fs::FileExt;

/// How every statement trackd writes begins.
const STATEMENT_START: &[u8] = b"INSERT INTO ";

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

/// What [`cut_torn_statement`] found at the end of a file.
#[derive(Debug, PartialEq, Eq)]
enum Tail {
    /// Nothing, or a complete statement.
    Clean,
    /// Part of a statement, this many bytes, now cut off.
    Cut(u64),
    /// This many bytes after the last complete statement that do not look
    /// like the start of one of trackd's statements; left as they are.
    Unknown(u64),
}

/// Cuts off the end of `file`, if it is a regular file that ends in part of
/// one of trackd's statements: a run that died mid-write (killed, out of
/// memory, power lost, or given up on at shutdown) leaves one behind, and
/// the next statement appended to it would fail to load along with it.
/// What follows the last `;\n` is cut only if it begins like a statement:
/// the cut never reaches a complete statement, and text that is not ours
/// is left alone.
fn cut_torn_statement(file: &mut File) -> io::Result<Tail> {
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Ok(Tail::Clean);
    }
    let len = meta.len();
    let complete = complete_length(file, len)?;
    if complete == len {
        return Ok(Tail::Clean);
    }
    let mut head = [0; STATEMENT_START.len()];
    let head = &mut head[..(len - complete).min(STATEMENT_START.len() as u64) as usize];
    file.read_exact_at(head, complete)?;
    if !STATEMENT_START.starts_with(head) {
        return Ok(Tail::Unknown(len - complete));
    }
    file.set_len(complete)?;
    file.seek(SeekFrom::End(0))?;
    Ok(Tail::Cut(len - complete))
}

/// Logs what [`cut_torn_statement`] did to the output at `path`, if anything.
fn warn_about(tail: &Tail, path: &std::path::Path) {
    let path = path.display();
    match tail {
        Tail::Clean => {}
        Tail::Cut(bytes) => tracing::warn!(
            %path,
            bytes,
            "cut off an incomplete statement that an earlier run left at the end of the output"
        ),
        Tail::Unknown(bytes) => tracing::warn!(
            %path,
            bytes,
            "the output does not end with a complete statement; appending after it anyway"
        ),
    }
}

/// The length of `file` (`len` bytes) up to the end of its last complete
/// statement, found by reading backwards from the end.
fn complete_length(file: &File, len: u64) -> io::Result<u64> {
    const CHUNK: u64 = 64 << 10;
    let mut end = len;
    let mut buf = Vec::new();
    while end > 0 {
        let start = end.saturating_sub(CHUNK);
        buf.resize((end - start) as usize, 0);
        file.read_exact_at(&mut buf, start)?;
        if let Some(at) = memchr::memmem::rfind(&buf, b";\n") {
            return Ok(start + at as u64 + 2);
        }
        if start == 0 {
            break;
        }
        // One byte of overlap finds a `;\n` split across two chunks.
        end = start + 1;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_holding(content: &[u8]) -> File {
        let mut file = tempfile::tempfile().expect("temp file");
        file.write_all(content).expect("write");
        file
    }

    fn after_cut(content: &[u8]) -> (Tail, Vec<u8>) {
        let mut file = file_holding(content);
        let cut = cut_torn_statement(&mut file).expect("cut");
        let mut rest = vec![0; file.metadata().expect("meta").len() as usize];
        file.read_exact_at(&mut rest, 0).expect("read");
        (cut, rest)
    }

    #[test]
    fn a_torn_statement_at_the_end_is_cut_and_nothing_else() {
        let whole = b"INSERT INTO events (id) VALUES\n  ('a;\nb');\n";
        let torn = b"INSERT INTO events (id) VALUES\n  ('c";
        let with_torn = [&whole[..], torn].concat();
        assert_eq!(
            after_cut(&with_torn),
            (Tail::Cut(torn.len() as u64), whole.to_vec())
        );
        assert_eq!(after_cut(b"INSE"), (Tail::Cut(4), Vec::new()));
        assert_eq!(after_cut(whole), (Tail::Clean, whole.to_vec()));
        assert_eq!(after_cut(b""), (Tail::Clean, Vec::new()));
        // Not a statement of ours: left alone.
        let foreign = [&whole[..], b"-- a note"].concat();
        assert_eq!(after_cut(&foreign), (Tail::Unknown(9), foreign.clone()));
        // Torn after a `;\n` inside one of its own values: the cut could
        // not tell where it began, so it leaves it.
        let torn_inside = [&whole[..], b"INSERT INTO t VALUES ('x;\ny"].concat();
        assert_eq!(
            after_cut(&torn_inside),
            (Tail::Unknown(1), torn_inside.clone())
        );
        // The last `;\n` far from the end, across the 64 KiB chunks read backwards.
        let long = [&whole[..], b"INSERT INTO t VALUES ('", &[b'x'; 200_000][..]].concat();
        let cut = (long.len() - whole.len()) as u64;
        assert_eq!(after_cut(&long), (Tail::Cut(cut), whole.to_vec()));
    }
}
