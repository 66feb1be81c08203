//! `baton identity plan|apply`: the IAM roles blue's ServiceAccounts assume (IRSA), made
//! to trust green's OIDC provider before green's pods start, and green's provider made
//! if missing. The decision is `baton_core::identity`'s; this reads and sends.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::Context;
use baton_aws::{
    Aws, EKS_ISSUER_THUMBPRINT, NewOidcProvider, STS_AUDIENCE, UpdateAssumeRolePolicy,
};
use baton_core::identity::{self, Provider, TRUST_POLICY_LIMIT, TrustError};
use serde::Serialize;
use serde_json::Value;

use crate::args::{IdentityApplyArgs, IdentityArgs, Output};
use crate::commands::files::RequestJournal;
use crate::commands::output::{confirm, render, table};
use crate::commands::show::plural;
use crate::commands::stateful::world;
use crate::exit::{Refused, code};
use crate::resolved::{AwsTarget, Clusters};

const JOURNAL: &str = "identity.jsonl";

/// Namespaces left out unless named with `-n`: their ServiceAccounts belong to each
/// cluster's add-ons, which green runs under roles of its own.
const SYSTEM_NAMESPACES: &[&str] = &["kube-system", "kube-public", "kube-node-lease"];

/// One role's line.
#[derive(Debug, Clone, Serialize)]
struct RolePlan {
    role: String,
    /// `NS/NAME` of blue's ServiceAccounts that name it.
    service_accounts: Vec<String>,
    audience: String,
    /// `trusted` (green is trusted already), `add` (green's statement to add) or
    /// `refused` (why in `problem`).
    green: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    trust_characters: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<String>,
}

/// What `identity plan` prints for scripts.
#[derive(Debug, Clone, Serialize)]
struct Plan {
    from: String,
    to: String,
    green_eks_cluster: String,
    green_issuer: String,
    provider: String,
    provider_exists: bool,
    roles: Vec<RolePlan>,
    /// What was found of EKS Pod Identity (not handed over by baton).
    pod_identity: String,
}

/// A request `apply` sends.
#[derive(Debug, Clone)]
enum Request {
    Provider(NewOidcProvider),
    Trust(UpdateAssumeRolePolicy),
}

impl std::fmt::Display for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Provider(r) => r.fmt(f),
            Self::Trust(r) => r.fmt(f),
        }
    }
}

/// `baton identity plan`.
pub async fn plan(a: IdentityArgs) -> anyhow::Result<ExitCode> {
    let (plan, _, _) = make(&a, &["identity", "plan"]).await?;
    print(&plan, a.output)?;
    Ok(ExitCode::from(exit_of(&plan)))
}

/// `baton identity apply`.
pub async fn apply(a: IdentityApplyArgs) -> anyhow::Result<ExitCode> {
    let (plan, requests, aws) = make(&a.plan, &["identity", "apply"]).await?;
    let refused: Vec<&RolePlan> = plan.roles.iter().filter(|r| r.problem.is_some()).collect();
    if !refused.is_empty() {
        print(&plan, a.plan.output)?;
        return Err(Refused(format!(
            "failed to plan green's trust for {}: {}",
            plural(refused.len(), "role"),
            refused
                .iter()
                .map(|r| format!("{}: {}", r.role, r.problem.as_deref().unwrap_or("")))
                .collect::<Vec<_>>()
                .join("; ")
        ))
        .into());
    }
    if a.dry_run {
        for r in &requests {
            outln!("{r}");
        }
        errln!(
            "dry run: {} to send, none sent",
            plural(requests.len(), "IAM request")
        );
        return Ok(ExitCode::from(code::OK));
    }
    if !requests.is_empty() {
        if !a.yes {
            for r in &requests {
                errln!("{r}");
            }
        }
        confirm(
            a.yes,
            &format!(
                "send the {} above (green's OIDC provider and roles' trust)",
                plural(requests.len(), "IAM request")
            ),
        )?;
        let mut journal = RequestJournal::open(&a.state_dir, JOURNAL)?;
        for r in &requests {
            let line = r.to_string();
            let send = async {
                match r {
                    Request::Provider(p) => match aws.create_oidc_provider(p).await {
                        Ok(_) => Ok(()),
                        // Made since it was read (another run): what was wanted is there.
                        Err(e) if e.code() == Some("EntityAlreadyExists") => Ok(()),
                        Err(e) => Err(e),
                    },
                    Request::Trust(t) => aws.update_trust(t).await,
                }
                .with_context(|| {
                    format!(
                        "failed to send `{line}` (requests sent before it stay; run again to finish)"
                    )
                })
            };
            journal.send(&line, send).await?;
        }
    }
    let (after, _, _) = make(&a.plan, &["identity", "apply"]).await?;
    print(&after, a.plan.output)?;
    Ok(ExitCode::from(exit_of(&after)))
}

