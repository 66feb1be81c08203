//! `baton demo`: the whole story on the embedded emulator. It is built from the pieces
//! of later changes (network, preflight, traffic, migrate); until they exist it says so.

use std::process::ExitCode;

use crate::args::DemoArgs;
use crate::exit::code;

pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    eprintln!(
        "baton demo (scenario {:?}) is not built yet: it arrives once the stateful move, traffic shift and \
         network planning exist. What runs today is the emulated API server: `baton sim up --state-dir {}`.",
        args.scenario,
        args.state_dir.display()
    );
    Ok(ExitCode::from(code::NOT_BUILT))
}
