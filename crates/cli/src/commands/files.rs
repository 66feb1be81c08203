//! Files baton writes and reads back: JSON written atomically, journals of JSON lines
//! fsynced line by line, and plans or reports read as JSON or YAML.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use anyhow::{Context, bail};
use serde::Serialize;

/// Appends one JSON line to a journal file and fsyncs it before returning, so a record
/// that was returned survives a crash.
pub fn append_line(file: &mut File, value: &impl Serialize) -> anyhow::Result<()> {
    let mut line = serde_json::to_vec(value)?;
    line.push(b'\n');
    file.write_all(&line)
        .and_then(|()| file.sync_data())
        .context("failed to append to the journal")
}

/// Reads a journal file of JSON lines (none when it does not exist). A crash mid-write
/// leaves at most a torn last line, which is dropped; a bad line before it is an error.
pub fn read_lines<T: serde::de::DeserializeOwned>(file: &Path) -> anyhow::Result<Vec<T>> {
    let f = match File::open(file) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("failed to read {}", file.display())),
    };
    let mut out = Vec::new();
    for (i, line) in BufReader::new(f).lines().enumerate() {
        let line = line.with_context(|| format!("failed to read {}", file.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(&line) {
            Ok(r) => out.push(r),
            Err(_) if line.ends_with('}') => {
                bail!("line {} of {} is not a record", i + 1, file.display())
            }
            Err(_) => break,
        }
    }
    Ok(out)
}

/// Writes JSON atomically (temp file, fsync, rename).
pub fn write_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).with_context(|| format!("failed to write {}", tmp.display()))?;
    f.write_all(&serde_json::to_vec_pretty(value)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("failed to write {}", path.display()))?;
    Ok(())
}

/// Reads JSON (or YAML) from a file.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read {}", path.display()))?;
    match serde_json::from_str(&text) {
        Ok(v) => Ok(v),
        Err(json) => serde_saphyr::from_str(&text).map_err(|yaml| {
            anyhow::anyhow!(
                "failed to parse {}: not JSON ({json}) nor YAML ({yaml})",
                path.display()
            )
        }),
    }
}

/// Opens the append-only journal `name` in `dir`, making both when missing.
pub fn open_journal(dir: &Path, name: &str) -> anyhow::Result<File> {
    std::fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(name))
        .with_context(|| format!("failed to open {}", dir.join(name).display()))
}

/// Now, as journals record it (RFC 3339, UTC).
pub fn now() -> String {
    jiff::Timestamp::now().to_string()
}

/// The journal of a command that sends a list of requests (`identity apply`, `traffic
/// bindings --apply`): each request's line is written before it is sent and again once
/// it is answered, so a run that stopped in between shows which request it was in.
pub struct RequestJournal(File);

/// One line of a [`RequestJournal`].
#[derive(Debug, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
enum RequestEntry<'a> {
    Sending { at: String, request: &'a str },
    Sent { at: String, request: &'a str },
}

impl RequestJournal {
    /// Opens (or makes) the journal `name` in `dir`.
    pub fn open(dir: &Path, name: &str) -> anyhow::Result<Self> {
        open_journal(dir, name).map(Self)
    }

    /// Journals `request`, awaits `call` (which sends it), and journals the answer; an
    /// error leaves only the first line.
    pub async fn send<T>(
        &mut self,
        request: &str,
        call: impl Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<T> {
        append_line(&mut self.0, &RequestEntry::Sending { at: now(), request })?;
        let answer = call.await?;
        append_line(&mut self.0, &RequestEntry::Sent { at: now(), request })?;
        Ok(answer)
    }
}