fn exit_of(plan: &Plan) -> u8 {
    if plan.roles.iter().any(|r| r.problem.is_some()) {
        code::REFUSED
    } else {
        code::OK
    }
}

/// Reads blue's ServiceAccounts, green's issuer and provider, and each role's trust,
/// and decides.
async fn make(a: &IdentityArgs, command: &[&str]) -> anyhow::Result<(Plan, Vec<Request>, Aws)> {
    let clusters = Clusters::new(&a.clusters, command)?;
    let (blue, green, aws) = world::connect(&clusters, &AwsTarget::from(&a.aws)).await?;
    let (plan, requests) = read(&blue, &green, &aws, &a.namespaces, true).await?;
    Ok((plan, requests, aws))
}

/// What preflight checks of IRSA: green's provider, and each role's trust of it.
pub async fn facts(
    blue: &baton_kube::Cluster,
    green: &baton_kube::Cluster,
    aws: &Aws,
    namespaces: &[String],
) -> anyhow::Result<baton_core::preflight::IdentityFacts> {
    let (plan, _) = read(blue, green, aws, namespaces, false).await?;
    Ok(baton_core::preflight::IdentityFacts {
        provider: plan.provider,
        provider_exists: plan.provider_exists,
        roles: plan
            .roles
            .into_iter()
            .map(|r| baton_core::preflight::RoleTrust {
                trusted: r.green == "trusted",
                role: r.role,
                service_accounts: r.service_accounts,
                problem: r.problem,
            })
            .collect(),
    })
}

