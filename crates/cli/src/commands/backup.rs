//! `baton backup`: blue's objects as YAML files by namespace and kind, with an index, so
//! that what a move touches can be read back (or re-applied) after it. Secrets are
//! written only when asked for, and their contents never reach a log or the terminal.
//! With `--velero`, the same namespaces are also handed to Velero as a `velero.io/v1`
//! Backup, whose phase `--wait` follows to the end.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use baton_kube::Cluster;
use baton_kube::backup::Saved;
use baton_kube::velero::{VeleroPhase, VeleroRequest, VeleroStatus};
use serde::Serialize;

use super::output::{confirm, render};
use super::stateful::world::connect_blue;
use crate::args::{BackupArgs, Output};
use crate::exit::{Refused, code};
use crate::resolved::Blue;

/// The index file's name in the backup directory.
pub const INDEX: &str = "index.yaml";

/// `index.yaml`.
#[derive(Debug, Serialize)]
struct Index {
    context: String,
    server_version: String,
    created: String,
    namespaces: Vec<String>,
    include_secrets: bool,
    objects: Vec<Entry>,
}

#[derive(Debug, Serialize)]
struct Entry {
    api_version: String,
    kind: String,
    namespace: String,
    name: String,
    uid: String,
    resource_version: String,
    file: String,
    touched: bool,
}

