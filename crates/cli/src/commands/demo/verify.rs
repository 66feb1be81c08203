//! The demo's proof that the handover happened as promised, read from the world (EC2, the
//! ALB, both clusters) and the journals, never from what the demo believes it did: the
//! data fingerprint of every moved volume, and at the end DESIGN.md's invariants plus
//! "blue serves nothing and holds no volume".

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context;
use baton_aws::{Aws, ForwardTarget};
use baton_core::journal::Summary;
use baton_core::machine::AppPhase;
use baton_core::plan::Plan;
use baton_core::traffic::machine::Outcome;
use baton_core::world::WorkloadKind;
use baton_sim::controllers::{FINGERPRINT_TAG, FINGERPRINT_WRITER_TAG};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use kube::api::{Api, ListParams};

use crate::commands::report::record::{Fingerprint, Invariant, VolumeRecord};

/// The fingerprints EC2 holds for these volumes now, by volume id.
pub async fn fingerprints(
    aws: &Aws,
    ids: &[String],
) -> anyhow::Result<BTreeMap<String, Fingerprint>> {
    let volumes = aws
        .describe_volumes_by_id(ids)
        .await
        .context("failed to read the volumes' fingerprints")?;
    Ok(volumes
        .into_iter()
        .filter_map(|v| {
            let value = v.tags.get(FINGERPRINT_TAG)?.parse().ok()?;
            let (writer, from) = v.tags.get(FINGERPRINT_WRITER_TAG)?.split_once(" from ")?;
            Some((
                v.id,
                Fingerprint {
                    writer: writer.to_string(),
                    from: from.parse().ok()?,
                    value,
                },
            ))
        })
        .collect())
}

/// Each volume's ownership tags (`key=value`), read on EC2.
pub async fn ownership(aws: &Aws, ids: &[String]) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let volumes = aws
        .describe_volumes_by_id(ids)
        .await
        .context("failed to read the volumes' tags")?;
    Ok(volumes
        .into_iter()
        .map(|v| {
            let tags: baton_core::world::Tags = v.tags.into_iter().collect();
            (v.id, baton_core::handover::ownership(&tags))
        })
        .collect())
}

/// The volumes of a plan, with their fingerprints before the move.
pub fn volumes_of(plan: &Plan, before: &BTreeMap<String, Fingerprint>) -> Vec<VolumeRecord> {
    plan.apps
        .iter()
        .flat_map(|a| {
            a.volumes.iter().map(move |v| VolumeRecord {
                app: a.key(),
                claim: v.claim.clone(),
                volume_id: v.volume_id.clone(),
                before: before.get(&v.volume_id).cloned(),
                after: None,
                owner_before: Vec::new(),
                owner_after: Vec::new(),
                standalone: a.kind == WorkloadKind::Claim,
            })
        })
        .collect()
}

/// Nothing lost, nothing forked: green wrote last, started from at least the value blue
/// had reached when the move began, and has counted on since.
pub fn data_continued(v: &VolumeRecord) -> Result<String, String> {
    if v.standalone {
        // Nothing mounts it: no pod of either side may have written it.
        return if v.before == v.after {
            Ok(format!(
                "{}: a claim nothing mounts, as blue left it",
                v.volume_id
            ))
        } else {
            Err(format!(
                "{}: a claim nothing should mount was written during the move ({:?} → {:?})",
                v.volume_id, v.before, v.after
            ))
        };
    }
    let (Some(b), Some(a)) = (&v.before, &v.after) else {
        return Err(format!("{}: no fingerprint read", v.volume_id));
    };
    if b.cluster() != "blue" {
        return Err(format!(
            "{}: before the move {} wrote it, not blue",
            v.volume_id, b.writer
        ));
    }
    if a.cluster() != "green" {
        return Err(format!(
            "{}: after the move {} wrote it last, not green",
            v.volume_id, a.writer
        ));
    }
    if a.from < b.value {
        return Err(format!(
            "{}: green started from {} but blue had reached {} (data lost)",
            v.volume_id, a.from, b.value
        ));
    }
    if a.value < a.from {
        return Err(format!(
            "{}: green's value {} is below where it started, {}",
            v.volume_id, a.value, a.from
        ));
    }
    Ok(format!(
        "{}: blue {} → green from {} now {}",
        v.volume_id, b.value, a.from, a.value
    ))
}

