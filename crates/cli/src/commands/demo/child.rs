//! Runs one `baton` command of the demo as a user would run it: this same executable, in
//! a child process, with the estate's environment (kubeconfig, AWS endpoint, dummy
//! credentials). The demo so goes through exactly the code paths, flags and exit codes
//! of the commands it shows, and its output stays readable: the command line is printed
//! first, exactly as it ran (wrapped at its flags with `\\` when long), then each line the
//! command writes, indented under it and kept to the terminal's width.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::commands::show;

/// How to start `baton` for the demo's steps.
#[derive(Debug)]
pub struct Baton {
    exe: PathBuf,
    env: BTreeMap<String, String>,
    cwd: PathBuf,
    /// The command lines shown since [`Baton::take_shown`] last took them.
    shown: Mutex<Vec<String>>,
}

/// What a command printed and how it ended.
#[derive(Debug)]
pub struct Ran {
    /// The exit code (None: killed by a signal).
    pub code: Option<i32>,
    /// Its standard output.
    pub stdout: String,
}

impl Baton {
    /// The current executable, with the exports of an env file (`export K=V` lines).
    pub fn new(exports: &str, cwd: &Path) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("failed to find baton's own executable")?;
        let env = exports
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Ok(Self {
            exe,
            env,
            cwd: cwd.to_path_buf(),
            shown: Mutex::new(Vec::new()),
        })
    }

    /// The command lines run since the last call (one line each, as a shell takes them).
    pub fn take_shown(&self) -> Vec<String> {
        self.shown
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default()
    }

    /// Runs `baton ARGS…`, showing its output as it comes; returns once it ended.
    pub async fn run(&self, args: &[String]) -> anyhow::Result<Ran> {
        self.spawn(args, None).await
    }

    /// Runs `baton ARGS… > FILE` (`-o json` commands): the output goes to `file` (in the
    /// demo's dir) and is kept for the caller to show in short; the command's messages
    /// (stderr) are shown.
    pub async fn run_to_file(&self, args: &[String], file: &str) -> anyhow::Result<Ran> {
        let ran = self.spawn(args, Some(file)).await?;
        let path = self.cwd.join(file);
        std::fs::write(&path, &ran.stdout)
            .with_context(|| format!("failed to write {}", path.display()))?;
        Ok(ran)
    }

    async fn spawn(&self, args: &[String], to_file: Option<&str>) -> anyhow::Result<Ran> {
        let width = show::width().unwrap_or(120).saturating_sub(4);
        outln!("  $ {}", command_line(args, to_file, width));
        if let Ok(mut s) = self.shown.lock() {
            s.push(command_line(args, to_file, usize::MAX));
        }
        let width = show::width().map(|w| w.saturating_sub(4));
        let echo_stdout = to_file.is_none();
        let mut child = tokio::process::Command::new(&self.exe)
            .args(args)
            .envs(&self.env)
            .current_dir(&self.cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("failed to start {}", self.exe.display()))?;
        let out = child.stdout.take().context("no stdout pipe")?;
        let err = child.stderr.take().context("no stderr pipe")?;
        let stdout = async {
            let mut kept = String::new();
            let mut lines = BufReader::new(out).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if echo_stdout {
                    outln!("  │ {}", show::fit(&line, width));
                }
                kept.push_str(&line);
                kept.push('\n');
            }
            kept
        };
        let stderr = async {
            let mut lines = BufReader::new(err).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                outln!("  │ {}", show::fit(&line, width));
            }
        };
        let (stdout, ()) = tokio::join!(stdout, stderr);
        let status = child.wait().await.context("failed to wait for baton")?;
        Ok(Ran {
            code: status.code(),
            stdout,
        })
    }

    /// [`Baton::run`], which must exit 0.
    pub async fn ok(&self, args: &[String]) -> anyhow::Result<Ran> {
        let ran = self.run(args).await?;
        match ran.code {
            Some(0) => Ok(ran),
            code => anyhow::bail!(
                "`baton {}` exited {} (its output is above)",
                shell_words(args),
                code.map_or("on a signal".to_string(), |c| c.to_string())
            ),
        }
    }
}

/// Arguments as a shell would need them typed (quoted when they hold odd characters).
pub fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:,=@%+".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `baton ARGS…` (and `> FILE`) as a shell takes it; longer than `width`, broken before
/// each flag (`--x`), the lines continued with ` \\` and indented.
pub fn command_line(args: &[String], to_file: Option<&str>, width: usize) -> String {
    let mut parts = vec!["baton".to_string()];
    for a in args {
        let word = shell_words(std::slice::from_ref(a));
        match parts.last_mut() {
            Some(last) if !a.starts_with("--") => {
                last.push(' ');
                last.push_str(&word);
            }
            _ => parts.push(word),
        }
    }
    if let (Some(f), Some(last)) = (to_file, parts.last_mut()) {
        last.push_str(" > ");
        last.push_str(&shell_words(&[f.to_string()]));
    }
    let one = parts.join(" ");
    if one.chars().count() <= width {
        return one;
    }
    parts.join(" \\\n      ")
}

/// `["a", "b"]` as owned strings.
pub fn args<const N: usize>(a: [&str; N]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_quote_only_what_needs_it() {
        let a = args(["traffic", "--listener", "arn:aws:x/y", "a b", "it's"]);
        assert_eq!(
            shell_words(&a),
            r"traffic --listener arn:aws:x/y 'a b' 'it'\''s'"
        );
    }

    #[test]
    fn long_command_lines_break_before_their_flags() {
        let a = args([
            "traffic",
            "shift",
            "--listener",
            "arn:aws:x/y",
            "--yes",
            "-o",
            "json",
        ]);
        assert_eq!(
            command_line(&a, Some("out.json"), 200),
            "baton traffic shift --listener arn:aws:x/y --yes -o json > out.json"
        );
        assert_eq!(
            command_line(&a, None, 30),
            "baton traffic shift \\\n      --listener arn:aws:x/y \\\n      --yes -o json"
        );
    }

    #[test]
    fn env_file_exports_become_the_child_environment() {
        let b = Baton::new(
            "export KUBECONFIG=/tmp/k\nexport AWS_REGION=us-east-1\n# other\n",
            Path::new("/"),
        )
        .unwrap();
        assert_eq!(b.env["KUBECONFIG"], "/tmp/k");
        assert_eq!(b.env["AWS_REGION"], "us-east-1");
        assert_eq!(b.env.len(), 2);
    }
}