/// Reads and decides, on clusters and AWS already connected; with `pod_identity`, also
/// lists blue's EKS Pod Identity associations for people.
async fn read(
    blue: &baton_kube::Cluster,
    green: &baton_kube::Cluster,
    aws: &Aws,
    namespaces: &[String],
    pod_identity: bool,
) -> anyhow::Result<(Plan, Vec<Request>)> {
    let Some(green_name) = world::eks_name(green, aws).await? else {
        return Err(Refused(format!(
            "failed to find {}'s EKS cluster name: its nodes carry no single eks:cluster-name tag (managed node groups' instances do)",
            green.context
        ))
        .into());
    };
    let described = aws
        .describe_cluster(&green_name)
        .await
        .with_context(|| format!("failed to read EKS cluster {green_name}"))?;
    let Some(issuer) = described.oidc_issuer.clone() else {
        return Err(Refused(format!(
            "failed to find the OIDC issuer of EKS cluster {green_name}: DescribeCluster names none"
        ))
        .into());
    };
    // The add-ons' ServiceAccounts (kube-system's EBS CSI driver, load balancer
    // controller, …) have green's own roles: only a namespace named with -n brings them.
    let accounts: Vec<_> = blue
        .irsa_service_accounts(namespaces)
        .await?
        .into_iter()
        .filter(|sa| !namespaces.is_empty() || !SYSTEM_NAMESPACES.contains(&sa.namespace.as_str()))
        .collect();
    // One statement per (role, audience): its ServiceAccounts' subjects.
    let mut groups: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for sa in &accounts {
        groups
            .entry((sa.role.clone(), sa.audience.clone()))
            .or_default()
            .push(format!("{}/{}", sa.namespace, sa.name));
    }
    let account = groups
        .keys()
        .next()
        .map(|(r, _)| baton_core::keys::account_of(r).to_string())
        .unwrap_or_default();
    let provider = Provider::of(&account, &issuer);
    let providers = aws.oidc_providers().await?;
    let provider_exists = providers.contains(&provider.arn);
    let mut requests = Vec::new();
    if !provider_exists && !groups.is_empty() {
        requests.push(Request::Provider(NewOidcProvider {
            url: issuer.clone(),
            client_id_list: vec![STS_AUDIENCE.to_string()],
            thumbprint_list: vec![EKS_ISSUER_THUMBPRINT.to_string()],
        }));
    }
    let mut roles = Vec::new();
    for ((role, audience), sas) in groups {
        let provider = Provider::of(baton_core::keys::account_of(&role), &issuer);
        let subjects: Vec<String> = sas
            .iter()
            .map(|s| {
                let (ns, name) = s.split_once('/').unwrap_or((s, ""));
                identity::subject(ns, name)
            })
            .collect();
        let mut line = RolePlan {
            role: role.clone(),
            service_accounts: sas.clone(),
            audience: audience.clone(),
            green: "refused".into(),
            trust_characters: None,
            problem: None,
        };
        match role_trust(aws, &role).await? {
            Err(why) => line.problem = Some(why),
            Ok((name, trust)) => {
                match identity::with_trust(
                    &trust,
                    &provider,
                    &subjects,
                    &audience,
                    TRUST_POLICY_LIMIT,
                ) {
                    Ok(doc) if doc == trust => {
                        line.green = "trusted".into();
                        line.trust_characters = Some(identity::size(&doc));
                    }
                    Ok(doc) => {
                        line.green = "add".into();
                        line.trust_characters = Some(identity::size(&doc));
                        requests.push(Request::Trust(UpdateAssumeRolePolicy {
                            role_name: name,
                            policy_document: doc.to_string(),
                        }));
                    }
                    Err(e @ TrustError::TooLarge { .. }) | Err(e @ TrustError::Unreadable) => {
                        line.problem = Some(e.to_string());
                    }
                }
            }
        }
        roles.push(line);
    }
    let pod_identity = if !pod_identity {
        String::new()
    } else {
        match aws
            .pod_identity_associations(&blue_name(blue, aws).await?)
            .await
        {
            Ok(list) if list.is_empty() => "blue has no EKS Pod Identity association".to_string(),
            Ok(list) => format!(
                "blue has {} (not handed over by baton: create green's with `aws eks create-pod-identity-association --cluster-name {green_name} --namespace NS --service-account SA --role-arn ARN`): {}",
                plural(list.len(), "EKS Pod Identity association"),
                list.iter()
                    .map(|(ns, sa, role)| format!("{ns}/{sa} → {role}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Err(e) => format!(
                "EKS Pod Identity associations were not read, so not handed over ({e}); list blue's with `aws eks list-pod-identity-associations --cluster-name BLUE` and create green's with `aws eks create-pod-identity-association --cluster-name {green_name} …`"
            ),
        }
    };
    Ok((
        Plan {
            from: blue.context.clone(),
            to: green.context.clone(),
            green_eks_cluster: green_name,
            green_issuer: issuer,
            provider: provider.arn,
            provider_exists,
            roles,
            pod_identity,
        },
        requests,
    ))
}

/// The IAM roles the selected StatefulSets' pods assume (their ServiceAccounts in blue
/// naming one), and whether green's pods may assume each, for the stateful plan. None
/// when no app's ServiceAccount names a role: then nothing is read from AWS. A
/// non-transient failure to read green's side is kept as why (a warning in the plan).
pub async fn pod_roles(
    blue: &baton_kube::Cluster,
    green: &baton_kube::Cluster,
    aws: &Aws,
    apps: &[&baton_core::world::StatefulSet],
) -> anyhow::Result<Option<identity::PodRoles>> {
    let mut namespaces: Vec<String> = apps.iter().map(|s| s.namespace.clone()).collect();
    namespaces.sort();
    namespaces.dedup();
    if namespaces.is_empty() {
        return Ok(None);
    }
    let used: std::collections::BTreeSet<String> = apps
        .iter()
        .map(|s| format!("{}/{}", s.namespace, s.service_account))
        .collect();
    let accounts: BTreeMap<String, String> = blue
        .irsa_service_accounts(&namespaces)
        .await?
        .into_iter()
        .map(|sa| (format!("{}/{}", sa.namespace, sa.name), sa.role))
        .filter(|(k, _)| used.contains(k))
        .collect();
    if accounts.is_empty() {
        return Ok(None);
    }
    let green = match facts(blue, green, aws, &namespaces).await {
        Ok(f) => Ok(f),
        Err(e) if crate::commands::retry::is_transient(&e) => return Err(e),
        Err(e) => Err(format!("{e:#}")),
    };
    Ok(Some(identity::PodRoles { accounts, green }))
}

/// Blue's EKS name, for its Pod Identity associations (its context when its nodes do
/// not say).
async fn blue_name(blue: &baton_kube::Cluster, aws: &Aws) -> anyhow::Result<String> {
    Ok(world::eks_name(blue, aws)
        .await?
        .unwrap_or_else(|| blue.context.clone()))
}

/// A role's name and trust policy; Err(why) when the role is not there or its trust
/// policy cannot be read (a refusal naming the role).
async fn role_trust(aws: &Aws, role: &str) -> anyhow::Result<Result<(String, Value), String>> {
    let Some(name) = baton_aws::role_name(role) else {
        return Ok(Err(format!("{role} is not an IAM role ARN")));
    };
    match aws.role_policies(role).await {
        Ok(r) => Ok(match serde_json::from_str::<Value>(&r.trust) {
            Ok(v) => Ok((name.to_string(), v)),
            Err(e) => Err(format!("its trust policy is not JSON baton can read: {e}")),
        }),
        Err(e) if e.code() == Some("NoSuchEntity") => Ok(Err(
            "the role does not exist (a ServiceAccount names it; create it or fix the annotation)"
                .to_string(),
        )),
        Err(e) => Err(e).with_context(|| format!("failed to read IAM role {role}")),
    }
}

fn print(plan: &Plan, output: Output) -> anyhow::Result<()> {
    if output != Output::Table {
        out!("{}", render(plan, output)?);
        return Ok(());
    }
    outln!(
        "Green: EKS cluster {} (issuer {})\nIAM OIDC provider {}: {}\n",
        plan.green_eks_cluster,
        plan.green_issuer,
        plan.provider,
        if plan.provider_exists {
            "exists"
        } else {
            "missing (apply creates it)"
        }
    );
    if plan.roles.is_empty() {
        outln!("no ServiceAccount of the selected namespaces in blue names an IAM role");
    } else {
        let rows: Vec<Vec<String>> = plan
            .roles
            .iter()
            .map(|r| {
                vec![
                    r.role.clone(),
                    r.service_accounts.join(", "),
                    match (r.green.as_str(), &r.problem) {
                        (_, Some(p)) => format!("refused: {p}"),
                        ("add", _) => "add green's statement".into(),
                        (g, _) => g.to_string(),
                    },
                    r.trust_characters
                        .map_or("-".into(), |n| format!("{n}/{TRUST_POLICY_LIMIT}")),
                ]
            })
            .collect();
        out!(
            "{}",
            table(&["ROLE", "SERVICE ACCOUNTS", "GREEN", "TRUST SIZE"], &rows)
        );
    }
    outln!("\n{}", plan.pod_identity);
    Ok(())
}