/// What the end state is checked against.
pub struct World<'a> {
    /// EC2 & co.
    pub aws: &'a Aws,
    /// Blue's API.
    pub blue: &'a kube::Client,
    /// Green's API.
    pub green: &'a kube::Client,
    /// The migration's plan.
    pub plan: &'a Plan,
    /// The migration's journal, folded.
    pub migration: &'a Summary,
    /// The traffic shift's outcome and the ALB, when the scenario has one.
    pub traffic: Option<Traffic<'a>>,
    /// The moved volumes with both fingerprints.
    pub volumes: &'a [VolumeRecord],
}

/// The shift to check.
pub struct Traffic<'a> {
    /// Its outcome, from its journal.
    pub outcome: Option<Outcome>,
    /// The listener.
    pub listener: &'a str,
    /// Blue's group.
    pub blue_tg: &'a str,
    /// Green's group.
    pub green_tg: &'a str,
}

/// Checks every invariant; each is reported, held or not.
pub async fn invariants(w: &World<'_>) -> anyhow::Result<Vec<Invariant>> {
    let mut out = Vec::new();
    let mut check = |name: &str, r: Result<String, String>| {
        let (held, detail) = match r {
            Ok(d) => (true, d),
            Err(d) => (false, d),
        };
        out.push(Invariant {
            name: name.to_string(),
            held,
            detail,
        });
    };
    let ids: Vec<String> = w.volumes.iter().map(|v| v.volume_id.clone()).collect();
    let ec2 = w
        .aws
        .describe_volumes_by_id(&ids)
        .await
        .context("failed to read the moved volumes")?;

    let found: BTreeSet<&str> = ec2.iter().map(|v| v.id.as_str()).collect();
    let missing: Vec<&str> = ids
        .iter()
        .map(String::as_str)
        .filter(|id| !found.contains(id))
        .collect();
    check(
        "no moved EBS volume was deleted",
        if missing.is_empty() {
            Ok(format!("all {} volumes exist", ids.len()))
        } else {
            Err(format!("missing: {}", missing.join(", ")))
        },
    );

    let phases: Vec<String> = w
        .plan
        .apps
        .iter()
        .filter_map(|a| {
            let phase = w.migration.apps.get(&a.key()).and_then(|s| s.phase);
            (phase != Some(AppPhase::Committed)).then(|| format!("{} is {phase:?}", a.key()))
        })
        .collect();
    check(
        "every app was moved and committed",
        if phases.is_empty() {
            Ok(format!("{} apps committed", w.plan.apps.len()))
        } else {
            Err(phases.join("; "))
        },
    );

    let data: Vec<Result<String, String>> = w.volumes.iter().map(data_continued).collect();
    let broken: Vec<String> = data.iter().filter_map(|r| r.clone().err()).collect();
    check(
        "green continues every volume's data from blue's (nothing lost, nothing forked)",
        if broken.is_empty() {
            Ok(format!("{} volumes", data.len()))
        } else {
            Err(broken.join("; "))
        },
    );

    let green_pvs = Api::<PersistentVolume>::all(w.green.clone())
        .list(&ListParams::default())
        .await
        .context("failed to list green's PVs")?;
    let mut unreserved = Vec::new();
    let mut green_holds = BTreeSet::new();
    for pv in &green_pvs.items {
        let Some(id) = volume_id(pv) else { continue };
        if !ids.contains(&id) {
            continue;
        }
        green_holds.insert(id.clone());
        let spec = pv.spec.as_ref();
        let uid = spec
            .and_then(|s| s.claim_ref.as_ref())
            .and_then(|c| c.uid.as_deref());
        let bound = pv.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
        if uid.is_none_or(str::is_empty) || !bound {
            unreserved.push(format!(
                "{} (claimRef.uid {uid:?}, {})",
                pv.metadata.name.as_deref().unwrap_or_default(),
                if bound { "Bound" } else { "not Bound" }
            ));
        }
    }
    let not_in_green: Vec<&str> = ids
        .iter()
        .map(String::as_str)
        .filter(|id| !green_holds.contains(*id))
        .collect();
    check(
        "green holds every volume, each PV reserved for its claim by uid and Bound",
        if unreserved.is_empty() && not_in_green.is_empty() {
            Ok(format!("{} PVs", green_holds.len()))
        } else {
            Err(format!(
                "not in green: [{}]; not reserved or not Bound: [{}]",
                not_in_green.join(", "),
                unreserved.join(", ")
            ))
        },
    );

    check(
        "blue holds no volume",
        blue_holds_nothing(w, &ids, &ec2).await?,
    );
    check("blue's moved apps run no pod", blue_runs_nothing(w).await?);

    if let Some(t) = &w.traffic {
        let forward = w
            .aws
            .forward(&ForwardTarget::ListenerDefault(t.listener.to_string()))
            .await
            .context("failed to read the listener")?;
        let weight = |arn: &str| {
            forward
                .target_groups
                .iter()
                .find(|g| g.arn == arn)
                .map_or(0, |g| g.weight)
        };
        let (blue, green) = (weight(t.blue_tg), weight(t.green_tg));
        check(
            "blue serves nothing: the ALB sends every request to green",
            match (&t.outcome, blue, green) {
                (Some(Outcome::Completed), 0, g) if g > 0 => Ok(format!(
                    "shift completed; weights blue {blue}, green {green}"
                )),
                (outcome, _, _) => Err(format!(
                    "shift {outcome:?}; weights blue {blue}, green {green}"
                )),
            },
        );
    }
    Ok(out)
}

