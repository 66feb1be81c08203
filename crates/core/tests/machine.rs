//! The phase machine walked on a simulated world: the order of DESIGN.md §2, resumability
//! from every intermediate state, rollback from every state before commit, and commit.

mod common;

use baton_core::machine::{
    Action, AppPhase, Decision, Mode, Observed, Wait, next, trusts_cached_view,
};
use baton_core::plan::AppPlan;
use baton_core::simulate;
use baton_core::world::{ReclaimPolicy, RetentionPolicy};

/// Blue runs `replicas` pods of orders/db with one claim each; green has the set at 0.
fn world(replicas: i32, reclaim: ReclaimPolicy, retention: RetentionPolicy) -> (AppPlan, Observed) {
    simulate::example("orders", "db", replicas, reclaim, retention)
}

/// Walks the machine to the end, checking the invariants after every step; returns the
/// decisions and every intermediate world.
fn walk(mode: Mode, app: &AppPlan, mut obs: Observed) -> (Vec<Decision>, Vec<Observed>) {
    let mut decisions = Vec::new();
    let mut worlds = vec![obs.clone()];
    for _ in 0..200 {
        let d = next(mode, app, &obs);
        let end = matches!(d, Decision::Done | Decision::Blocked { .. });
        simulate::apply(app, &mut obs, &d);
        invariants(mode, app, &obs);
        decisions.push(d);
        worlds.push(obs.clone());
        if end {
            return (decisions, worlds);
        }
    }
    panic!("the machine did not end: {decisions:#?}");
}

/// DESIGN.md §2's invariants, as far as the simulated world shows them.
fn invariants(mode: Mode, app: &AppPlan, obs: &Observed) {
    for v in &app.volumes {
        // 2: a green PV for a migrated volume is always reserved for a claim uid.
        if let Some(pv) = obs.green.volumes.get(&v.pv) {
            assert!(
                pv.claim_ref.as_ref().is_some_and(|r| !r.uid.is_empty()),
                "green PV {} bindable by any claim",
                v.pv
            );
            if mode == Mode::Migrate {
                assert_eq!(
                    pv.reclaim_policy,
                    ReclaimPolicy::Retain,
                    "green PV not Retain"
                );
            }
        }
        // 1/4: while both sides exist, at least one holds a claim for the data.
        assert!(
            obs.blue.claims.contains_key(&v.claim) || obs.green.claims.contains_key(&v.claim),
            "{} reachable from neither side",
            v.claim
        );
    }
    // The volumes' ownership tags are blue's or green's, never a mix neither driver can
    // use, and each side holds a volume only while its driver can use the tags.
    if let Some(change) = &app.handover {
        for v in &app.volumes {
            let tags = &obs.ec2[&v.volume_id].tags;
            let blue_s = change.restore(&v.volume_id, tags) == (Default::default(), vec![]);
            let green_s = change.made_on(tags);
            assert!(
                blue_s || green_s,
                "{} tagged for neither: {tags:?}",
                v.volume_id
            );
            if !blue_s {
                assert!(
                    obs.blue.pods == 0 && obs.blue.attachments == 0,
                    "blue holds {} re-tagged for green",
                    v.volume_id
                );
            }
            if !green_s {
                assert!(
                    obs.green.pods == 0 && obs.green.attachments == 0,
                    "green holds {} still tagged for blue",
                    v.volume_id
                );
            }
        }
    }
    // 3: never both sides running pods on the volumes.
    assert!(
        obs.blue.pods == 0 || obs.green.pods == 0,
        "blue and green both run pods"
    );
    // Retain before the first scale-down.
    if obs
        .blue
        .sts
        .as_ref()
        .is_some_and(|s| s.replicas < app.replicas)
    {
        for v in &app.volumes {
            if let Some(pv) = obs.blue.volumes.get(&v.pv) {
                assert_eq!(
                    pv.reclaim_policy,
                    ReclaimPolicy::Retain,
                    "scaled down before Retain"
                );
            }
        }
        if let Some(s) = &obs.blue.sts {
            assert!(
                !s.retention.deletes_claims(),
                "scaled down with retention Delete"
            );
        }
    }
}

fn actions(ds: &[Decision]) -> Vec<String> {
    ds.iter()
        .map(|d| match d {
            Decision::Act(a) => a.describe(),
            Decision::Wait { wait } => format!("wait for {}", wait.describe()),
            Decision::Done => "done".into(),
            Decision::Blocked { reason } => format!("blocked: {reason}"),
        })
        .collect()
}

