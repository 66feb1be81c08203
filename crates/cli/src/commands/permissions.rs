//! `baton permissions`: the IAM policy document and the Kubernetes ClusterRole that
//! baton's commands need, rendered from the table in `baton_core::permissions`.

use std::fmt::Write;
use std::process::ExitCode;

use baton_core::permissions::{self, CommandPermissions};
use serde_json::{Value, json};

use crate::args::{Output, PermissionsArgs, usage_error};
use crate::commands::output;
use crate::exit::code;

/// `baton permissions`.
pub fn run(a: &PermissionsArgs) -> anyhow::Result<ExitCode> {
    let chosen = permissions::select(&a.commands);
    if chosen.is_empty() {
        let names: Vec<&str> = permissions::COMMANDS.iter().map(|c| c.command).collect();
        return Err(usage_error(
            &["permissions"],
            format!(
                "no command matches --command {:?} in the permissions table; pass one of: {}",
                a.commands,
                names.join("; ")
            ),
        )
        .into());
    }
    output::print(match a.output {
        Output::Json => output::render(&iam_policy(&chosen), Output::Json)?,
        Output::Yaml => output::render(&cluster_role(&chosen, &a.role_name), Output::Yaml)?,
        Output::Table => table(&chosen),
    })?;
    Ok(ExitCode::from(code::OK))
}

/// The IAM policy document (2012-10-17), one statement per set of resource patterns.
pub fn iam_policy(chosen: &[&CommandPermissions]) -> Value {
    let statements: Vec<Value> = permissions::merged_statements(chosen)
        .into_iter()
        .enumerate()
        .map(|(i, (actions, resources))| {
            json!({ "Sid": format!("Baton{i}"), "Effect": "Allow", "Action": actions, "Resource": resources })
        })
        .collect();
    json!({ "Version": "2012-10-17", "Statement": statements })
}

/// The ClusterRole (rbac.authorization.k8s.io/v1).
pub fn cluster_role(chosen: &[&CommandPermissions], name: &str) -> Value {
    let rules: Vec<Value> = permissions::merged_rules(chosen)
        .into_iter()
        .map(|(groups, resources, verbs)| {
            json!({ "apiGroups": groups, "resources": resources, "verbs": verbs })
        })
        .collect();
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": { "name": name, "labels": { "app.kubernetes.io/managed-by": "baton" } },
        "rules": rules,
    })
}

fn table(chosen: &[&CommandPermissions]) -> String {
    let mut out = String::new();
    for c in chosen {
        let _ = writeln!(out, "{} (clusters: {})", c.command, c.clusters);
        let rows: Vec<Vec<String>> = c
            .kube
            .iter()
            .map(|r| {
                let groups: Vec<&str> = r
                    .groups
                    .iter()
                    .map(|g| if g.is_empty() { "core" } else { g })
                    .collect();
                vec![
                    "k8s".into(),
                    groups.join(","),
                    r.resources.join(","),
                    r.verbs.join(","),
                ]
            })
            .collect();
        let text = output::table(&["", "API GROUPS", "RESOURCES", "VERBS"], &rows);
        for line in text.lines() {
            let _ = writeln!(out, "  {line}");
        }
        // IAM statements under the table: their action lists are too long for a column.
        for s in c.iam.iter() {
            let _ = writeln!(
                out,
                "  iam  {}  on {}",
                s.actions.join(", "),
                s.resources.join(", ")
            );
        }
    }
    out.push_str("\n-o json: the IAM policy document; -o yaml: the ClusterRole.\n");
    out
}
