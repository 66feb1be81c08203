//! `baton volumes grant`: green's EBS CSI driver given the KMS keys of blue's volumes
//! before the move (a key is never fixed inside the window), and `--revoke`.
//!
//! The journal (`grants.jsonl` in the state dir) holds one line before and one after
//! each KMS request, so a crash between them is visible and a run again finishes the
//! work: CreateGrant is not sent for a key green can already use (the grant made before
//! the crash counts), RevokeGrant accepts a grant already gone.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;

use anyhow::Context;
use baton_aws::{Aws, NewGrant, RevokedGrant};
use baton_core::handover::{Driver, KeyCheck};
use baton_core::keys::{self, GRANT_OPERATIONS};
use baton_core::plan::Plan;
use serde::{Deserialize, Serialize};

use crate::args::{Output, VolumesGrantArgs};
use crate::commands::files::{append_line, now, open_journal, read_lines};
use crate::commands::output::{confirm, render, table};
use crate::commands::show::plural;
use crate::commands::stateful::world::{self, World};
use crate::exit::{Refused, code};
use crate::resolved::{AwsTarget, Clusters, Selection};

const JOURNAL: &str = "grants.jsonl";

/// One line of the journal.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
enum Entry {
    /// CreateGrant about to be sent.
    Granting {
        at: String,
        key: String,
        grantee: String,
        name: String,
        operations: Vec<String>,
    },
    /// CreateGrant answered.
    Granted {
        at: String,
        key: String,
        grant_id: String,
    },
    /// RevokeGrant about to be sent.
    Revoking {
        at: String,
        key: String,
        grant_id: String,
    },
    /// RevokeGrant answered (or the grant was gone).
    Revoked {
        at: String,
        key: String,
        grant_id: String,
    },
}

/// One key's line in the output.
#[derive(Debug, Clone, Serialize)]
struct Row {
    key: String,
    /// The selected apps' volumes under the key.
    volumes: Vec<String>,
    /// What was (or, with --dry-run, would be) done.
    action: String,
    /// How green's driver role may use the key, or what it lacks.
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    grant_id: Option<String>,
}

/// The command's result for scripts.
#[derive(Debug, Serialize)]
struct Report {
    from: String,
    to: String,
    role: String,
    keys: Vec<Row>,
}

/// `baton volumes grant`.
pub async fn grant(a: VolumesGrantArgs) -> anyhow::Result<ExitCode> {
    let command: &[&str] = &["volumes", "grant"];
    let clusters = Clusters::new(&a.clusters, command)?;
    let selection = Selection {
        filter: baton_core::planner::Selection {
            namespaces: a.namespaces.clone(),
            labels: a.labels.clone(),
            claims: Vec::new(),
            groups: Vec::new(),
            standalone_claims: false,
            no_label_groups: false,
        },
        options: Default::default(),
        ebs_csi_roles: a.ebs_csi_roles.clone(),
    };
    let (blue, green, aws) = world::connect(&clusters, &AwsTarget::from(&a.aws)).await?;
    let (plan, world) = world::read_world(&blue, &green, &aws, &selection)
        .await
        .context("failed to read blue, green and their volumes' keys")?;
    let role = match &world.drivers.green {
        Some(Driver::Known { role, .. }) => role.clone(),
        Some(Driver::Unknown(why)) => {
            return Err(Refused(format!(
                "failed to find green's EBS CSI driver role, the grantee: {why}\nhint: pass --ebs-csi-role {}=ARN",
                green.context
            ))
            .into());
        }
        None => unreachable!("read_world always looks for green's driver"),
    };
    if a.revoke {
        revoke(&a, &aws, &plan, &world, &role).await
    } else {
        give(&a, &aws, &plan, &world, &role).await
    }
}

/// The selected apps' volumes under each key.
fn volumes_by_key(plan: &Plan) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for v in plan.apps.iter().flat_map(|a| a.volumes.iter()) {
        if let Some(k) = &v.kms_key_id {
            out.entry(k.clone()).or_default().push(v.volume_id.clone());
        }
    }
    out
}