#[test]
fn migrate_follows_the_design_order() {
    let (app, obs) = world(
        2,
        ReclaimPolicy::Delete,
        RetentionPolicy {
            when_scaled: "Delete".into(),
            when_deleted: "Retain".into(),
        },
    );
    let (ds, _) = walk(Mode::Migrate, &app, obs);
    assert_eq!(
        actions(&ds),
        [
            "set PV pvc-0 to Retain (was Delete)",
            "set PV pvc-1 to Retain (was Delete)",
            "set claim retention to Retain (was whenScaled Delete, whenDeleted Retain)",
            "scale blue to 0",
            "wait for blue's pods to stop",
            "wait for blue's volume attachments to go",
            "wait for EC2 to report the volumes available",
            "start snapshot of vol-0 (data-db-0)",
            "start snapshot of vol-1 (data-db-1)",
            "create claim data-db-0",
            "create claim data-db-1",
            "create PV pvc-0 for data-db-0 (uid green-uid-data-db-0), Retain",
            "create PV pvc-1 for data-db-1 (uid green-uid-data-db-1), Retain",
            "wait for green's claims to bind",
            "scale green to 2",
            "wait for green's pods to be Ready",
            "done",
        ]
    );
}

#[test]
fn resuming_from_any_intermediate_world_converges_to_the_same_end() {
    let (app, obs) = world(2, ReclaimPolicy::Delete, RetentionPolicy::default());
    let (_, worlds) = walk(Mode::Migrate, &app, obs);
    let end = worlds.last().unwrap().clone();
    for (k, w) in worlds.iter().enumerate() {
        // A crash after step k: a fresh run observes w and goes on.
        let (ds, ws) = walk(Mode::Migrate, &app, w.clone());
        assert_eq!(ds.last(), Some(&Decision::Done), "from step {k}");
        assert_eq!(ws.last().unwrap(), &end, "from step {k}");
        // Repeating the step already made is harmless: the world shows its effect.
        let again = next(Mode::Migrate, &app, w);
        let mut w2 = w.clone();
        simulate::apply(&app, &mut w2, &again);
        let mut w3 = w2.clone();
        simulate::apply(&app, &mut w3, &again);
        assert_eq!(w2, w3, "step {k} is not idempotent: {again:?}");
    }
}

#[test]
fn rollback_from_every_state_before_commit_returns_blue_with_its_data() {
    let (app, obs) = world(
        2,
        ReclaimPolicy::Delete,
        RetentionPolicy {
            when_scaled: "Delete".into(),
            when_deleted: "Delete".into(),
        },
    );
    let original = obs.clone();
    let (_, worlds) = walk(Mode::Migrate, &app, obs);
    for (k, w) in worlds.iter().enumerate() {
        let (ds, ws) = walk(Mode::Rollback, &app, w.clone());
        assert_eq!(
            ds.last(),
            Some(&Decision::Done),
            "from step {k}: {:#?}",
            actions(&ds)
        );
        let end = ws.last().unwrap();
        assert!(
            end.green.claims.is_empty() && end.green.volumes.is_empty(),
            "from step {k}"
        );
        assert_eq!(
            end.blue.sts.as_ref().unwrap().ready_replicas,
            2,
            "from step {k}"
        );
        assert_eq!(
            end.blue.sts.as_ref().unwrap().retention,
            original.blue.sts.as_ref().unwrap().retention
        );
        for v in &app.volumes {
            assert_eq!(
                end.blue.volumes[&v.pv].reclaim_policy,
                ReclaimPolicy::Delete,
                "restored"
            );
            assert_eq!(
                end.blue.claims[&v.claim], original.blue.claims[&v.claim],
                "blue claim untouched"
            );
        }
    }
}

#[test]
fn rollback_keeps_green_pv_retain_before_deleting_its_claim() {
    let (app, obs) = world(1, ReclaimPolicy::Retain, RetentionPolicy::default());
    let (_, worlds) = walk(Mode::Migrate, &app, obs);
    let mut w = worlds.last().unwrap().clone();
    w.green.volumes.get_mut("pvc-0").unwrap().reclaim_policy = ReclaimPolicy::Delete;
    let (ds, _) = walk(Mode::Rollback, &app, w);
    let a = actions(&ds);
    let retain = a
        .iter()
        .position(|s| s == "set green PV pvc-0 to Retain")
        .unwrap();
    let delete = a
        .iter()
        .position(|s| s == "delete green claim data-db-0")
        .unwrap();
    assert!(retain < delete, "{a:#?}");
}

