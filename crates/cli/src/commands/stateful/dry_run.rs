//! `--dry-run` of migrate, rollback and commit: every request the run would send, in the
//! order the phase machine would make them on the world as observed now. Each line is the
//! value [`Engine::prepare`] builds — the one a run sends — so the two cannot drift apart;
//! only what the clusters answer is not known yet (a created claim's uid, shown as
//! [`UID_OF_CREATED_CLAIM`]).

use baton_core::machine::{Action, Decision, Mode, next};
use baton_core::plan::{AppPlan, GroupPlan};
use baton_core::simulate;

use super::engine::Engine;

/// Stands for the uid the claim's create returns, in the PV that reserves the volume for it.
pub const UID_OF_CREATED_CLAIM: &str = "<uid returned by creating the claim>";

/// Prints each app's requests (one line each: context, method, path, body) and the waits
/// between them. Reads only.
pub async fn print(
    engine: &Engine,
    apps: &[AppPlan],
    groups: &[GroupPlan],
    mode: Mode,
) -> anyhow::Result<()> {
    // A group's order holds between its members' requests: say it first.
    for g in groups {
        if !g.members.iter().any(|m| apps.iter().any(|a| &a.key() == m)) {
            continue;
        }
        let reversed: Vec<&str> = g.members.iter().rev().map(String::as_str).collect();
        let order = match mode {
            Mode::Migrate => format!(
                "blue stops {} (each once the one before has stopped); green starts {} (each once the one before is Ready)",
                reversed.join(" → "),
                g.order()
            ),
            Mode::Rollback => format!(
                "green stops {} (each once the one before has stopped); blue starts {} (each once the one before is Ready)",
                reversed.join(" → "),
                g.order()
            ),
            Mode::Commit { .. } => continue,
        };
        outln!("# group {} ({}): {order}", g.name, g.found_by);
    }
    for app in apps {
        let mut obs = engine.observe(app).await?;
        if !engine.new_migration {
            obs.snapshots = engine.snapshots(app).await?;
        }
        outln!(
            "# {} ({})",
            app.key(),
            crate::commands::show::plural(app.volumes.len(), "volume")
        );
        for _ in 0..200 {
            let d = next(mode, app, &obs);
            match &d {
                Decision::Act(action) => outln!("{}", engine.prepare(app, action).await?),
                Decision::Wait { wait } => outln!("  (wait for {})", wait.describe()),
                Decision::Done => break,
                Decision::Blocked { reason } => {
                    outln!("  (blocked: {reason})");
                    break;
                }
            }
            simulate::apply(app, &mut obs, &d);
            if let Decision::Act(Action::CreateGreenClaim { claim }) = &d
                && let Some(c) = obs.green.claims.get_mut(claim)
            {
                c.uid = UID_OF_CREATED_CLAIM.to_string();
            }
        }
    }
    errln!("dry run: nothing was changed");
    Ok(())
}
