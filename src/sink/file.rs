//! Appends statements to a file, handed to the OS one statement at a time.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

use super::{write_whole, Sink};

/// Appends statements to a file.
#[derive(Debug)]
pub struct FileSink {
    file: File,
}

impl FileSink {
    /// Opens (creating if needed) `path` for appending.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(FileSink { file })
    }
}

impl Sink for FileSink {
    fn write_statement(&mut self, statement: &[u8]) -> io::Result<()> {
        write_whole(&mut self.file, statement)
    }
}