#[test]
fn commit_retires_blue_and_optionally_restores_the_policy() {
    let (app, obs) = world(1, ReclaimPolicy::Delete, RetentionPolicy::default());
    let (_, worlds) = walk(Mode::Migrate, &app, obs.clone());
    let migrated = worlds.last().unwrap().clone();
    let (ds, ws) = walk(
        Mode::Commit {
            restore_reclaim_policy: true,
        },
        &app,
        migrated,
    );
    assert_eq!(
        actions(&ds),
        [
            "delete blue claim data-db-0",
            "delete blue PV pvc-0 (volume kept)",
            "restore green PV pvc-0 to Delete",
            "done"
        ]
    );
    assert!(ws.last().unwrap().green.claims.contains_key("data-db-0"));

    // Not migrated yet: commit refuses and changes nothing.
    let (ds, ws) = walk(
        Mode::Commit {
            restore_reclaim_policy: false,
        },
        &app,
        obs.clone(),
    );
    assert!(matches!(ds[0], Decision::Blocked { .. }), "{ds:?}");
    assert_eq!(ws.last().unwrap(), &obs);
}

#[test]
fn a_foreign_green_claim_or_pv_blocks_before_blue_is_touched() {
    let (app, mut obs) = world(1, ReclaimPolicy::Retain, RetentionPolicy::default());
    let mut foreign = obs.blue.claims["data-db-0"].clone();
    foreign.uid = "someone-else".into();
    foreign.volume_name = "pvc-fresh".into();
    obs.green.claims.insert("data-db-0".into(), foreign);
    let d = next(Mode::Migrate, &app, &obs);
    assert!(
        matches!(&d, Decision::Blocked { reason } if reason.contains("data-db-0")),
        "{d:?}"
    );

    // A green PV of the planned name reserved for another claim uid blocks too.
    let (app, obs) = world(1, ReclaimPolicy::Retain, RetentionPolicy::default());
    let (_, worlds) = walk(Mode::Migrate, &app, obs);
    let mut w = worlds
        .into_iter()
        .find(|w| w.green.volumes.contains_key("pvc-0"))
        .unwrap();
    w.green
        .volumes
        .get_mut("pvc-0")
        .unwrap()
        .claim_ref
        .as_mut()
        .unwrap()
        .uid = "hijacker".into();
    w.green.claims.get_mut("data-db-0").unwrap().phase = "Pending".into();
    let d = next(Mode::Migrate, &app, &w);
    assert!(
        matches!(&d, Decision::Blocked { reason } if reason.contains("hijacker")),
        "{d:?}"
    );
}

#[test]
fn green_running_without_the_volumes_blocks() {
    let (app, mut obs) = world(1, ReclaimPolicy::Retain, RetentionPolicy::default());
    obs.green.sts.as_mut().unwrap().replicas = 1;
    let d = next(Mode::Migrate, &app, &obs);
    assert!(
        matches!(&d, Decision::Blocked { reason } if reason.contains("scale it to 0")),
        "{d:?}"
    );
}

#[test]
fn phases_follow_decisions() {
    let (app, obs) = world(1, ReclaimPolicy::Delete, RetentionPolicy::default());
    let (ds, _) = walk(Mode::Migrate, &app, obs);
    let phases: Vec<AppPhase> = ds.iter().map(|d| AppPhase::of(Mode::Migrate, d)).collect();
    assert_eq!(phases.first(), Some(&AppPhase::Preparing));
    assert_eq!(phases.last(), Some(&AppPhase::Migrated));
    let mut sorted = phases.clone();
    sorted.sort();
    assert_eq!(phases, sorted, "phases only move forward");
    assert!(ds.contains(&Decision::Wait {
        wait: Wait::GreenBound
    }));
    assert!(
        ds.iter()
            .any(|d| matches!(d, Decision::Act(Action::StartSnapshot { .. })))
    );
}

