//! Where a verified fetch puts the file's bytes: a temporary file renamed into place
//! ([`super::output::Output`], for [`super::fetch()`]) or a caller's sink ([`SinkDest`], for
//! [`super::fetch_into()`]). The gateway loop, the verifier and the guards are the same for
//! both; only what happens to a verified byte differs.

use std::io::Write;

use super::error::FetchError;
use super::output::Output;
use crate::Repeat;

/// The destination of verified bytes. Its position ([`Dest::written`]) is the verifier's: the
/// next gateway resumes there.
pub(crate) trait Dest {
    /// Verified bytes handed on so far.
    fn written(&self) -> u64;

    /// The position a new attempt resumes from, with anything after it discarded.
    fn resume(&mut self) -> Result<u64, FetchError>;

    /// Takes the next verified bytes.
    fn append(&mut self, data: &[u8]) -> Result<(), FetchError>;

    /// Whether the bytes handed on are kept, so that a subtree the DAG repeats (sent once by a
    /// `dups=n` CAR) can be copied from them ([`Dest::append_repeat`]). A destination that keeps
    /// nothing gets the repeated blocks fetched and verified again instead.
    fn keeps_bytes(&self) -> bool;

    /// Appends a copy of bytes handed on earlier; only called when [`Dest::keeps_bytes`].
    fn append_repeat(&mut self, repeat: Repeat) -> Result<(), FetchError>;
}

impl Dest for Output {
    fn written(&self) -> u64 {
        Output::written(self)
    }

    fn resume(&mut self) -> Result<u64, FetchError> {
        let from = Output::written(self);
        self.rewind_to(from)?;
        Ok(from)
    }

    fn append(&mut self, data: &[u8]) -> Result<(), FetchError> {
        Output::append(self, data)
    }

    fn keeps_bytes(&self) -> bool {
        true
    }

    fn append_repeat(&mut self, repeat: Repeat) -> Result<(), FetchError> {
        Output::append_repeat(self, repeat)
    }
}

/// A caller's sink: every verified byte written to it once, in order. A write error stops the
/// fetch ([`FetchError::Sink`]): what the sink refused cannot be given to it again.
pub(crate) struct SinkDest<W> {
    pub(crate) sink: W,
    written: u64,
}

impl<W: Write> SinkDest<W> {
    pub(crate) fn new(sink: W) -> Self {
        Self { sink, written: 0 }
    }
}

impl<W: Write> Dest for SinkDest<W> {
    fn written(&self) -> u64 {
        self.written
    }

    fn resume(&mut self) -> Result<u64, FetchError> {
        // Only whole verified pieces reach the sink, and a failed write ends the fetch: there is
        // never an unverified tail to discard.
        Ok(self.written)
    }

    fn append(&mut self, data: &[u8]) -> Result<(), FetchError> {
        self.sink
            .write_all(data)
            .map_err(|source| FetchError::Sink {
                position: self.written,
                source,
            })?;
        self.written += data.len() as u64;
        Ok(())
    }

    fn keeps_bytes(&self) -> bool {
        false
    }

    fn append_repeat(&mut self, _: Repeat) -> Result<(), FetchError> {
        Err(FetchError::Task(
            "a sink keeps no bytes to copy a repeated subtree from".into(),
        ))
    }
}
