//! The runner's hands: connects to blue, green and AWS; reads what the planner and the
//! phase machine need; carries out one [`Action`] (idempotently) or one [`Wait`] (on each
//! cluster's shared watch cache; EC2, which has none, by short backed-off polls).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Context, bail};
use baton_aws::{Aws, Filter};
use baton_core::machine::{Action, Observed, Side, Wait};
use baton_core::plan::AppPlan;
use baton_core::world::{Ec2Volume, ReclaimPolicy, RetentionPolicy};
use baton_kube::Cluster;
use baton_kube::manifest::{Origin, green_claim, green_volume, reserved_for};

use super::state::StateDir;
use super::world::describe;

/// Tag on snapshots naming the migration.
pub const SNAPSHOT_TAG: &str = "baton.io/migration";

/// Connected clusters and AWS.
#[derive(Debug, Clone)]
pub struct Engine {
    /// Blue.
    pub blue: Cluster,
    /// Green.
    pub green: Cluster,
    /// AWS.
    pub aws: Aws,
    /// Migration id.
    pub migration: String,
    /// This process made the migration id (not a resume, rollback or commit): nothing in
    /// EC2 carries it but what this run makes, so its snapshots need no listing until a
    /// call that may have made one fails.
    pub new_migration: bool,
    /// Green PVs in CSI form.
    pub convert_to_csi: bool,
    /// Longest wait.
    pub wait_timeout: Duration,
}

fn names(app: &AppPlan) -> (Vec<String>, Vec<String>, Vec<String>) {
    (
        app.volumes.iter().map(|v| v.claim.clone()).collect(),
        app.volumes.iter().map(|v| v.pv.clone()).collect(),
        app.volumes.iter().map(|v| v.volume_id.clone()).collect(),
    )
}