#[test]
fn only_a_migration_s_non_destructive_steps_are_taken_on_a_cached_view() {
    let (app, obs) = world(1, ReclaimPolicy::Delete, RetentionPolicy::default());
    let (ds, worlds) = walk(Mode::Migrate, &app, obs.clone());
    for d in &ds {
        assert!(trusts_cached_view(Mode::Migrate, d), "{d:?}");
    }
    let migrated = worlds.last().unwrap().clone();
    let (rollback, _) = walk(Mode::Rollback, &app, migrated.clone());
    let commit = Mode::Commit {
        restore_reclaim_policy: true,
    };
    let (retire, _) = walk(commit, &app, migrated);
    assert!(
        rollback
            .iter()
            .chain(&retire)
            .any(|d| matches!(d, Decision::Act(a) if a.deletes()))
    );
    for d in &rollback {
        assert!(!trusts_cached_view(Mode::Rollback, d), "{d:?}");
    }
    for d in &retire {
        assert!(!trusts_cached_view(commit, d), "{d:?}");
    }
    // A stop is confirmed on a fresh read; a deletion is never taken from a cache.
    let stop = Decision::Blocked { reason: "x".into() };
    assert!(!trusts_cached_view(Mode::Migrate, &stop));
    let delete = Decision::Act(Action::DeleteGreenClaim {
        claim: "data-db-0".into(),
    });
    assert!(!trusts_cached_view(Mode::Migrate, &delete));
}

/// Blue's app whose green driver runs under the cluster-scoped policy: the plan re-tags
/// `ebs.csi.aws.com/cluster-name` blue → green (and the example's volumes have it blue).
fn scoped_world(replicas: i32) -> (AppPlan, Observed) {
    use baton_core::handover::{Access, plan_change};
    let (mut app, mut obs) = world(replicas, ReclaimPolicy::Delete, RetentionPolicy::default());
    for e in obs.ec2.values_mut() {
        e.tags
            .insert("ebs.csi.aws.com/cluster-name".into(), "blue".into());
    }
    let green = Access {
        attach: vec![
            [(
                "ebs.csi.aws.com/cluster-name".to_string(),
                "green".to_string(),
            )]
            .into(),
        ],
        detach: vec![
            [(
                "ebs.csi.aws.com/cluster-name".to_string(),
                "green".to_string(),
            )]
            .into(),
        ],
        skipped: vec![],
    };
    let tags = obs
        .ec2
        .iter()
        .map(|(id, e)| (id.clone(), e.tags.clone()))
        .collect();
    app.handover = plan_change(&green, Some("blue"), None, &tags, "test").unwrap();
    assert!(app.handover.is_some());
    (app, obs)
}

#[test]
fn the_retag_is_made_once_blue_has_let_go_and_before_green_needs_its_driver() {
    let (app, obs) = scoped_world(2);
    let (ds, worlds) = walk(Mode::Migrate, &app, obs);
    let a = actions(&ds);
    let at = a
        .iter()
        .position(|s| s.starts_with("tag 2 volumes"))
        .expect("a re-tag");
    assert_eq!(a[at], "tag 2 volumes ebs.csi.aws.com/cluster-name=green");
    assert_eq!(a[at - 1], "wait for EC2 to report the volumes available");
    assert_eq!(a[at + 1], "start snapshot of vol-0 (data-db-0)");
    assert_eq!(
        a.iter().filter(|s| s.starts_with("tag ")).count(),
        1,
        "one call for all the app's volumes"
    );
    // No blue node held a volume when it was re-tagged.
    let before = &worlds[at];
    assert_eq!((before.blue.pods, before.blue.attachments), (0, 0));
    assert!(before.ec2.values().all(|e| e.state == "available"));
    let Decision::Act(Action::RetagVolumes { blue, .. }) = &ds[at] else {
        panic!()
    };
    assert_eq!(
        blue["vol-0"]["ebs.csi.aws.com/cluster-name"], "blue",
        "journaled with blue's"
    );
    let end = worlds.last().unwrap();
    assert!(
        end.ec2
            .values()
            .all(|e| e.tags["ebs.csi.aws.com/cluster-name"] == "green")
    );

    // Resumed from any world (a crash after any step): converges, never re-tags twice
    // once done, and the invariants hold on the way.
    for (k, w) in worlds.iter().enumerate() {
        let (ds2, ws2) = walk(Mode::Migrate, &app, w.clone());
        assert_eq!(ws2.last().unwrap(), end, "from step {k}");
        let retags = ds2
            .iter()
            .filter(|d| matches!(d, Decision::Act(Action::RetagVolumes { .. })))
            .count();
        assert_eq!(retags, usize::from(k <= at), "from step {k}");
    }

    // Commit keeps green's tags.
    let commit = Mode::Commit {
        restore_reclaim_policy: false,
    };
    let (ds, ws) = walk(commit, &app, end.clone());
    assert!(
        !ds.iter()
            .any(|d| matches!(d, Decision::Act(Action::RetagVolumes { .. })))
    );
    assert!(
        ws.last()
            .unwrap()
            .ec2
            .values()
            .all(|e| e.tags["ebs.csi.aws.com/cluster-name"] == "green")
    );
}

