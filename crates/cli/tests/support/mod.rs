//! Runs the real `baton` binary as a user does: `baton sim up` in the foreground of its
//! own process, other commands and kubectl from "another shell" against its state dir.

#![allow(dead_code)] // each test binary uses part of this

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A running `baton sim up`; stopped (SIGTERM, then kill) when dropped.
pub struct Sim {
    pub dir: tempfile::TempDir,
    child: Child,
    stderr: Arc<Mutex<String>>,
}

impl Sim {
    /// Starts `baton sim up --state-dir DIR ARGS…` and waits for its ready line.
    pub fn start(args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_baton"))
            .args(["sim", "up", "--state-dir"])
            .arg(dir.path())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // baton's progress and errors, kept to explain a failure.
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let mut sim = Self { dir, child, stderr };
        if !line.starts_with("baton sim ready") {
            let status = sim.child.wait().unwrap();
            std::thread::sleep(Duration::from_millis(200));
            panic!("first line: {line:?}; {status}; stderr:\n{}", sim.stderr());
        }
        sim
    }

    /// What `sim up` printed on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// A variable of the env file.
    pub fn env(&self, key: &str) -> String {
        let env = std::fs::read_to_string(self.dir.path().join("env")).unwrap();
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("export {key}=")))
            .unwrap_or_else(|| panic!("{key} missing from env file:\n{env}"))
            .to_string()
    }

    /// `kubectl ARGS…` with the env file's kubeconfig.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", self.env("KUBECONFIG"))
            .env("HOME", self.dir.path())
            .output()
            .expect("kubectl is installed")
    }

    /// `baton sim fault --state-dir DIR ARGS…`.
    pub fn fault(&self, args: &[&str]) -> Output {
        let out = baton(&[&["sim", "fault", "--state-dir", self.path()][..], args].concat());
        assert!(
            out.status.success(),
            "sim fault {args:?}: {}",
            text(&out.stderr)
        );
        out
    }

    fn path(&self) -> &str {
        self.dir.path().to_str().unwrap()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `baton ARGS…`, run to completion.
pub fn baton(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(args)
        .output()
        .unwrap()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
