//! One moto server per test binary, started on first use on a free loopback port.
//!
//! Rust never drops statics, so the server cannot be stopped from a destructor. Instead
//! moto runs under a small `sh` that waits on a pipe whose only writer is this process:
//! when the test binary exits (passed, failed or killed), the pipe closes, `read`
//! returns, and the shell kills moto. No orphan survives `cargo test`.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

struct Moto {
    addr: SocketAddr,
    log: PathBuf,
    // Held for the life of the process: its pipe end closing is the stop signal.
    _guard: Mutex<(Child, ChildStdin)>,
}

static MOTO: OnceLock<Moto> = OnceLock::new();

/// `http://127.0.0.1:PORT` of this binary's moto server, starting it if needed.
pub fn endpoint() -> String {
    format!("http://{}", addr())
}

/// The socket address of this binary's moto server.
pub fn addr() -> SocketAddr {
    MOTO.get_or_init(start).addr
}

/// The log file moto writes its requests to (for failing-test diagnosis).
pub fn log() -> PathBuf {
    MOTO.get_or_init(start).log.clone()
}

fn command_line() -> String {
    let on_path = |cmd: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {cmd}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if on_path("moto_server") {
        return "moto_server".to_owned();
    }
    let module = Command::new("python3")
        .args(["-c", "import moto.server"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if module {
        return "python3 -m moto.server".to_owned();
    }
    panic!(
        "moto is not installed: these tests need its server. Install it with: pip install 'moto[server]'"
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn start() -> Moto {
    let server = command_line();
    let port = free_port();
    let log = std::env::temp_dir().join(format!("baton-aws-moto-{port}.log"));
    let script = format!(
        "{server} -H 127.0.0.1 -p {port} >'{}' 2>&1 & moto=$!; read _ignored; kill $moto; wait $moto",
        log.display()
    );
    let mut child = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sh to run moto");
    let stdin = child.stdin.take().expect("piped stdin");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "moto exited ({status}) before answering on {addr}; its log:\n{}",
                read_log(&log)
            );
        }
        if Instant::now() > deadline {
            panic!(
                "moto did not answer on {addr} within 30s; its log:\n{}",
                read_log(&log)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Moto {
        addr,
        log,
        _guard: Mutex::new((child, stdin)),
    }
}

fn read_log(path: &PathBuf) -> String {
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.read_to_string(&mut text);
    }
    text
}