#[test]
fn rollback_puts_blue_s_tags_back_after_green_let_go_and_before_blue_starts() {
    let (app, obs) = scoped_world(2);
    let original: Vec<_> = obs.ec2.values().map(|e| e.tags.clone()).collect();
    let (_, worlds) = walk(Mode::Migrate, &app, obs);
    for (k, w) in worlds.iter().enumerate() {
        let (ds, ws) = walk(Mode::Rollback, &app, w.clone());
        let end = ws.last().unwrap();
        let tags: Vec<_> = end.ec2.values().map(|e| e.tags.clone()).collect();
        assert_eq!(tags, original, "from step {k}");
        let a = actions(&ds);
        if let Some(at) = a.iter().position(|s| s.starts_with("tag ")) {
            assert_eq!(
                a[at], "tag 2 volumes ebs.csi.aws.com/cluster-name=blue",
                "from step {k}"
            );
            let scale = a.iter().position(|s| s == "scale blue to 2").unwrap();
            assert!(at < scale, "from step {k}: {a:#?}");
            assert_eq!(ws[at].green.attachments, 0);
            assert!(ws[at].ec2.values().all(|e| e.state == "available"));
        }
    }
}

/// orders/db with a self-healing Argo CD Application and a KEDA ScaledObject on blue.
fn fenced_world() -> (AppPlan, Observed) {
    use baton_core::fences::{Fence, FenceKind, FenceSeen};
    let (mut app, mut obs) = world(1, ReclaimPolicy::Delete, RetentionPolicy::default());
    for (kind, ns, name) in [
        (FenceKind::Application, "argocd", "orders"),
        (FenceKind::ScaledObject, "orders", "db"),
    ] {
        let f = Fence {
            kind,
            namespace: ns.into(),
            name: name.into(),
            shared: false,
            version: None,
        };
        obs.fences.insert(
            f.key(),
            FenceSeen {
                active: true,
                original: None,
            },
        );
        app.fences.push(f);
    }
    (app, obs)
}

#[test]
fn fences_are_paused_before_blue_stops_restored_on_rollback_and_kept_on_commit() {
    let (app, obs) = fenced_world();
    let (ds, worlds) = walk(Mode::Migrate, &app, obs.clone());
    let a = actions(&ds);
    let scale = a.iter().position(|s| s == "scale blue to 0").unwrap();
    for f in &app.fences {
        let pause = a
            .iter()
            .position(|s| s.starts_with(&format!("pause {f}")))
            .unwrap_or_else(|| panic!("{f} not paused: {a:#?}"));
        assert!(pause < scale, "{a:#?}");
    }
    // No world where blue is stopped has an active fence.
    for w in &worlds {
        if w.blue.sts.as_ref().is_some_and(|s| s.replicas == 0) {
            assert!(w.fences.values().all(|f| !f.active), "{w:#?}");
        }
    }
    let migrated = worlds.last().unwrap().clone();

    // Rollback from every state: each fence is resumed once green has let go and before
    // blue starts (a ScaledObject paused at 0 would hold blue at 0), and every fence is
    // as it was at the end.
    for (k, w) in worlds.iter().enumerate() {
        let (ds, ws) = walk(Mode::Rollback, &app, w.clone());
        let a = actions(&ds);
        assert_eq!(ds.last(), Some(&Decision::Done), "from {k}: {a:#?}");
        let end = ws.last().unwrap();
        assert!(
            end.fences
                .values()
                .all(|f| f.active && f.original.is_none()),
            "from {k}"
        );
        for f in &app.fences {
            let Some(resume) = a
                .iter()
                .position(|s| s.starts_with(&format!("restore {f}")))
            else {
                continue;
            };
            if let Some(start) = a.iter().position(|s| s == "scale blue to 1") {
                assert!(resume < start, "from {k}: {a:#?}");
            }
            if let Some(let_go) = a
                .iter()
                .position(|s| s.starts_with("wait for green's volume attachments"))
            {
                assert!(let_go < resume, "from {k}: {a:#?}");
            }
        }
    }

    // Commit keeps them, and pauses again one undone since the move.
    let mut undone = migrated.clone();
    let key = app.fences[0].key();
    undone.fences.get_mut(&key).unwrap().active = true;
    let (ds, ws) = walk(
        Mode::Commit {
            restore_reclaim_policy: false,
        },
        &app,
        undone,
    );
    assert_eq!(
        actions(&ds)[0],
        format!("pause {} (spec.syncPolicy.automated)", app.fences[0])
    );
    assert!(ws.last().unwrap().fences.values().all(|f| !f.active));
}