impl Engine {
    /// Starts the shared watches of both clusters for the apps' namespaces before the
    /// apps need them, so no wait in a window pays for a first LIST.
    pub fn watch(&self, apps: &[AppPlan]) {
        let namespaces: Vec<String> = apps
            .iter()
            .map(|a| a.namespace.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        self.blue.watch(&namespaces);
        self.green.watch(&namespaces);
    }

    /// Observes what the machine reads about one app, fresh and concurrently: both
    /// clusters' sides and EC2's volumes. Not this migration's snapshots: only the step
    /// that starts them reads them, so the runner fetches them when the machine gets
    /// there ([`Engine::snapshots`]) and `snapshots` is left empty here.
    pub async fn observe(&self, app: &AppPlan) -> anyhow::Result<Observed> {
        let (claims, pvs, ids) = names(app);
        let (blue, green, ec2) = futures::try_join!(
            async {
                Ok::<_, anyhow::Error>(
                    self.blue
                        .side(&app.namespace, &app.name, &claims, &pvs)
                        .await?,
                )
            },
            async {
                Ok(self
                    .green
                    .side(&app.namespace, &app.name, &claims, &pvs)
                    .await?)
            },
            describe(&self.aws, &ids),
        )?;
        Ok(Observed {
            blue,
            green,
            ec2,
            snapshots: BTreeMap::new(),
            migration: self.migration.clone(),
        })
    }

    /// The snapshots this migration started of the app's volumes, by volume id.
    pub async fn snapshots(&self, app: &AppPlan) -> anyhow::Result<BTreeMap<String, String>> {
        let (_, _, ids) = names(app);
        if ids.is_empty() {
            return Ok(BTreeMap::new());
        }
        let snaps = self
            .aws
            .describe_snapshots(
                &[],
                &[
                    Filter::new(format!("tag:{SNAPSHOT_TAG}"), [self.migration.clone()]),
                    Filter::new("volume-id", ids.iter().cloned()),
                ],
            )
            .await
            .context("failed to list this migration's snapshots")?;
        Ok(snaps.into_iter().map(|s| (s.volume_id, s.id)).collect())
    }

    /// Carries out one action; returns what it produced (a uid, a snapshot id).
    pub async fn execute(
        &self,
        state: &StateDir,
        app: &AppPlan,
        action: &Action,
    ) -> anyhow::Result<Option<String>> {
        let ns = app.namespace.as_str();
        let origin = Origin {
            migration: &self.migration,
            from: &self.blue.context,
        };
        let retain_all = RetentionPolicy::default();
        match action {
            Action::RetainBlueVolume { pv, original } => {
                match self.blue.volume(pv).await? {
                    Some(obj) => {
                        state.save_manifest(&self.blue.context, "pv", "", pv, &obj)?;
                        self.blue
                            .set_reclaim_of(&obj, ReclaimPolicy::Retain, Some(*original))
                            .await?;
                    }
                    // Gone: the patch fails and says so.
                    None => {
                        self.blue
                            .set_reclaim(pv, ReclaimPolicy::Retain, Some(*original))
                            .await?
                    }
                }
            }
            Action::RetainBlueClaims { original } => {
                self.blue
                    .set_retention(ns, &app.name, &retain_all, Some(original))
                    .await?;
            }
            Action::ScaleBlue { replicas } => {
                self.blue.scale(ns, &app.name, *replicas).await?;
            }
            Action::StartSnapshot { volume_id, claim } => {
                let tags = [
                    (SNAPSHOT_TAG.to_string(), self.migration.clone()),
                    ("baton.io/claim".to_string(), format!("{ns}/{claim}")),
                ]
                .into_iter()
                .collect();
                let s = self
                    .aws
                    .create_snapshot(
                        volume_id,
                        &format!("baton {}: {ns}/{claim} at hand-over", self.migration),
                        &tags,
                    )
                    .await
                    .with_context(|| format!("failed to start a snapshot of {volume_id}"))?;
                return Ok(Some(s.id));
            }
            Action::CreateGreenClaim { claim } => {
                let v = app
                    .volumes
                    .iter()
                    .find(|v| &v.claim == claim)
                    .context("claim not in the plan")?;
                // Blue's claim is not changed by the move: the watch cache's copy will do.
                let blue = match self.blue.cached_claim(ns, claim) {
                    Some(c) => c,
                    None => self.blue.claim(ns, claim).await?.with_context(|| {
                        format!("blue's claim {ns}/{claim} is gone; it is needed to create green's")
                    })?,
                };
                state.save_manifest(&self.blue.context, "pvc", ns, claim, &blue)?;
                let created = self
                    .green
                    .create_claim(&green_claim(&blue, &v.pv, &origin))
                    .await?;
                return Ok(created.metadata.uid);
            }
            Action::CreateGreenVolume {
                pv,
                claim,
                claim_uid,
            } => {
                let v = app
                    .volumes
                    .iter()
                    .find(|v| &v.pv == pv)
                    .context("PV not in the plan")?;
                // Blue's PV is not changed by the move but for its reclaim policy and
                // annotations, which green's PV sets itself: the watch cache's copy will do.
                let blue = match self.blue.cached_volume(pv) {
                    Some(p) => p,
                    None => self.blue.volume(pv).await?.with_context(|| {
                        format!("blue's PV {pv} is gone; it is needed to create green's")
                    })?,
                };
                // The claim's uid came back from creating it (or from a fresh read, on a
                // resume): the PV is reserved for exactly that claim. Had the claim been
                // re-created since, the PV would be Released, Retain, and the machine would
                // stop on the uid mismatch — never bindable by another claim.
                let green_claim_obj = reserved_for(ns, claim, claim_uid);
                let created = self
                    .green
                    .create_volume(&green_volume(
                        &blue,
                        &green_claim_obj,
                        v.original_reclaim_policy.as_str(),
                        self.convert_to_csi,
                        &origin,
                    ))
                    .await?;
                return Ok(created.metadata.uid);
            }
            Action::ScaleGreen { replicas } => self.green.scale(ns, &app.name, *replicas).await?,
            Action::RetainGreenVolume { pv } => {
                self.green
                    .set_reclaim(pv, ReclaimPolicy::Retain, None)
                    .await?;
            }
            Action::DeleteGreenClaim { claim } => self.green.delete_claim(ns, claim).await?,
            Action::DeleteGreenVolume { pv } => self.green.delete_volume(pv).await?,
            Action::RestoreBlueVolume { pv, policy } => {
                self.blue.set_reclaim(pv, *policy, None).await?;
            }
            Action::RestoreBlueClaims { policy } => {
                self.blue.set_retention(ns, &app.name, policy, None).await?;
            }
            Action::DeleteBlueClaim { claim } => {
                if let Some(obj) = self.blue.claim(ns, claim).await? {
                    state.save_manifest(&self.blue.context, "pvc", ns, claim, &obj)?;
                }
                self.blue.delete_claim(ns, claim).await?;
            }
            Action::DeleteBlueVolume { pv } => {
                if let Some(obj) = self.blue.volume(pv).await? {
                    state.save_manifest(&self.blue.context, "pv", "", pv, &obj)?;
                }
                self.blue.delete_volume(pv).await?;
            }
            Action::RestoreGreenVolume { pv, policy } => {
                self.green.set_reclaim(pv, *policy, None).await?;
            }
        }
        Ok(None)
    }

    /// Waits for a condition; returns what it saw when the condition held.
    pub async fn wait(&self, app: &AppPlan, w: Wait) -> anyhow::Result<Seen> {
        let (claims, pvs, ids) = names(app);
        let (ns, name, t) = (&app.namespace, &app.name, self.wait_timeout);
        let replicas = app.replicas;
        let ready = move |s: &Side| {
            s.sts
                .as_ref()
                .is_some_and(|x| x.ready_replicas >= replicas && x.observed)
        };
        // Bound to our PV, and that PV (seen too, as the next step reads it) reserved for
        // the claim's uid: the cache does not order one kind's events against another's.
        let bound = |s: &Side| {
            app.volumes.iter().all(|v| {
                s.claims.get(&v.claim).is_some_and(|c| {
                    c.phase == "Bound"
                        && c.volume_name == v.pv
                        && s.volumes
                            .get(&v.pv)
                            .and_then(|p| p.claim_ref.as_ref())
                            .is_some_and(|r| r.uid == c.uid)
                })
            })
        };
        let (blue, green) = (&self.blue, &self.green);
        Ok(match w {
            Wait::BluePodsGone => Seen::Blue(
                blue.wait_for(ns, name, &claims, &pvs, t, |s| s.pods == 0)
                    .await?,
            ),
            Wait::BlueDetached => Seen::Blue(
                blue.wait_for(ns, name, &claims, &pvs, t, |s| s.attachments == 0)
                    .await?,
            ),
            Wait::BlueReady => Seen::Blue(blue.wait_for(ns, name, &claims, &pvs, t, ready).await?),
            Wait::GreenPodsGone => Seen::Green(
                green
                    .wait_for(ns, name, &claims, &pvs, t, |s| s.pods == 0)
                    .await?,
            ),
            Wait::GreenDetached => Seen::Green(
                green
                    .wait_for(ns, name, &claims, &pvs, t, |s| s.attachments == 0)
                    .await?,
            ),
            Wait::GreenBound => {
                Seen::Green(green.wait_for(ns, name, &claims, &pvs, t, bound).await?)
            }
            Wait::GreenReady => {
                Seen::Green(green.wait_for(ns, name, &claims, &pvs, t, ready).await?)
            }
            Wait::VolumesAvailable => {
                // EC2 has no watch: short polls, backing off to 1 s.
                let deadline = tokio::time::Instant::now() + t;
                let mut pause = Duration::from_millis(100);
                loop {
                    let v = describe(&self.aws, &ids).await?;
                    if ids
                        .iter()
                        .all(|id| v.get(id).is_some_and(|e| e.state == "available"))
                    {
                        break Seen::Ec2(v);
                    }
                    if tokio::time::Instant::now() >= deadline {
                        bail!(
                            "EC2 did not report the volumes of {ns}/{name} available within {t:?}"
                        );
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
            }
        })
    }
}

/// What a wait saw when its condition held: the side of the cluster it watched (from that
/// cluster's watch cache, so it may lag: see `machine::trusts_cached_view`), or EC2's
/// view of the volumes (a fresh read).
#[derive(Debug)]
pub enum Seen {
    /// Blue's side.
    Blue(Side),
    /// Green's side.
    Green(Side),
    /// EC2's volumes, by id.
    Ec2(BTreeMap<String, Ec2Volume>),
}

impl Seen {
    /// Puts what was seen into `obs`, in place of what it held of the same source.
    pub fn update(self, obs: &mut Observed) {
        match self {
            Seen::Blue(s) => obs.blue = s,
            Seen::Green(s) => obs.green = s,
            Seen::Ec2(v) => obs.ec2 = v,
        }
    }
}
