//! Appends statements to a file, flushed to the OS after each one.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use super::Sink;

/// Appends statements to a file.
#[derive(Debug)]
pub struct FileSink {
    file: File,
    /// Length of the file after the last complete statement, so a failed
    /// write can be cut back instead of leaving half a statement behind.
    len: u64,
}

impl FileSink {
    /// Opens (creating if needed) `path` for appending.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let len = file.metadata()?.len();
        Ok(FileSink { file, len })
    }
}

impl Sink for FileSink {
    fn write_statement(&mut self, statement: &[u8]) -> io::Result<()> {
        // One write per statement: with O_APPEND, a statement is never
        // interleaved with another writer's, and nothing is left buffered.
        match self.file.write_all(statement) {
            Ok(()) => {
                self.len += statement.len() as u64;
                Ok(())
            }
            Err(e) => {
                let _ = self.file.set_len(self.len);
                Err(e)
            }
        }
    }
}