#[test]
fn a_claim_moves_on_its_own_without_scaling_and_stops_when_a_pod_mounts_it() {
    use baton_core::world::WorkloadKind;
    let (mut app, mut obs) = world(1, ReclaimPolicy::Delete, RetentionPolicy::default());
    app.kind = WorkloadKind::Claim;
    app.replicas = 0;
    obs.blue.sts = None;
    obs.green.sts = None;
    obs.blue.pods = 0;
    obs.blue.attachments = 0;
    for e in obs.ec2.values_mut() {
        e.state = "available".into();
    }
    let (ds, worlds) = walk(Mode::Migrate, &app, obs.clone());
    let a = actions(&ds);
    assert!(!a.iter().any(|s| s.starts_with("scale")), "{a:#?}");
    assert_eq!(ds.last(), Some(&Decision::Done), "{a:#?}");
    assert_eq!(a[a.len() - 2], "wait for green's claims to bind", "{a:#?}");
    // Rollback from every state gives blue its claim back, scaling nothing.
    for (k, w) in worlds.iter().enumerate() {
        let (ds, ws) = walk(Mode::Rollback, &app, w.clone());
        let a = actions(&ds);
        assert_eq!(ds.last(), Some(&Decision::Done), "from {k}: {a:#?}");
        assert!(
            !a.iter().any(|s| s.starts_with("scale")),
            "from {k}: {a:#?}"
        );
        let end = ws.last().unwrap();
        assert!(end.green.claims.is_empty() && end.green.volumes.is_empty());
    }
    // A pod that mounts it, before or during the move: stopped, nothing changed by it.
    let mut mounted = worlds[1].clone();
    mounted.blue.pods = 1;
    assert!(
        matches!(next(Mode::Migrate, &app, &mounted), Decision::Blocked { reason } if reason.contains("mount")),
    );
    // Commit.
    let (ds, _) = walk(
        Mode::Commit {
            restore_reclaim_policy: false,
        },
        &app,
        worlds.last().unwrap().clone(),
    );
    assert_eq!(ds.last(), Some(&Decision::Done));
}

#[test]
fn a_member_without_volumes_moves_once_blue_is_stopped_and_fenced_and_commits_only_when_green_runs_it()
 {
    use baton_core::fences::{Fence, FenceKind, FenceSeen};
    let (mut app, mut obs) = world(2, ReclaimPolicy::Retain, RetentionPolicy::default());
    app.volumes.clear();
    obs.blue.claims.clear();
    obs.blue.volumes.clear();
    obs.blue.attachments = 0;
    obs.ec2.clear();
    let fence = Fence {
        kind: FenceKind::ScaledObject,
        namespace: "orders".into(),
        name: "db".into(),
        shared: false,
        version: None,
    };
    app.fences.push(fence.clone());
    // Blue already at 0 (KEDA scaled it down), its ScaledObject active: not moved yet —
    // the fence is paused first, and only then green starts.
    obs.blue.sts.as_mut().unwrap().replicas = 0;
    obs.blue.pods = 0;
    obs.fences.insert(
        fence.key(),
        FenceSeen {
            active: true,
            original: None,
        },
    );
    let (ds, worlds) = walk(Mode::Migrate, &app, obs);
    let a = actions(&ds);
    let pause = a.iter().position(|s| s.contains("pause")).expect("paused");
    let start = a
        .iter()
        .position(|s| s.contains("scale green"))
        .expect("started");
    assert!(pause < start, "{a:#?}");
    assert_eq!(ds.last(), Some(&Decision::Done), "{a:#?}");
    // Commit refuses a world where green does not run it yet.
    let commit = Mode::Commit {
        restore_reclaim_policy: false,
    };
    let before_start = &worlds[pause + 1];
    assert!(
        matches!(next(commit, &app, before_start), Decision::Blocked { reason } if reason.contains("does not run in green")),
        "{:?}",
        next(commit, &app, before_start)
    );
    let (ds, _) = walk(commit, &app, worlds.last().unwrap().clone());
    assert_eq!(ds.last(), Some(&Decision::Done));
}