/// No claim or PV in blue names a moved volume, and EC2 attaches none to blue's nodes.
async fn blue_holds_nothing(
    w: &World<'_>,
    ids: &[String],
    ec2: &[baton_aws::Volume],
) -> anyhow::Result<Result<String, String>> {
    let pvs = Api::<PersistentVolume>::all(w.blue.clone())
        .list(&ListParams::default())
        .await
        .context("failed to list blue's PVs")?;
    let mut held: Vec<String> = pvs
        .items
        .iter()
        .filter(|pv| volume_id(pv).is_some_and(|id| ids.contains(&id)))
        .map(|pv| format!("PV {}", pv.metadata.name.as_deref().unwrap_or_default()))
        .collect();
    let claims: BTreeSet<(String, String)> = w
        .plan
        .apps
        .iter()
        .flat_map(|a| {
            a.volumes
                .iter()
                .map(|v| (a.namespace.clone(), v.claim.clone()))
        })
        .collect();
    for ns in claims.iter().map(|(ns, _)| ns).collect::<BTreeSet<_>>() {
        let list = Api::<PersistentVolumeClaim>::namespaced(w.blue.clone(), ns)
            .list(&ListParams::default())
            .await
            .with_context(|| format!("failed to list blue's claims in {ns}"))?;
        held.extend(
            list.items
                .iter()
                .filter_map(|c| c.metadata.name.clone())
                .filter(|n| claims.contains(&(ns.clone(), n.clone())))
                .map(|n| format!("claim {ns}/{n}")),
        );
    }
    let blue_nodes: BTreeSet<String> = Api::<Node>::all(w.blue.clone())
        .list(&ListParams::default())
        .await
        .context("failed to list blue's nodes")?
        .items
        .iter()
        .filter_map(|n| n.spec.as_ref()?.provider_id.as_deref())
        .filter_map(|p| p.rsplit('/').next())
        .map(String::from)
        .collect();
    held.extend(ec2.iter().flat_map(|v| {
        v.attachments
            .iter()
            .filter(|a| blue_nodes.contains(&a.instance_id))
            .map(|a| format!("{} attached to blue's {}", v.id, a.instance_id))
    }));
    Ok(if held.is_empty() {
        Ok(format!(
            "no claim, PV or attachment in blue for the {} volumes",
            ids.len()
        ))
    } else {
        Err(held.join(", "))
    })
}

/// Whether a pod is one of an app's.
type PodOf<'a> = dyn Fn(&Pod) -> bool + 'a;

