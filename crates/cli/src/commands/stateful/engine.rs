//! The runner's hands on the real clusters and AWS: reads what the phase machine needs,
//! turns each [`Action`] into the one request value that `--dry-run` prints and the run
//! sends ([`Engine::prepare`], built by `baton_kube::request` and `baton_aws`), sends it
//! idempotently, and waits for each [`Wait`] on the condition `baton_core` defines (on
//! each cluster's shared watch cache; EC2, which has none, by short backed-off polls).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use anyhow::{Context, bail};
use baton_aws::{Aws, Filter, NewSnapshot, NewTags, RemovedTags};
use baton_core::fences::FenceSeen;
use baton_core::machine::{Action, Answer, Observed, Seen, Wait, Watched};
use baton_core::plan::AppPlan;
use baton_core::world::{ReclaimPolicy, RetentionPolicy};
use baton_kube::fences;
use baton_kube::manifest::{Origin, green_claim, green_volume, reserved_for};
use baton_kube::request::{self, Mutation};
use baton_kube::{Cluster, convert};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use serde_json::Value;

use super::runner::Hands;
use super::state::StateDir;
use super::world::describe;
use crate::commands::retry::poll_until;

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
        let namespaces: Vec<(String, baton_core::world::WorkloadKind)> = apps
            .iter()
            .map(|a| (a.namespace.clone(), a.kind))
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
                        .side(&app.namespace, app.kind, &app.name, &claims, &pvs)
                        .await?,
                )
            },
            async {
                Ok(self
                    .green
                    .side(&app.namespace, app.kind, &app.name, &claims, &pvs)
                    .await?)
            },
            describe(&self.aws, &ids),
        )?;
        // Fences are read fresh, one GET each (an app has few; most have none).
        let mut fences = BTreeMap::new();
        let seen = futures::future::try_join_all(
            app.fences
                .iter()
                .map(|f| async move { Ok::<_, anyhow::Error>((f, self.blue.fence(f).await?)) }),
        )
        .await?;
        for (f, obj) in seen {
            if let Some(obj) = obj {
                fences.insert(f.key(), FenceSeen::of(f.kind, &obj));
            }
        }
        Ok(Observed {
            blue,
            green,
            ec2,
            snapshots: BTreeMap::new(),
            migration: self.migration.clone(),
            fences,
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

    /// The cluster an action changes (`Action::target`; EC2's go to neither).
    fn cluster(&self, action: &Action) -> &Cluster {
        match action.target() {
            "blue" => &self.blue,
            _ => &self.green,
        }
    }

    /// Blue's claim, from the watch cache when it holds it (the move does not change
    /// blue's claims before commit deletes them), else read.
    async fn blue_claim(&self, ns: &str, claim: &str) -> anyhow::Result<PersistentVolumeClaim> {
        match self.blue.cached_claim(ns, claim) {
            Some(c) => Ok(c),
            None => self.blue.claim(ns, claim).await?.with_context(|| {
                format!("blue's claim {ns}/{claim} is gone; it is needed to create green's")
            }),
        }
    }

    /// Builds the request an action is made of, reading what it is built from: this is
    /// what `--dry-run` prints and what [`Engine::send`] sends. Reads only.
    pub async fn prepare(&self, app: &AppPlan, action: &Action) -> anyhow::Result<Prepared> {
        let ns = app.namespace.as_str();
        let name = app.name.as_str();
        let origin = Origin {
            migration: &self.migration,
            from: &self.blue.context,
        };
        // Which cluster each goes to is `Action::target`'s.
        let mut keep = None;
        let request = match action {
            Action::RetainBlueVolume { pv, original } => {
                // Read fresh: the original policy is recorded only if no record exists.
                let current = self.blue.volume(pv).await?;
                keep = current.as_ref().map(|o| Keep::of("pv", "", pv, o));
                Request::Kube(request::set_reclaim(
                    pv,
                    current.as_ref(),
                    ReclaimPolicy::Retain,
                    Some(*original),
                ))
            }
            Action::RetainBlueClaims { original } => Request::Kube(request::set_retention(
                ns,
                name,
                &RetentionPolicy::default(),
                Some(original),
            )),
            Action::ScaleBlue { replicas } => {
                Request::Kube(request::scale(app.kind, ns, name, *replicas))
            }
            Action::PauseFence { fence } => {
                // Read fresh: the value it replaces is recorded only if no record exists.
                let current = self
                    .blue
                    .fence(fence)
                    .await?
                    .with_context(|| format!("{fence} is gone from {}", self.blue.context))?;
                keep = Some(Keep::of(
                    fence.kind.plural(),
                    &fence.namespace,
                    &fence.name,
                    &current,
                ));
                Request::Kube(fences::pause(fence, &current))
            }
            Action::ResumeFence { fence, original } => {
                Request::Kube(fences::restore(fence, original))
            }
            Action::StartSnapshot { volume_id, claim } => Request::Ec2(NewSnapshot {
                volume_id: volume_id.clone(),
                description: format!("baton {}: {ns}/{claim} at hand-over", self.migration),
                tags: [
                    (SNAPSHOT_TAG.to_string(), self.migration.clone()),
                    ("baton.io/claim".to_string(), format!("{ns}/{claim}")),
                ]
                .into_iter()
                .collect(),
            }),
            Action::CreateGreenClaim { claim } => {
                let v = app
                    .volumes
                    .iter()
                    .find(|v| &v.claim == claim)
                    .context("claim not in the plan")?;
                let b = self.blue_claim(ns, claim).await?;
                keep = Some(Keep::of("pvc", ns, claim, &b));
                Request::Kube(request::create_claim(&green_claim(&b, &v.pv, &origin)))
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
                let b = match self.blue.cached_volume(pv) {
                    Some(p) => p,
                    None => self.blue.volume(pv).await?.with_context(|| {
                        format!("blue's PV {pv} is gone; it is needed to create green's")
                    })?,
                };
                // Reserved for exactly the claim whose uid its create returned (or a fresh
                // read showed, on a resume). Had the claim been re-created since, the PV
                // would be Released, Retain, and the machine would stop on the uid
                // mismatch — never bindable by another claim.
                Request::Kube(request::create_volume(&green_volume(
                    &b,
                    &reserved_for(ns, claim, claim_uid),
                    v.original_reclaim_policy.as_str(),
                    self.convert_to_csi,
                    &origin,
                )))
            }
            Action::ScaleGreen { replicas } => {
                Request::Kube(request::scale(app.kind, ns, name, *replicas))
            }
            Action::RetainGreenVolume { pv } => {
                Request::Kube(request::set_reclaim(pv, None, ReclaimPolicy::Retain, None))
            }
            Action::DeleteGreenClaim { claim } => Request::Kube(request::delete_claim(ns, claim)),
            Action::DeleteGreenVolume { pv } => Request::Kube(request::delete_volume(pv)),
            Action::RestoreBlueVolume { pv, policy } => {
                Request::Kube(request::set_reclaim(pv, None, *policy, None))
            }
            Action::RestoreBlueClaims { policy } => {
                Request::Kube(request::set_retention(ns, name, policy, None))
            }
            Action::DeleteBlueClaim { claim } => {
                if let Some(obj) = self.blue.claim(ns, claim).await? {
                    keep = Some(Keep::of("pvc", ns, claim, &obj));
                }
                Request::Kube(request::delete_claim(ns, claim))
            }
            Action::DeleteBlueVolume { pv } => {
                if let Some(obj) = self.blue.volume(pv).await? {
                    keep = Some(Keep::of("pv", "", pv, &obj));
                }
                Request::Kube(request::delete_volume(pv))
            }
            Action::RestoreGreenVolume { pv, policy } => {
                Request::Kube(request::set_reclaim(pv, None, *policy, None))
            }
            Action::RetagVolumes {
                volumes,
                add,
                remove,
                ..
            } => Request::Tags(Retag {
                create: (!add.is_empty()).then(|| NewTags {
                    resources: volumes.clone(),
                    tags: add.clone(),
                }),
                delete: (!remove.is_empty()).then(|| RemovedTags {
                    resources: volumes.clone(),
                    keys: remove.clone(),
                }),
            }),
        };
        let context = match &request {
            Request::Ec2(_) | Request::Tags(_) => "ec2".to_string(),
            Request::Kube(_) => self.cluster(action).context.clone(),
        };
        Ok(Prepared {
            context,
            request,
            keep,
        })
    }

    /// Sends a prepared action and returns what the cluster or EC2 answered, in the
    /// machine's terms.
    pub async fn send(&self, action: &Action, p: &Prepared) -> anyhow::Result<Answer> {
        let m = match &p.request {
            Request::Ec2(s) => {
                let made =
                    self.aws.create_snapshot(s).await.with_context(|| {
                        format!("failed to start a snapshot of {}", s.volume_id)
                    })?;
                return Ok(Answer::Snapshot {
                    volume_id: s.volume_id.clone(),
                    id: made.id,
                });
            }
            Request::Tags(r) => {
                // One round trip: the two calls touch different keys.
                let (volumes, add, remove) = match action {
                    Action::RetagVolumes {
                        volumes,
                        add,
                        remove,
                        ..
                    } => (volumes.clone(), add.clone(), remove.clone()),
                    _ => bail!("a tag request for {}", action.describe()),
                };
                futures::try_join!(
                    async {
                        match &r.create {
                            Some(c) => self.aws.send_tags(c).await.with_context(|| {
                                format!("failed to tag {}", c.resources.join(", "))
                            }),
                            None => Ok(()),
                        }
                    },
                    async {
                        match &r.delete {
                            Some(d) => self.aws.remove_tags(d).await.with_context(|| {
                                format!("failed to remove tags from {}", d.resources.join(", "))
                            }),
                            None => Ok(()),
                        }
                    },
                )?;
                return Ok(Answer::Retagged {
                    volumes,
                    add,
                    remove,
                });
            }
            Request::Kube(m) => m,
        };
        let Some(obj) = self.cluster(action).send(m).await? else {
            return Ok(Answer::Unknown);
        };
        let decode = |what: &str, e: serde_json::Error| {
            anyhow::anyhow!(
                "{} answered {} with a {what} baton cannot read: {e}",
                p.context,
                m.path
            )
        };
        Ok(match action {
            Action::CreateGreenClaim { .. } => Answer::Claim(convert::pvc(
                &serde_json::from_value::<PersistentVolumeClaim>(obj)
                    .map_err(|e| decode("claim", e))?,
            )),
            Action::RetainBlueVolume { .. }
            | Action::CreateGreenVolume { .. }
            | Action::RetainGreenVolume { .. }
            | Action::RestoreBlueVolume { .. }
            | Action::RestoreGreenVolume { .. } => Answer::Volume(convert::pv(
                &serde_json::from_value::<PersistentVolume>(obj).map_err(|e| decode("PV", e))?,
            )),
            Action::RetainBlueClaims { .. } | Action::RestoreBlueClaims { .. } => {
                Answer::StatefulSet(convert::statefulset(
                    &serde_json::from_value::<StatefulSet>(obj)
                        .map_err(|e| decode("StatefulSet", e))?,
                ))
            }
            Action::PauseFence { fence } | Action::ResumeFence { fence, .. } => Answer::Fence {
                key: fence.key(),
                seen: FenceSeen::of(fence.kind, &obj),
            },
            Action::ScaleBlue { .. } | Action::ScaleGreen { .. } => {
                match obj["spec"]["replicas"].as_i64() {
                    Some(r) => Answer::Replicas(r as i32),
                    None => Answer::Unknown,
                }
            }
            _ => Answer::Unknown,
        })
    }

    /// Waits for a condition — the one `baton_core` defines for it — and returns what it
    /// saw when the condition held.
    pub async fn wait(&self, app: &AppPlan, w: Wait) -> anyhow::Result<Seen> {
        let (claims, pvs, ids) = names(app);
        let (ns, name, t) = (&app.namespace, &app.name, self.wait_timeout);
        let holds = |s: &baton_core::machine::Side| w.holds_on(app, &self.migration, s);
        Ok(match w.watched() {
            Watched::Blue => Seen::Blue(
                self.blue
                    .wait_for((ns, app.kind, name), &claims, &pvs, t, holds)
                    .await?,
            ),
            Watched::Green => Seen::Green(
                self.green
                    .wait_for((ns, app.kind, name), &claims, &pvs, t, holds)
                    .await?,
            ),
            Watched::Ec2 => {
                // EC2 has no watch: short polls, backing off to 1 s, until the deadline.
                let look = || async {
                    let v = describe(&self.aws, &ids).await?;
                    Ok(w.holds_on_ec2(app, &v).then_some(v))
                };
                let polled =
                    poll_until(look, Duration::from_millis(100), Duration::from_secs(1), t);
                match polled.await? {
                    Some(v) => Seen::Ec2(v),
                    None => bail!(
                        "EC2 did not report the volumes of {ns}/{name} available within {t:?}"
                    ),
                }
            }
        })
    }
}

/// The request an action is made of.
#[derive(Debug, Clone)]
pub enum Request {
    /// A Kubernetes write.
    Kube(Mutation),
    /// An EC2 call.
    Ec2(NewSnapshot),
    /// A volumes' tag change: CreateTags and/or DeleteTags, sent together.
    Tags(Retag),
}

/// The two calls of a tag change (at least one is there).
#[derive(Debug, Clone)]
pub struct Retag {
    /// The tags set.
    pub create: Option<NewTags>,
    /// The keys removed.
    pub delete: Option<RemovedTags>,
}

/// One of blue's objects' manifest, kept in the state dir before baton changes or
/// deletes it (or creates green's copy of it).
#[derive(Debug, Clone)]
pub struct Keep {
    kind: &'static str,
    namespace: String,
    name: String,
    object: Value,
}

impl Keep {
    fn of(kind: &'static str, namespace: &str, name: &str, obj: &impl serde::Serialize) -> Self {
        Self {
            kind,
            namespace: namespace.to_string(),
            name: name.to_string(),
            object: serde_json::to_value(obj).unwrap_or(Value::Null),
        }
    }
}

/// An action made ready to send: its request, and the manifest to keep first.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The context it goes to (`ec2` for EC2).
    pub context: String,
    /// What is sent.
    pub request: Request,
    /// Kept in the state dir before the request is sent (blue's, before it changes).
    pub keep: Option<Keep>,
}

