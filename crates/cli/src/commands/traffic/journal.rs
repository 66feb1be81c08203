//! A shift's state dir: `traffic.jsonl`, its journal, appended and fsync'd record by
//! record (the same mechanics as a migration's journal) so a shift's progress survives
//! a crash at any point. The plan is the journal's first record; nothing else is kept.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::Context;
use baton_core::traffic::machine::{self, Event, Record, ShiftState};

use crate::commands::files::{append_line, read_lines};
use crate::exit::Refused;

const FILE: &str = "traffic.jsonl";

/// An open shift journal.
#[derive(Debug)]
pub struct Journal {
    /// The state dir.
    pub dir: PathBuf,
    file: File,
    records: Vec<Record>,
}

impl Journal {
    /// Starts a new shift's journal in `dir`. A dir holding an unfinished shift is
    /// refused; a finished one's journal is kept beside as `traffic.N.jsonl`.
    pub fn create(dir: &Path, started: Event) -> anyhow::Result<Self> {
        let path = dir.join(FILE);
        if path.exists() {
            let old = Self::open(dir)?;
            if old.state()?.outcome.is_none() {
                return Err(Refused(format!(
                    "start a shift in {}: it holds one that has not ended; continue it with `baton traffic shift --resume --state-dir {}` or undo it with `baton traffic rollback --state-dir {}`",
                    dir.display(),
                    dir.display(),
                    dir.display()
                ))
                .into());
            }
            let n = (1..)
                .find(|n| !dir.join(format!("traffic.{n}.jsonl")).exists())
                .expect("a free name");
            std::fs::rename(&path, dir.join(format!("traffic.{n}.jsonl")))
                .with_context(|| format!("failed to keep the old journal in {}", dir.display()))?;
        }
        std::fs::create_dir_all(dir)
            .with_context(|| format!("failed to create {}", dir.display()))?;
        let mut j = Self::open_file(dir)?;
        j.record(started)?;
        Ok(j)
    }

    /// Opens the journal of a shift in `dir`.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        if !dir.join(FILE).exists() {
            return Err(no_shift(dir));
        }
        Self::open_file(dir)
    }

    /// The records of the shift in `dir`, read only (a torn last line is skipped, not
    /// cut off): for `--dry-run`, which changes nothing.
    pub fn read(dir: &Path) -> anyhow::Result<Vec<Record>> {
        let path = dir.join(FILE);
        if !path.exists() {
            return Err(no_shift(dir));
        }
        let records = read_lines(&path)?;
        machine::fold(&records).with_context(|| format!("failed to read {}", path.display()))?;
        Ok(records)
    }

    fn open_file(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(FILE);
        drop_torn_tail(&path)?;
        let records = read_lines(&path)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("failed to open {}", path.display()))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            file,
            records,
        })
    }

    /// Appends a record and fsyncs it.
    pub fn record(&mut self, event: Event) -> anyhow::Result<()> {
        let rec = next_record(&self.records, event);
        append_line(&mut self.file, &rec)?;
        self.records.push(rec);
        Ok(())
    }

    /// The shift's state, folded from every record so far.
    pub fn state(&self) -> anyhow::Result<ShiftState> {
        machine::fold(&self.records)
            .with_context(|| format!("failed to read {}", self.dir.join(FILE).display()))
    }
}

/// A crash mid-append leaves a last line without its newline; the next record must not
/// be glued to it, so it is cut off before appending.
fn drop_torn_tail(path: &Path) -> anyhow::Result<()> {
    let Ok(mut f) = OpenOptions::new().read(true).write(true).open(path) else {
        return Ok(());
    };
    let mut text = Vec::new();
    f.read_to_end(&mut text)?;
    if text.is_empty() || text.ends_with(b"\n") {
        return Ok(());
    }
    let keep = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    f.set_len(keep as u64)?;
    f.seek(SeekFrom::End(0))?;
    f.sync_all()?;
    Ok(())
}

/// `dir` holds no shift: a refusal naming what to pass instead.
fn no_shift(dir: &Path) -> anyhow::Error {
    Refused(format!(
        "{} holds no traffic shift (no {FILE}); pass the --state-dir of a `baton traffic shift`, or start one with `baton traffic shift --listener … --from-tg … --to-tg …`",
        dir.display()
    ))
    .into()
}

/// The record that follows `records`: the next sequence number, stamped now.
pub fn next_record(records: &[Record], event: Event) -> Record {
    Record {
        seq: records.last().map_or(0, |r| r.seq) + 1,
        at: jiff::Timestamp::now().to_string(),
        event,
    }
}