/// Each moved workload is at 0 in blue and none of its pods is left (a StatefulSet's by
/// ordinal name, a Deployment's by its selector); no pod mounts a claim that moved alone.
async fn blue_runs_nothing(w: &World<'_>) -> anyhow::Result<Result<String, String>> {
    let mut running = Vec::new();
    // Blue's pods, one list per namespace of the plan.
    let mut pods_in: BTreeMap<&str, Vec<Pod>> = BTreeMap::new();
    for ns in w.plan.apps.iter().map(|a| a.namespace.as_str()) {
        if !pods_in.contains_key(ns) {
            let pods = Api::<Pod>::namespaced(w.blue.clone(), ns)
                .list(&ListParams::default())
                .await
                .with_context(|| format!("failed to list blue's pods in {ns}"))?;
            pods_in.insert(ns, pods.items);
        }
    }
    for a in &w.plan.apps {
        let pods = &pods_in[a.namespace.as_str()];
        let claims: Vec<&str> = a.volumes.iter().map(|v| v.claim.as_str()).collect();
        let (replicas, pod_of): (Option<i32>, Box<PodOf<'_>>) = match a.kind {
            WorkloadKind::StatefulSet => {
                let sts = Api::<StatefulSet>::namespaced(w.blue.clone(), &a.namespace)
                    .get_opt(&a.name)
                    .await
                    .with_context(|| format!("failed to read blue's {}", a.key()))?;
                let name = a.name.clone();
                (
                    sts.and_then(|s| s.spec).and_then(|s| s.replicas),
                    Box::new(move |p: &Pod| {
                        p.metadata
                            .name
                            .as_deref()
                            .is_some_and(|n| baton_kube::convert::is_ordinal_pod(&name, n))
                    }),
                )
            }
            WorkloadKind::Deployment => {
                let d = Api::<Deployment>::namespaced(w.blue.clone(), &a.namespace)
                    .get_opt(&a.name)
                    .await
                    .with_context(|| format!("failed to read blue's {}", a.key()))?;
                let replicas = d
                    .as_ref()
                    .and_then(|d| d.spec.as_ref())
                    .and_then(|s| s.replicas);
                (
                    replicas,
                    Box::new(move |p: &Pod| {
                        d.as_ref()
                            .and_then(|d| d.spec.as_ref())
                            .is_some_and(|s| baton_kube::convert::selects_pod(&s.selector, p))
                    }),
                )
            }
            // No workload: any pod mounting the claim.
            WorkloadKind::Claim => (
                None,
                Box::new(|p: &Pod| baton_kube::convert::mounted(p).any(|c| claims.contains(&c))),
            ),
        };
        if replicas.unwrap_or(0) != 0 {
            running.push(format!("{} {} at {replicas:?} replicas", a.kind, a.key()));
        }
        running.extend(
            pods.iter()
                .filter(|p| pod_of(p))
                .filter_map(|p| p.metadata.name.clone())
                .map(|n| format!("pod {}/{n}", a.namespace)),
        );
    }
    Ok(if running.is_empty() {
        Ok(format!(
            "{} at 0 (or, for a claim, unmounted), no pods",
            crate::commands::show::plural(w.plan.apps.len(), "app")
        ))
    } else {
        Err(running.join(", "))
    })
}

/// The EBS volume id of a PV (CSI handle or in-tree `aws://zone/vol-…`).
fn volume_id(pv: &PersistentVolume) -> Option<String> {
    let spec = pv.spec.as_ref()?;
    let raw = spec
        .csi
        .as_ref()
        .map(|c| c.volume_handle.clone())
        .or_else(|| {
            spec.aws_elastic_block_store
                .as_ref()
                .map(|e| e.volume_id.clone())
        })?;
    Some(baton_kube::convert::parse_in_tree_id(&raw).1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(writer: &str, from: u64, value: u64) -> Option<Fingerprint> {
        Some(Fingerprint {
            writer: writer.into(),
            from,
            value,
        })
    }

    fn vol(before: Option<Fingerprint>, after: Option<Fingerprint>) -> VolumeRecord {
        VolumeRecord {
            app: "orders/orders-db".into(),
            claim: "data-orders-db-0".into(),
            volume_id: "vol-1".into(),
            before,
            after,
            owner_before: Vec::new(),
            owner_after: Vec::new(),
            standalone: false,
        }
    }

    #[test]
    fn a_standalone_claims_data_continues_only_when_nothing_wrote_it() {
        let untouched = VolumeRecord {
            standalone: true,
            ..vol(None, None)
        };
        assert!(data_continued(&untouched).is_ok());
        let written = VolumeRecord {
            standalone: true,
            ..vol(None, fp("green/archive/reader", 0, 3))
        };
        assert!(data_continued(&written).unwrap_err().contains("written"));
    }

    #[test]
    fn data_continues_only_when_green_starts_at_or_after_blues_value() {
        let ok = vol(
            fp("blue/orders/orders-db-0", 0, 40),
            fp("green/orders/orders-db-0", 52, 70),
        );
        assert!(data_continued(&ok).is_ok());
        let lost = vol(
            fp("blue/orders/orders-db-0", 0, 40),
            fp("green/orders/orders-db-0", 10, 70),
        );
        assert!(data_continued(&lost).unwrap_err().contains("data lost"));
        let blue_last = vol(
            fp("blue/orders/orders-db-0", 0, 40),
            fp("blue/orders/orders-db-0", 0, 90),
        );
        assert!(
            data_continued(&blue_last)
                .unwrap_err()
                .contains("not green")
        );
        assert!(data_continued(&vol(None, None)).is_err());
    }
}
