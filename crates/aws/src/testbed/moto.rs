//! moto, which plays AWS for the emulated estate and for this crate's tests: started on a
//! free loopback port, waited for until it answers, and stopped on drop. moto runs under a
//! small `sh` that waits on a pipe only this process writes to, so it stops even when this
//! process is killed with SIGKILL, or exits without dropping it (a test binary's static).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, ChildStdin, Command};

/// The pip command that installs moto's server.
const INSTALL_HINT: &str = "pip install 'moto[server]'";

/// How moto is started when `python3` can import it: moto's own server with four of its
/// per-request costs removed, answers unchanged (the file says which and why).
/// `BATON_MOTO_STOCK=1` starts moto as it ships instead.
const LAUNCHER: &str = include_str!("moto_server.py");

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
    /// Starts moto on a free loopback port and waits until it answers: through
    /// `moto_server.py` when `python3` can import moto, unless `BATON_MOTO_STOCK=1`.
    pub async fn start() -> Result<Self, MotoError> {
        let stock = std::env::var_os("BATON_MOTO_STOCK").is_some_and(|v| v != "0");
        Self::start_with(!stock).await
    }

    /// Starts moto through `moto_server.py` (`patched`) or as it ships.
    pub async fn start_with(patched: bool) -> Result<Self, MotoError> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(MotoError::Spawn)?;
        let tmp = std::env::temp_dir();
        let log = tmp.join(format!("baton-moto-{port}.log"));
        // Removed when this function returns: python has read it by then.
        let mut _launcher = None;
        let importable = works("python3", &["-c", "import moto.server"]).await;
        let server = if patched && importable {
            // moto_server.py: moto with its per-request costs removed (see the file), in
            // a directory of its own (python puts the script's directory first on its
            // path: nothing else may be there to shadow a module).
            let dir = TempDir::new(tmp.join(format!("baton-moto-{port}.d")))?;
            let file = dir.0.join("moto_server.py");
            std::fs::write(&file, LAUNCHER).map_err(MotoError::Spawn)?;
            _launcher = Some(dir);
            format!("python3 '{}'", file.display())
        } else if works("sh", &["-c", "command -v moto_server"]).await {
            "moto_server".into()
        } else if importable {
            "python3 -m moto.server".into()
        } else {
            return Err(MotoError::Missing);
        };
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

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// A directory of this process's, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(path: PathBuf) -> Result<Self, MotoError> {
        let _ = std::fs::remove_dir_all(&path); // a crashed run's
        std::fs::create_dir(&path).map_err(MotoError::Spawn)?;
        Ok(Self(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        // Closing the pipe makes the wrapper shell kill moto.
        self.stdin.take();
    }
}
