//! Keeps statements in memory, for tests and benchmarks.

use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use super::Sink;

/// Collects every statement; clones share the same storage.
#[derive(Debug, Clone, Default)]
pub struct MemorySink {
    statements: Arc<Mutex<Vec<String>>>,
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every statement written so far, in order.
    pub fn statements(&self) -> Vec<String> {
        self.statements
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Sink for MemorySink {
    fn write_statement(&mut self, statement: &[u8]) -> io::Result<()> {
        let text = String::from_utf8(statement.to_vec())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        self.statements
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(text);
        Ok(())
    }
}
