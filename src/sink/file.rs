//! Appends statements to a file, handed to the OS one statement at a time.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

use super::{cut_torn_statement, warn_about, write_whole, Sink};

/// Appends statements to a file.
#[derive(Debug)]
pub struct FileSink {
    file: File,
}

impl FileSink {
    /// Opens (creating if needed) `path` for appending.
    /// A statement left torn at its end by an earlier run is cut off first.
    pub fn open(path: &Path) -> io::Result<Self> {
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)?;
        warn_about(&cut_torn_statement(&mut file)?, path);
        Ok(FileSink { file })
    }
}

impl Sink for FileSink {
    fn write_statement(&mut self, statement: &[u8]) -> io::Result<()> {
        write_whole(&mut self.file, statement)
    }
}
