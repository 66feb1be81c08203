//! A migration's state dir: `run.json` (who, where, options), `plan.json`, the original
//! manifests of everything baton touches (`manifests/<context>/…`), and `journal.jsonl`,
//! appended and fsync'd record by record so it survives a crash at any point.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;
use baton_core::journal::{Event, Record};
use baton_core::plan::Plan;

use crate::commands::files::{append_line, read_json, read_lines, write_json};
use crate::exit::Refused;
use serde::{Deserialize, Serialize};

/// What a migration was started with; read back by resume, status, rollback and commit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunInfo {
    /// Migration id (in annotations and snapshot tags).
    pub migration: String,
    /// Blue's context.
    pub from: String,
    /// Green's context.
    pub to: String,
    /// The kubeconfig file used (None: the environment's default).
    pub kubeconfig: Option<PathBuf>,
    /// Create green PVs in CSI form for in-tree ones.
    pub convert_to_csi: bool,
    /// Multi-attach volumes allowed.
    pub allow_multi_attach: bool,
}

/// An open state dir.
#[derive(Debug)]
pub struct StateDir {
    /// Its path.
    pub path: PathBuf,
    journal: Mutex<(File, u64)>,
}

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

impl StateDir {
    /// Creates a new state dir; refuses one that already holds a migration.
    pub fn create(path: &Path, info: &RunInfo, plan: &Plan) -> anyhow::Result<Self> {
        if path.join("run.json").exists() {
            return Err(Refused(format!(
                "{} already holds a migration; continue it with `baton migrate --resume --state-dir {}`, or choose another --state-dir",
                path.display(),
                path.display()
            ))
            .into());
        }
        std::fs::create_dir_all(path.join("manifests"))
            .with_context(|| format!("failed to create {}", path.display()))?;
        write_json(&path.join("plan.json"), plan)?;
        write_json(&path.join("run.json"), info)?;
        Self::open(path)
    }

    /// Opens an existing state dir.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        if !path.join("run.json").exists() {
            return Err(Refused(format!(
                "{} holds no migration (no run.json); pass the --state-dir of a `baton migrate`, or start one with `baton migrate --from … --to …`",
                path.display()
            ))
            .into());
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path.join("journal.jsonl"))
            .with_context(|| format!("failed to open {}", path.join("journal.jsonl").display()))?;
        let seq = read_journal(path)?.last().map_or(0, |r| r.seq);
        Ok(Self {
            path: path.to_path_buf(),
            journal: Mutex::new((file, seq)),
        })
    }

    /// The run's info.
    pub fn info(&self) -> anyhow::Result<RunInfo> {
        read_json(&self.path.join("run.json"))
    }

    /// The saved plan.
    pub fn plan(&self) -> anyhow::Result<Plan> {
        read_json(&self.path.join("plan.json"))
    }

    /// Saves an original manifest once (a later save of the same object keeps the first).
    pub fn save_manifest(
        &self,
        context: &str,
        kind: &str,
        namespace: &str,
        name: &str,
        obj: &impl Serialize,
    ) -> anyhow::Result<()> {
        let dir = self
            .path
            .join("manifests")
            .join(context)
            .join(if namespace.is_empty() {
                "_cluster"
            } else {
                namespace
            });
        std::fs::create_dir_all(&dir)?;
        let file = dir.join(format!("{kind}-{name}.json"));
        if !file.exists() {
            write_json(&file, obj)?;
        }
        Ok(())
    }

    /// Appends a record and fsyncs it.
    pub fn record(&self, app: Option<&str>, event: Event) -> anyhow::Result<()> {
        let mut j = self.journal.lock().unwrap_or_else(|p| p.into_inner());
        j.1 += 1;
        let rec = Record {
            seq: j.1,
            at: now(),
            app: app.map(String::from),
            event,
        };
        append_line(&mut j.0, &rec)
    }

    /// Every record so far.
    pub fn records(&self) -> anyhow::Result<Vec<Record>> {
        read_journal(&self.path)
    }
}

fn read_journal(path: &Path) -> anyhow::Result<Vec<Record>> {
    read_lines(&path.join("journal.jsonl"))
}