impl fmt::Display for Prepared {
    /// `CONTEXT METHOD path body`: one line per request, as `--dry-run` prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.request {
            Request::Kube(m) => write!(f, "{:<6} {m}", self.context),
            // `ec2    CreateSnapshot {…}`: the value names its service.
            Request::Ec2(s) => write!(f, "{s}"),
            // One line per call, CreateTags first.
            Request::Tags(r) => {
                let lines: Vec<String> = r
                    .create
                    .iter()
                    .map(ToString::to_string)
                    .chain(r.delete.iter().map(ToString::to_string))
                    .collect();
                f.write_str(&lines.join("\n"))
            }
        }
    }
}

/// The real world, for the runner: the engine's clusters and AWS, and the state dir that
/// keeps each object's manifest before baton first changes it.
#[derive(Debug, Clone, Copy)]
pub struct Live<'a> {
    /// Clusters and AWS.
    pub engine: &'a Engine,
    /// Where manifests are kept.
    pub state: &'a StateDir,
}

impl Hands for Live<'_> {
    fn watch(&self, apps: &[AppPlan]) {
        self.engine.watch(apps);
    }

    fn new_migration(&self) -> bool {
        self.engine.new_migration
    }

    async fn observe(&self, app: &AppPlan) -> anyhow::Result<Observed> {
        self.engine.observe(app).await
    }

    async fn snapshots(&self, app: &AppPlan) -> anyhow::Result<BTreeMap<String, String>> {
        self.engine.snapshots(app).await
    }

    async fn execute(&self, app: &AppPlan, action: &Action) -> anyhow::Result<Answer> {
        let p = self.engine.prepare(app, action).await?;
        if let Some(k) = &p.keep {
            self.state.save_manifest(
                &self.engine.blue.context,
                k.kind,
                &k.namespace,
                &k.name,
                &k.object,
            )?;
        }
        self.engine.send(action, &p).await
    }

    async fn wait(&self, app: &AppPlan, wait: Wait) -> anyhow::Result<Seen> {
        self.engine.wait(app, wait).await
    }
}