async fn give(
    a: &VolumesGrantArgs,
    aws: &Aws,
    plan: &Plan,
    world: &World,
    role: &str,
) -> anyhow::Result<ExitCode> {
    let name = keys::grant_name(&plan.to);
    let mut rows = Vec::new();
    let mut requests: Vec<(usize, NewGrant)> = Vec::new();
    for (key, volumes) in volumes_by_key(plan) {
        let (action, detail) = match world.drivers.green_keys.get(&key) {
            Some(KeyCheck::Checked(u)) if u.aws_managed => (
                "none".to_string(),
                "AWS managed key: usable by the account's principals through EC2".to_string(),
            ),
            Some(KeyCheck::Checked(u)) if u.usable() => {
                ("none".to_string(), format!("usable: {}", u.via.join("; ")))
            }
            Some(KeyCheck::Checked(u)) => {
                requests.push((
                    rows.len(),
                    NewGrant {
                        key_id: u.key.clone(),
                        grantee_principal: role.to_string(),
                        operations: GRANT_OPERATIONS.iter().map(|o| o.to_string()).collect(),
                        name: name.clone(),
                    },
                ));
                (
                    if a.dry_run { "would grant" } else { "grant" }.to_string(),
                    format!("lacks {}", u.missing.join(", ")),
                )
            }
            Some(KeyCheck::Unknown(why)) => {
                return Err(Refused(format!(
                    "failed to check KMS key {key} ({}): {why}\nhint: baton needs kms:DescribeKey, kms:GetKeyPolicy and kms:ListGrants on it (`baton permissions --command 'volumes grant'`)",
                    plural(volumes.len(), "volume")
                ))
                .into());
            }
            None => continue,
        };
        rows.push(Row {
            key,
            volumes,
            action,
            detail,
            grant_id: None,
        });
    }
    let question = format!(
        "give {role} {} on the keys above",
        plural(requests.len(), "KMS grant")
    );
    if dry_run_or_confirm(a, &requests, ("create", "created"), &question)? {
        return Ok(ExitCode::from(code::OK));
    }
    if !requests.is_empty() {
        let mut journal = open_journal(&a.state_dir, JOURNAL)?;
        for (row, r) in &requests {
            append_line(
                &mut journal,
                &Entry::Granting {
                    at: now(),
                    key: r.key_id.clone(),
                    grantee: r.grantee_principal.clone(),
                    name: r.name.clone(),
                    operations: r.operations.clone(),
                },
            )?;
            let id = aws.create_grant(r).await.with_context(|| {
                format!(
                    "failed to create the grant on {} (grants made before it stay; run again to finish)",
                    r.key_id
                )
            })?;
            append_line(
                &mut journal,
                &Entry::Granted {
                    at: now(),
                    key: r.key_id.clone(),
                    grant_id: id.clone(),
                },
            )?;
            rows[*row].action = "granted".into();
            rows[*row].grant_id = Some(id);
        }
    }
    print(
        a.output,
        plan,
        role,
        rows,
        "no customer-managed KMS key of the selected volumes needs a grant for",
    )?;
    Ok(ExitCode::from(code::OK))
}