/// `baton backup`.
pub async fn run(a: BackupArgs) -> anyhow::Result<ExitCode> {
    let now = jiff::Timestamp::now();
    let from = Blue::from(&a.blue);
    let out = a.out.clone().unwrap_or_else(|| {
        PathBuf::from(".baton/backup").join(format!(
            "{}-{}",
            from.context,
            now.strftime("%Y%m%dT%H%M%SZ")
        ))
    });
    if out.join(INDEX).exists() {
        return Err(Refused(format!(
            "{} already holds a backup ({INDEX}); pass another --out so it is not overwritten",
            out.display()
        ))
        .into());
    }
    let blue = connect_blue(&from).await?;
    let server_version = blue.version().await?;
    if a.velero {
        check_velero(&blue, &a.velero_namespace).await?;
    }
    let mut objects = blue.touched_objects(&a.namespaces).await?;
    let namespaces: Vec<String> = if a.namespaces.is_empty() {
        objects
            .iter()
            .filter(|o| o.kind == "StatefulSet")
            .map(|o| o.namespace.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    } else {
        a.namespaces.clone()
    };
    if !a.touched_only {
        let touched: BTreeSet<(String, String, String)> = objects.iter().map(key).collect();
        for ns in &namespaces {
            for o in blue.namespace_objects(ns, a.include_secrets).await? {
                if !touched.contains(&key(&o)) {
                    objects.push(o);
                }
            }
        }
    }
    objects.sort_by_key(|o| (o.namespace.clone(), o.kind.clone(), o.name.clone()));
    let velero_request = a.velero.then(|| VeleroRequest {
        namespace: a.velero_namespace.clone(),
        name: format!(
            "baton-{}-{}",
            dns_label(&a.blue.from),
            now.strftime("%Y%m%dt%H%M%Sz")
        ),
        included_namespaces: namespaces.clone(),
        labels: vec![("app.kubernetes.io/managed-by".into(), "baton".into())],
    });
    if a.dry_run {
        outln!(
            "would save {} objects of {} ({} that a move touches) to {}",
            objects.len(),
            from.context,
            objects.iter().filter(|o| o.touched).count(),
            out.display()
        );
        if let Some(r) = &velero_request {
            outln!("{}", r.mutation());
        }
        errln!("dry run: nothing was written or created");
        return Ok(ExitCode::from(code::OK));
    }
    if let Some(r) = &velero_request {
        confirm(
            a.yes,
            &format!(
                "create Velero Backup {}/{} of {} in {}",
                r.namespace,
                r.name,
                r.included_namespaces.join(", "),
                from.context
            ),
        )?;
    }
    let entries = write_all(&out, &objects)?;
    let index = Index {
        context: from.context.clone(),
        server_version,
        created: now.to_string(),
        namespaces: namespaces.clone(),
        include_secrets: a.include_secrets,
        objects: entries,
    };
    let text = serde_saphyr::to_string(&index).context("failed to render the index")?;
    std::fs::write(out.join(INDEX), text)
        .with_context(|| format!("failed to write {}", out.join(INDEX).display()))?;
    let touched = objects.iter().filter(|o| o.touched).count();
    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    for o in &objects {
        *by_kind.entry(o.kind.as_str()).or_default() += 1;
    }
    let human = a.output == Output::Table;
    say(
        human,
        format_args!(
            "Saved {} objects of {} ({} that a move touches) to {}",
            objects.len(),
            from.context,
            touched,
            out.display()
        ),
    );
    for (kind, n) in &by_kind {
        say(human, format_args!("  {kind:<28} {n}"));
    }
    if !a.include_secrets {
        say(
            human,
            format_args!("Secrets were not saved (pass --include-secrets to save them)."),
        );
    }
    let mut saved = BackupSummary {
        context: from.context.clone(),
        dir: out.display().to_string(),
        objects: objects.len(),
        touched,
        kinds: by_kind
            .into_iter()
            .map(|(k, n)| (k.to_string(), n))
            .collect(),
        secrets_saved: a.include_secrets,
        velero: None,
    };
    let code = if let Some(request) = &velero_request {
        velero(&blue, &a, request, &mut saved).await?
    } else {
        ExitCode::from(code::OK)
    };
    if !human {
        out!("{}", render(&saved, a.output)?);
    }
    Ok(code)
}

/// What `backup -o json|yaml` prints.
#[derive(Debug, Serialize)]
struct BackupSummary {
    context: String,
    dir: String,
    objects: usize,
    touched: usize,
    kinds: BTreeMap<String, usize>,
    secrets_saved: bool,
    velero: Option<VeleroSaved>,
}

/// The Velero Backup made, and how it ended when followed (`--wait`).
#[derive(Debug, Serialize)]
struct VeleroSaved {
    namespace: String,
    name: String,
    phase: Option<String>,
    items_backed_up: Option<u64>,
    errors: Option<u64>,
    warnings: Option<u64>,
}

/// A line for people: stdout with the table, stderr when stdout holds JSON or YAML.
fn say(human: bool, line: std::fmt::Arguments<'_>) {
    if human {
        outln!("{line}");
    } else {
        errln!("{line}");
    }
}

/// Refuses, before anything is written, when Velero cannot take the Backup.
async fn check_velero(blue: &Cluster, ns: &str) -> anyhow::Result<()> {
    if !blue.serves_velero().await? {
        return Err(Refused(format!(
            "Velero is not installed in {}: the API server does not serve velero.io/v1 \
             backups (install Velero, or drop --velero)",
            blue.context
        ))
        .into());
    }
    if !blue.has_namespace(ns).await? {
        return Err(Refused(format!(
            "Velero is not installed in {}: there is no namespace {ns:?} for its Backups \
             (pass --velero-namespace with the namespace Velero runs in)",
            blue.context
        ))
        .into());
    }
    Ok(())
}

/// Creates the Velero Backup and, with `--wait`, follows it to its final phase.
async fn velero(
    blue: &Cluster,
    a: &BackupArgs,
    request: &VeleroRequest,
    saved: &mut BackupSummary,
) -> anyhow::Result<ExitCode> {
    let human = a.output == Output::Table;
    let name = request.name.clone();
    let namespaces = &request.included_namespaces;
    blue.create_velero_backup(request).await?;
    saved.velero = Some(VeleroSaved {
        namespace: a.velero_namespace.clone(),
        name: name.clone(),
        phase: None,
        items_backed_up: None,
        errors: None,
        warnings: None,
    });
    say(
        human,
        format_args!(
            "Velero Backup {}/{name} created (namespaces: {})",
            a.velero_namespace,
            namespaces.join(", ")
        ),
    );
    if !a.wait {
        say(
            human,
            format_args!(
                "Follow it with: kubectl --context {} -n {} get backup {name} -w",
                a.blue.from, a.velero_namespace
            ),
        );
        return Ok(ExitCode::from(code::OK));
    }
    let status = blue
        .follow_velero_backup(&a.velero_namespace, &name, a.velero_timeout, |s| {
            say(human, format_args!("  {}", describe(s)));
        })
        .await?;
    if let Some(v) = saved.velero.as_mut() {
        v.phase = Some(status.phase.to_string());
        v.items_backed_up = Some(status.items_backed_up);
        v.errors = Some(status.errors);
        v.warnings = Some(status.warnings);
    }
    match status.phase {
        VeleroPhase::Completed => {
            say(
                human,
                format_args!(
                    "Velero Backup {name} Completed: {} items",
                    status.items_backed_up
                ),
            );
            Ok(ExitCode::from(code::OK))
        }
        _ => {
            errln!(
                "error: Velero Backup {}/{name} ended {}: {} errors, {} warnings, {} of {} items backed up{}\n  \
                 see: velero backup logs {name} -n {}",
                a.velero_namespace,
                status.phase,
                status.errors,
                status.warnings,
                status.items_backed_up,
                status.total_items,
                status
                    .failure_reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default(),
                a.velero_namespace,
            );
            Ok(ExitCode::from(code::FAILED))
        }
    }
}

/// One progress line.
fn describe(s: &VeleroStatus) -> String {
    if s.total_items == 0 {
        return format!("Velero: {}", s.phase);
    }
    format!(
        "Velero: {} {}/{} items ({}%), {} errors, {} warnings",
        s.phase,
        s.items_backed_up,
        s.total_items,
        s.items_backed_up * 100 / s.total_items,
        s.errors,
        s.warnings
    )
}

/// A context name as part of an object name (lowercase alphanumerics and '-').
fn dns_label(s: &str) -> String {
    let out: String = s
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    out.trim_matches('-').chars().take(40).collect()
}

fn key(o: &Saved) -> (String, String, String) {
    (
        format!("{}/{}", o.api_version, o.kind),
        o.namespace.clone(),
        o.name.clone(),
    )
}

/// A file name part that cannot climb out of its directory.
fn safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect::<String>()
        .trim_start_matches('.')
        .to_string()
}

