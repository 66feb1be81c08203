//! moto, which plays AWS for the emulated estate: started on a free loopback port (or an
//! endpoint the user gives is used as is), waited for until it answers, and stopped with
//! the emulator. moto runs under a small `sh` that waits on a pipe only this process
//! writes to, so it stops even when the emulator is killed with SIGKILL.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, ChildStdin, Command};

/// The pip command that installs moto's server.
pub const INSTALL_HINT: &str = "pip install 'moto[server]'";

/// Failed to start moto.
#[derive(Debug, thiserror::Error)]
pub enum MotoError {
    /// Neither `moto_server` nor the `moto.server` Python module is installed.
    #[error(
        "failed to start moto: it is not installed (neither `moto_server` nor `python3 -m moto.server` works). Install it with: {INSTALL_HINT}"
    )]
    Missing,
    /// The process could not be spawned.
    #[error("failed to spawn moto: {0}")]
    Spawn(std::io::Error),
    /// moto exited or did not answer in time.
    #[error("failed to start moto on {addr}: {why}; its log ({log}):\n{tail}")]
    NotReady {
        /// Where it should have listened.
        addr: SocketAddr,
        /// What happened.
        why: String,
        /// The log file.
        log: String,
        /// The end of the log.
        tail: String,
    },
}

/// A moto server this process started; stopped on drop.
#[derive(Debug)]
pub struct Moto {
    addr: SocketAddr,
    log: PathBuf,
    child: Child,
    stdin: Option<ChildStdin>,
}

async fn works(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

impl Moto {
    /// Starts moto on a free loopback port and waits until it answers.
    pub async fn start() -> Result<Self, MotoError> {
        let server = if works("sh", &["-c", "command -v moto_server"]).await {
            "moto_server"
        } else if works("python3", &["-c", "import moto.server"]).await {
            "python3 -m moto.server"
        } else {
            return Err(MotoError::Missing);
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(MotoError::Spawn)?;
        let log = std::env::temp_dir().join(format!("baton-sim-moto-{port}.log"));
        let script = format!(
            "{server} -H 127.0.0.1 -p {port} >'{}' 2>&1 & moto=$!; read _ignored; kill $moto; wait $moto",
            log.display()
        );
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Not kill_on_drop: killing the wrapper shell would orphan moto. Closing its
            // stdin (on drop, or when this process dies) makes it stop moto itself.
            .spawn()
            .map_err(MotoError::Spawn)?;
        let stdin = child.stdin.take();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let mut moto = Self {
            addr,
            log,
            child,
            stdin,
        };
        loop {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                tracing::info!(%addr, "moto is answering");
                return Ok(moto);
            }
            if let Ok(Some(status)) = moto.child.try_wait() {
                return Err(moto.not_ready(format!("it exited ({status})")));
            }
            if tokio::time::Instant::now() > deadline {
                return Err(moto.not_ready("it did not answer within 30 s".into()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn not_ready(&self, why: String) -> MotoError {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: String = text
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        MotoError::NotReady {
            addr: self.addr,
            why,
            log: self.log.display().to_string(),
            tail,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// moto's request log.
    pub fn log(&self) -> &std::path::Path {
        &self.log
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        // Closing the pipe makes the wrapper shell kill moto.
        self.stdin.take();
    }
}