async fn revoke(
    a: &VolumesGrantArgs,
    aws: &Aws,
    plan: &Plan,
    world: &World,
    role: &str,
) -> anyhow::Result<ExitCode> {
    let name = keys::grant_name(&plan.to);
    // The keys: those of the selected apps' volumes, those baton's journal names, and
    // those of the volumes green's PVs name (after a commit blue has no claims left).
    let mut candidates: BTreeMap<String, Vec<String>> = volumes_by_key(plan);
    for e in read_lines::<Entry>(&a.state_dir.join(JOURNAL))? {
        if let Entry::Granted { key, .. } = e {
            candidates.entry(key).or_default();
        }
    }
    let green_ids: Vec<String> = world
        .green
        .volumes
        .iter()
        .filter_map(|pv| pv.volume_id.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let green_volumes = world::describe(aws, &green_ids).await?;
    let mut held: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for v in green_volumes.values() {
        if let Some(k) = &v.kms_key_id {
            held.entry(k.clone()).or_default().push(v.id.clone());
            candidates.entry(k.clone()).or_default();
        }
    }
    let mut rows = Vec::new();
    let mut requests: Vec<(usize, RevokedGrant)> = Vec::new();
    let mut refusals = Vec::new();
    for (key, volumes) in candidates {
        let read = aws
            .kms_key(&key)
            .await
            .with_context(|| format!("failed to read KMS key {key} (nothing was changed)"))?;
        let mut k = world::key_of(&read);
        let (ours, others): (Vec<_>, Vec<_>) = k
            .grants
            .drain(..)
            .partition(|g| g.grantee == role && g.name == name);
        if ours.is_empty() {
            continue;
        }
        k.grants = others;
        if let Some(vols) = held.get(&key) {
            let documents = role_documents(aws, role).await?;
            let after = keys::evaluate(&k, role, &documents);
            if !after.usable() {
                refusals.push(format!(
                    "KMS key {}: green's PVs name {} under it, and without baton's grant {role} could not attach {} ({} not allowed otherwise)",
                    read.arn,
                    vols.join(", "),
                    if vols.len() == 1 { "it" } else { "them" },
                    after.missing.join(", ")
                ));
                continue;
            }
        }
        for g in &ours {
            requests.push((
                rows.len(),
                RevokedGrant {
                    key_id: read.arn.clone(),
                    grant_id: g.id.clone(),
                },
            ));
        }
        rows.push(Row {
            key: read.arn.clone(),
            volumes,
            action: if a.dry_run { "would revoke" } else { "revoke" }.into(),
            detail: format!("{} named {name}", plural(ours.len(), "grant")),
            grant_id: ours.first().map(|g| g.id.clone()),
        });
    }
    if !refusals.is_empty() {
        return Err(Refused(format!(
            "failed to revoke: green still needs the grant:\n  {}\nhint: add green's driver role to the key policy's key-user statements first, or roll the apps back to blue (`baton rollback`)",
            refusals.join("\n  ")
        ))
        .into());
    }
    let question = format!(
        "revoke {} baton made for {role}",
        plural(requests.len(), "KMS grant")
    );
    if dry_run_or_confirm(a, &requests, ("revoke", "revoked"), &question)? {
        return Ok(ExitCode::from(code::OK));
    }
    if !requests.is_empty() {
        let mut journal = open_journal(&a.state_dir, JOURNAL)?;
        for (row, r) in &requests {
            append_line(
                &mut journal,
                &Entry::Revoking {
                    at: now(),
                    key: r.key_id.clone(),
                    grant_id: r.grant_id.clone(),
                },
            )?;
            match aws.revoke_grant(r).await {
                Ok(()) => {}
                // Gone since it was listed: what was wanted is so.
                Err(e) if e.code() == Some("NotFoundException") => {}
                Err(e) => {
                    return Err(e).context(format!(
                        "failed to revoke grant {} on {} (grants revoked before it stay revoked; run again to finish)",
                        r.grant_id, r.key_id
                    ));
                }
            }
            append_line(
                &mut journal,
                &Entry::Revoked {
                    at: now(),
                    key: r.key_id.clone(),
                    grant_id: r.grant_id.clone(),
                },
            )?;
            rows[*row].action = "revoked".into();
        }
    }
    print(
        a.output,
        plan,
        role,
        rows,
        "no grant baton made is left for",
    )?;
    Ok(ExitCode::from(code::OK))
}

/// With `--dry-run`, prints the requests (stdout, one a line) and says on stderr that
/// none was sent: true, the command stops there. Otherwise, when there is something to
/// send, shows the requests on stderr unless `--yes`, and asks `question`.
fn dry_run_or_confirm<R: std::fmt::Display>(
    a: &VolumesGrantArgs,
    requests: &[(usize, R)],
    (verb, done): (&str, &str),
    question: &str,
) -> anyhow::Result<bool> {
    if a.dry_run {
        for (_, r) in requests {
            outln!("{r}");
        }
        errln!(
            "dry run: {} to {verb}, none {done}",
            plural(requests.len(), "grant")
        );
        return Ok(true);
    }
    if !requests.is_empty() {
        if !a.yes {
            for (_, r) in requests {
                errln!("{r}");
            }
        }
        confirm(a.yes, question)?;
    }
    Ok(false)
}

/// Green's driver role's IAM policy documents, for judging a key without baton's grant.
async fn role_documents(aws: &Aws, role: &str) -> anyhow::Result<Vec<serde_json::Value>> {
    let read = aws
        .role_policies(role)
        .await
        .with_context(|| format!("failed to read the IAM role {role} (nothing was changed)"))?;
    read.documents
        .iter()
        .map(|(source, text)| {
            serde_json::from_str(text)
                .with_context(|| format!("the policy {source} of {role} is not JSON"))
        })
        .collect()
}

fn print(
    output: Output,
    plan: &Plan,
    role: &str,
    rows: Vec<Row>,
    nothing: &str,
) -> anyhow::Result<()> {
    if output != Output::Table {
        let report = Report {
            from: plan.from.clone(),
            to: plan.to.clone(),
            role: role.to_string(),
            keys: rows,
        };
        out!("{}", render(&report, output)?);
        return Ok(());
    }
    if rows.is_empty() {
        outln!("{nothing} {role}");
        return Ok(());
    }
    outln!("Green's EBS CSI driver role: {role}\n");
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.key.clone(),
                r.volumes.join(", "),
                r.action.clone(),
                r.grant_id.clone().unwrap_or_default(),
                r.detail.clone(),
            ]
        })
        .collect();
    out!(
        "{}",
        table(&["KEY", "VOLUMES", "ACTION", "GRANT", "WHY"], &cells)
    );
    Ok(())
}