fn write_all(out: &Path, objects: &[Saved]) -> anyhow::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    for o in objects {
        let ns = if o.namespace.is_empty() {
            "_cluster".to_string()
        } else {
            safe(&o.namespace)
        };
        // The group keeps two kinds of one name apart (e.g. events.k8s.io vs core).
        let group = o.api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
        let kind = if group.is_empty() {
            o.kind.to_lowercase()
        } else {
            format!("{}.{}", o.kind.to_lowercase(), safe(group))
        };
        let rel = PathBuf::from(&ns)
            .join(&kind)
            .join(format!("{}.yaml", safe(&o.name)));
        let path = out.join(&rel);
        std::fs::create_dir_all(path.parent().expect("a file under out"))
            .with_context(|| format!("failed to create {}", path.display()))?;
        let text = serde_saphyr::to_string(&o.object)
            .with_context(|| format!("failed to render {} {}/{}", o.kind, o.namespace, o.name))?;
        std::fs::write(&path, text)
            .with_context(|| format!("failed to write {}", path.display()))?;
        let meta = &o.object["metadata"];
        entries.push(Entry {
            api_version: o.api_version.clone(),
            kind: o.kind.clone(),
            namespace: o.namespace.clone(),
            name: o.name.clone(),
            uid: meta["uid"].as_str().unwrap_or_default().to_string(),
            resource_version: meta["resourceVersion"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            file: rel.display().to_string(),
            touched: o.touched,
        });
    }
    Ok(entries)
}
