//! One moto server per test binary, started on first use by the test bed's launcher
//! (`baton_aws::testbed::moto`, the emulator's: `BATON_MOTO_STOCK=1` starts moto as it
//! ships instead of through `moto_server.py`).
//!
//! Rust never drops statics, so the server is never stopped from a destructor: it runs
//! under a `sh` that waits on a pipe whose only writer is this process, and stops moto
//! when the test binary exits (passed, failed or killed). No orphan survives `cargo test`.

use std::net::SocketAddr;
use std::sync::OnceLock;

use baton_aws::testbed::moto::Moto;

static MOTO: OnceLock<Moto> = OnceLock::new();

fn moto() -> &'static Moto {
    MOTO.get_or_init(|| {
        // Each #[tokio::test] has a runtime of its own and may not block inside it: the
        // launcher runs on a thread of its own, on a runtime of its own.
        std::thread::spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime to start moto")
                .block_on(Moto::start())
        })
        .join()
        .expect("the thread starting moto")
        .unwrap_or_else(|e| panic!("{e}"))
    })
}

/// `http://127.0.0.1:PORT` of this binary's moto server, starting it if needed.
pub fn endpoint() -> String {
    moto().endpoint()
}

/// The socket address of this binary's moto server.
pub fn addr() -> SocketAddr {
    moto().addr()
}
