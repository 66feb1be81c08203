//! What baton's commands are allowed to do, as data: per command, the Kubernetes RBAC
//! rules (API group, resources, verbs) and the IAM actions (with resource patterns) its
//! code calls. `baton permissions` prints the union as a ClusterRole and an IAM policy;
//! `crates/cli/tests/permissions.rs` runs the commands on the emulator and moto and
//! checks every request they made against this table, so an entry cannot silently go
//! missing when the code starts calling something new.
//!
//! Discovery (`/api`, `/apis`, `/version`, `/openapi`) is not listed: every
//! authenticated user may read it through the `system:discovery` ClusterRole. Nor is
//! [`NEEDS_NO_PERMISSION`]'s `sts:GetCallerIdentity`, which every command that calls AWS
//! makes first: AWS answers it for any valid credentials, whatever the policies say.

/// IAM actions AWS allows to every caller, so no policy needs to grant them.
pub const NEEDS_NO_PERMISSION: &[&str] = &["sts:GetCallerIdentity"];

/// One RBAC rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KubeRule {
    /// API groups (`""` is core, `*` any).
    pub groups: &'static [&'static str],
    /// Resources, with subresources as `statefulsets/scale` (`*` any).
    pub resources: &'static [&'static str],
    /// Verbs (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`).
    pub verbs: &'static [&'static str],
}

impl KubeRule {
    /// Whether this rule allows `verb` on `group`/`resource`, as the RBAC authorizer
    /// decides (`*` matches anything; `resource` may carry a subresource).
    pub fn allows(&self, group: &str, resource: &str, verb: &str) -> bool {
        let any = |list: &[&str], v: &str| list.iter().any(|x| *x == "*" || *x == v);
        any(self.groups, group) && any(self.resources, resource) && any(self.verbs, verb)
    }
}

/// One IAM policy statement (Allow).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IamStatement {
    /// `ec2:DescribeVolumes`, …
    pub actions: &'static [&'static str],
    /// ARN patterns (`*` where the action supports no resource-level permission).
    pub resources: &'static [&'static str],
}

/// What one command needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandPermissions {
    /// `plan`, `migrate`, …
    pub command: &'static str,
    /// Which cluster(s) it calls, for the reader.
    pub clusters: &'static str,
    /// Kubernetes rules.
    pub kube: &'static [KubeRule],
    /// AWS actions.
    pub iam: &'static [IamStatement],
}

const READ: &[&str] = &["get", "list", "watch"];

/// What every view of a cluster reads (`plan`'s and `migrate`'s observations).
const VIEW: &[KubeRule] = &[
    KubeRule {
        groups: &[""],
        resources: &[
            "pods",
            "persistentvolumeclaims",
            "persistentvolumes",
            "nodes",
            "namespaces",
        ],
        verbs: READ,
    },
    KubeRule {
        groups: &["apps"],
        resources: &["statefulsets", "deployments", "daemonsets"],
        verbs: READ,
    },
    KubeRule {
        groups: &["storage.k8s.io"],
        resources: &["storageclasses", "volumeattachments", "csidrivers"],
        verbs: READ,
    },
    KubeRule {
        groups: &["autoscaling"],
        resources: &["horizontalpodautoscalers"],
        verbs: READ,
    },
    // Their pod templates may mount a claim: it is theirs, not standalone.
    KubeRule {
        groups: &["batch"],
        resources: &["cronjobs", "jobs"],
        verbs: READ,
    },
];

/// EC2 reads of volumes, instances, the VPC and snapshots (no resource-level
/// permissions exist for Describe* calls).
const EC2_READ: IamStatement = IamStatement {
    actions: &[
        "ec2:DescribeVolumes",
        "ec2:DescribeInstances",
        "ec2:DescribeVpcs",
        "ec2:DescribeSubnets",
        "ec2:DescribeSnapshots",
        "ec2:DescribeAvailabilityZones",
        "ec2:DescribeSecurityGroups",
    ],
    resources: &["*"],
};

/// The EBS CSI driver's ServiceAccount, for its IRSA role (`plan`'s reads).
const DRIVER_ACCOUNT: KubeRule = KubeRule {
    groups: &[""],
    resources: &["serviceaccounts"],
    verbs: &["get"],
};

/// The EBS CSI driver roles and their policies, which decide the volumes' tags.
const IAM_DRIVER_ROLE: IamStatement = IamStatement {
    actions: &[
        "iam:GetRole",
        "iam:ListAttachedRolePolicies",
        "iam:ListRolePolicies",
        "iam:GetRolePolicy",
    ],
    resources: &["arn:aws:iam::*:role/*"],
};

/// The driver roles' managed policies (AWS's own included: `arn:aws:iam::aws:policy/…`).
const IAM_DRIVER_POLICIES: IamStatement = IamStatement {
    actions: &["iam:GetPolicy", "iam:GetPolicyVersion"],
    resources: &["arn:aws:iam::*:policy/*"],
};

/// The volumes' KMS keys: whether green's EBS CSI driver may use each.
const KMS_READ: IamStatement = IamStatement {
    actions: &["kms:DescribeKey", "kms:GetKeyPolicy", "kms:ListGrants"],
    resources: &["arn:aws:kms:*:*:key/*"],
};

/// The volumes' ownership tags handed to green in the window (and back on rollback).
const RETAG: IamStatement = IamStatement {
    actions: &["ec2:CreateTags", "ec2:DeleteTags"],
    resources: &["arn:aws:ec2:*:*:volume/*"],
};

/// The stateful move's writes to Kubernetes (both clusters).
const MOVE: &[KubeRule] = &[
    KubeRule {
        groups: &[""],
        resources: &["persistentvolumes", "persistentvolumeclaims"],
        verbs: &["create", "patch", "delete"],
    },
    KubeRule {
        groups: &["apps"],
        resources: &["statefulsets", "statefulsets/scale", "deployments/scale"],
        verbs: &["patch"],
    },
    KubeRule {
        groups: &["autoscaling"],
        resources: &["horizontalpodautoscalers"],
        verbs: &["patch"],
    },
];

/// The apps' ServiceAccounts naming IAM roles (IRSA), read by every plan.
const IRSA_ACCOUNTS: KubeRule = KubeRule {
    groups: &[""],
    resources: &["serviceaccounts"],
    verbs: &["list"],
};

/// The objects that could scale a stopped blue workload back up (`fences`), listed in
/// every namespace by every plan; a kind whose CRD is not installed costs a 404.
const FENCE_GROUPS: &[&str] = &[
    "argoproj.io",
    "kustomize.toolkit.fluxcd.io",
    "helm.toolkit.fluxcd.io",
    "keda.sh",
];
const FENCE_RESOURCES: &[&str] = &[
    "applications",
    "kustomizations",
    "helmreleases",
    "scaledobjects",
];
const FENCE_LIST: KubeRule = KubeRule {
    groups: FENCE_GROUPS,
    resources: FENCE_RESOURCES,
    verbs: &["list"],
};

/// The move pauses them before blue stops (a merge patch) and restores them on rollback.
const FENCE_WRITE: KubeRule = KubeRule {
    groups: FENCE_GROUPS,
    resources: FENCE_RESOURCES,
    verbs: &["get", "patch"],
};

/// Whether green's pods may assume those roles: green's issuer (EKS) and IAM OIDC
/// provider, and each role's trust policy (`IAM_DRIVER_ROLE`'s `iam:GetRole`).
const IRSA_READ: IamStatement = IamStatement {
    actions: &["iam:ListOpenIDConnectProviders", "eks:DescribeCluster"],
    resources: &["*"],
};

/// The pods' IAM roles read with their policies and their trust rewritten (identity
/// adds green's statement, retire takes blue's out).
const ROLE_TRUST: IamStatement = IamStatement {
    actions: &[
        "iam:GetRole",
        "iam:ListAttachedRolePolicies",
        "iam:ListRolePolicies",
        "iam:GetRolePolicy",
        "iam:UpdateAssumeRolePolicy",
    ],
    resources: &["arn:aws:iam::*:role/*"],
};

/// Snapshots of the moved volumes, tagged with the migration id at creation.
const SNAPSHOT: IamStatement = IamStatement {
    actions: &["ec2:CreateSnapshot", "ec2:CreateTags"],
    resources: &["arn:aws:ec2:*:*:volume/*", "arn:aws:ec2:*::snapshot/*"],
};

/// `parts` one after the other, as an array (`N` must be their total length): the
/// commands' lists are composed of the shared ones above without repeating them.
const fn join<T: Copy, const N: usize>(parts: &[&[T]]) -> [T; N] {
    let mut out = [parts[0][0]; N];
    let (mut i, mut n) = (0, 0);
    while i < parts.len() {
        let mut j = 0;
        while j < parts[i].len() {
            out[n] = parts[i][j];
            n += 1;
            j += 1;
        }
        i += 1;
    }
    assert!(n == N, "join: N is not the parts' total length");
    out
}

/// What every plan reads in Kubernetes: the clusters' views, the EBS CSI driver's
/// ServiceAccount, the apps' ServiceAccounts (IRSA) and what could scale them back up.
const PLAN_KUBE: [KubeRule; 8] = join(&[VIEW, &[DRIVER_ACCOUNT, IRSA_ACCOUNTS, FENCE_LIST]]);

/// What every plan reads in AWS: volumes and the VPC, the driver roles' policies, the
/// volumes' keys, green's OIDC provider and the apps' roles' trust.
const PLAN_IAM: [IamStatement; 5] = [
    EC2_READ,
    IAM_DRIVER_ROLE,
    IAM_DRIVER_POLICIES,
    KMS_READ,
    IRSA_READ,
];

/// Every command and what it needs.
pub const COMMANDS: &[CommandPermissions] = &[
    CommandPermissions {
        command: "plan",
        clusters: "blue, green",
        kube: &PLAN_KUBE,
        iam: &PLAN_IAM,
    },
    CommandPermissions {
        command: "identity plan, apply",
        clusters: "blue, green",
        kube: &[
            KubeRule {
                // Blue's ServiceAccounts and their IRSA annotations.
                groups: &[""],
                resources: &["serviceaccounts"],
                verbs: &["list"],
            },
            KubeRule {
                // Each cluster's EKS name, from its nodes' instances.
                groups: &[""],
                resources: &["nodes"],
                verbs: &["list"],
            },
        ],
        iam: &[
            EC2_READ,
            ROLE_TRUST,
            IAM_DRIVER_POLICIES,
            IamStatement {
                actions: &[
                    "iam:ListOpenIDConnectProviders",
                    "iam:CreateOpenIDConnectProvider",
                ],
                resources: &["*"],
            },
            IamStatement {
                actions: &[
                    "eks:DescribeCluster",
                    "eks:ListPodIdentityAssociations",
                    "eks:DescribePodIdentityAssociation",
                ],
                resources: &[
                    "arn:aws:eks:*:*:cluster/*",
                    "arn:aws:eks:*:*:podidentityassociation/*",
                ],
            },
        ],
    },
    CommandPermissions {
        command: "volumes grant",
        clusters: "blue, green",
        kube: &PLAN_KUBE,
        iam: &join::<_, 6>(&[
            &PLAN_IAM,
            &[IamStatement {
                // The key policy must also let the account's IAM policies decide (KMS's
                // default key policy does), or name baton's identity.
                actions: &["kms:CreateGrant", "kms:RevokeGrant"],
                resources: &["arn:aws:kms:*:*:key/*"],
            }],
        ]),
    },
    CommandPermissions {
        command: "migrate, rollback, commit",
        clusters: "blue, green",
        kube: &join::<_, 12>(&[&PLAN_KUBE, MOVE, &[FENCE_WRITE]]),
        iam: &join::<_, 7>(&[&PLAN_IAM, &[SNAPSHOT, RETAG]]),
    },
    CommandPermissions {
        command: "traffic bindings",
        clusters: "blue, green",
        kube: &[
            KubeRule {
                // Blue's bindings read; green's read and created.
                groups: &["elbv2.k8s.aws"],
                resources: &["targetgroupbindings"],
                verbs: &["list", "create"],
            },
            KubeRule {
                // Green's namespaces: which carry the readiness-gate label; the label set.
                groups: &[""],
                resources: &["namespaces"],
                verbs: &["list", "patch"],
            },
            KubeRule {
                // Green's EKS name, from its nodes' instances.
                groups: &[""],
                resources: &["nodes"],
                verbs: &["list"],
            },
        ],
        iam: &[
            EC2_READ,
            IamStatement {
                actions: &[
                    "elasticloadbalancing:DescribeTargetGroups",
                    "elasticloadbalancing:DescribeTags",
                ],
                resources: &["*"],
            },
        ],
    },
    CommandPermissions {
        command: "preflight",
        clusters: "blue, green",
        kube: &join::<_, 12>(&[
            &PLAN_KUBE,
            &[
                KubeRule {
                    // Helm v3 release records and kubectl's last-applied annotations.
                    groups: &[""],
                    resources: &["secrets"],
                    verbs: &["list"],
                },
                KubeRule {
                    groups: &["apps"],
                    resources: &["daemonsets"],
                    verbs: &["list"],
                },
                KubeRule {
                    groups: &["policy"],
                    resources: &["poddisruptionbudgets"],
                    verbs: &["list"],
                },
                KubeRule {
                    // Objects of every served kind, for removed API versions in last-applied.
                    groups: &["*"],
                    resources: &["*"],
                    verbs: &["list"],
                },
            ],
        ]),
        iam: &[
            EC2_READ,
            IAM_DRIVER_ROLE,
            IAM_DRIVER_POLICIES,
            KMS_READ,
            IamStatement {
                actions: &["eks:DescribeCluster", "eks:ListNodegroups"],
                resources: &["arn:aws:eks:*:*:cluster/*"],
            },
            IamStatement {
                // The IRSA checks: green's OIDC provider, blue's Pod Identity.
                actions: &["iam:ListOpenIDConnectProviders"],
                resources: &["*"],
            },
            IamStatement {
                actions: &[
                    "eks:ListPodIdentityAssociations",
                    "eks:DescribePodIdentityAssociation",
                ],
                resources: &[
                    "arn:aws:eks:*:*:cluster/*",
                    "arn:aws:eks:*:*:podidentityassociation/*",
                ],
            },
        ],
    },
    CommandPermissions {
        command: "backup",
        clusters: "blue",
        kube: &[
            VIEW[0],
            VIEW[1],
            VIEW[2],
            VIEW[3],
            KubeRule {
                // Every listable kind of the chosen namespaces (Secrets only with
                // --include-secrets, which RBAC cannot tell apart).
                groups: &["*"],
                resources: &["*"],
                verbs: &["get", "list"],
            },
            KubeRule {
                groups: &["velero.io"],
                resources: &["backups"],
                verbs: &["create", "get", "list", "watch"],
            },
        ],
        iam: &[],
    },
    CommandPermissions {
        command: "network plan, apply, mirror-rules",
        clusters: "blue (ENIConfigs)",
        kube: &[KubeRule {
            groups: &["crd.k8s.amazonaws.com"],
            resources: &["eniconfigs"],
            verbs: &["list"],
        }],
        iam: &[
            EC2_READ,
            IamStatement {
                actions: &["ec2:AssociateVpcCidrBlock"],
                resources: &["arn:aws:ec2:*:*:vpc/*"],
            },
            IamStatement {
                actions: &["ec2:CreateSubnet", "ec2:CreateTags"],
                resources: &["arn:aws:ec2:*:*:vpc/*", "arn:aws:ec2:*:*:subnet/*"],
            },
            IamStatement {
                actions: &["ec2:AuthorizeSecurityGroupIngress"],
                resources: &["arn:aws:ec2:*:*:security-group/*"],
            },
        ],
    },
    CommandPermissions {
        command: "traffic shift, status, rollback",
        clusters: "none",
        kube: &[],
        iam: &[
            IamStatement {
                actions: &[
                    "elasticloadbalancing:DescribeListeners",
                    "elasticloadbalancing:DescribeRules",
                    "elasticloadbalancing:DescribeTargetGroups",
                    "elasticloadbalancing:DescribeTargetHealth",
                    "elasticloadbalancing:DescribeLoadBalancers",
                    "cloudwatch:GetMetricData",
                ],
                resources: &["*"],
            },
            IamStatement {
                actions: &[
                    "elasticloadbalancing:ModifyListener",
                    "elasticloadbalancing:ModifyRule",
                ],
                resources: &[
                    "arn:aws:elasticloadbalancing:*:*:listener/app/*",
                    "arn:aws:elasticloadbalancing:*:*:listener-rule/app/*",
                ],
            },
        ],
    },
    CommandPermissions {
        command: "retire plan, apply",
        clusters: "blue, green",
        kube: &[
            KubeRule {
                // Blue's PVs and the pods mounting their claims; both clusters' nodes
                // (their subnets and EKS names).
                groups: &[""],
                resources: &["persistentvolumes", "pods", "nodes"],
                verbs: &["list"],
            },
            KubeRule {
                // Blue's ServiceAccounts naming IAM roles.
                groups: &[""],
                resources: &["serviceaccounts"],
                verbs: &["list"],
            },
            KubeRule {
                // Both clusters' pod subnets (custom networking).
                groups: &["crd.k8s.amazonaws.com"],
                resources: &["eniconfigs"],
                verbs: &["list"],
            },
            KubeRule {
                // Both clusters' bindings read; blue's deleted by apply.
                groups: &["elbv2.k8s.aws"],
                resources: &["targetgroupbindings"],
                verbs: &["list", "delete"],
            },
        ],
        iam: &[
            EC2_READ,
            IamStatement {
                actions: &["ec2:DescribeNetworkInterfaces"],
                resources: &["*"],
            },
            IamStatement {
                actions: &[
                    "elasticloadbalancing:DescribeLoadBalancers",
                    "elasticloadbalancing:DescribeListeners",
                    "elasticloadbalancing:DescribeRules",
                    "elasticloadbalancing:DescribeTargetGroups",
                    "elasticloadbalancing:DescribeTargetGroupAttributes",
                    "elasticloadbalancing:DescribeTargetHealth",
                    "cloudwatch:GetMetricData",
                ],
                resources: &["*"],
            },
            IamStatement {
                actions: &["eks:DescribeCluster"],
                resources: &["arn:aws:eks:*:*:cluster/*"],
            },
            ROLE_TRUST,
            IAM_DRIVER_POLICIES,
            IamStatement {
                actions: &["ec2:RevokeSecurityGroupIngress"],
                resources: &["arn:aws:ec2:*:*:security-group/*"],
            },
            IamStatement {
                // Only with --release-subnets.
                actions: &["ec2:DeleteSubnet", "ec2:DisassociateVpcCidrBlock"],
                resources: &["arn:aws:ec2:*:*:subnet/*", "arn:aws:ec2:*:*:vpc/*"],
            },
            IamStatement {
                // The listener actions; with --delete-target-groups, the groups.
                actions: &[
                    "elasticloadbalancing:ModifyListener",
                    "elasticloadbalancing:ModifyRule",
                    "elasticloadbalancing:DeleteTargetGroup",
                ],
                resources: &[
                    "arn:aws:elasticloadbalancing:*:*:listener/app/*",
                    "arn:aws:elasticloadbalancing:*:*:listener-rule/app/*",
                    "arn:aws:elasticloadbalancing:*:*:targetgroup/*",
                ],
            },
        ],
    },
];

/// The commands whose name contains `filter` (all when empty).
pub fn select(filter: &[String]) -> Vec<&'static CommandPermissions> {
    COMMANDS
        .iter()
        .filter(|c| filter.is_empty() || filter.iter().any(|f| c.command.contains(f.as_str())))
        .collect()
}

/// Whether any of the commands' rules allows `verb` on `group`/`resource`.
pub fn kube_allows(
    commands: &[&CommandPermissions],
    group: &str,
    resource: &str,
    verb: &str,
) -> bool {
    commands
        .iter()
        .flat_map(|c| c.kube)
        .any(|r| r.allows(group, resource, verb))
}

/// Whether any of the commands' statements allows `action` (`ec2:DescribeVolumes`).
pub fn iam_allows(commands: &[&CommandPermissions], action: &str) -> bool {
    commands
        .iter()
        .flat_map(|c| c.iam)
        .any(|s| s.actions.contains(&action))
}

/// The rules of the commands merged by (groups, resources): verbs unioned, sorted.
pub fn merged_rules(
    commands: &[&CommandPermissions],
) -> Vec<(Vec<String>, Vec<String>, Vec<String>)> {
    let mut out: std::collections::BTreeMap<
        (Vec<String>, Vec<String>),
        std::collections::BTreeSet<String>,
    > = std::collections::BTreeMap::new();
    let own = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    for r in commands.iter().flat_map(|c| c.kube) {
        out.entry((own(r.groups), own(r.resources)))
            .or_default()
            .extend(r.verbs.iter().map(|v| v.to_string()));
    }
    out.into_iter()
        .map(|((g, r), v)| (g, r, v.into_iter().collect()))
        .collect()
}

/// The statements of the commands merged by resource patterns: actions unioned, sorted.
pub fn merged_statements(commands: &[&CommandPermissions]) -> Vec<(Vec<String>, Vec<String>)> {
    let mut out: std::collections::BTreeMap<Vec<String>, std::collections::BTreeSet<String>> =
        std::collections::BTreeMap::new();
    for s in commands.iter().flat_map(|c| c.iam) {
        out.entry(s.resources.iter().map(|r| r.to_string()).collect())
            .or_default()
            .extend(s.actions.iter().map(|a| a.to_string()));
    }
    out.into_iter()
        .map(|(r, a)| (a.into_iter().collect(), r))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_as_rbac_does() {
        let r = KubeRule {
            groups: &["apps"],
            resources: &["statefulsets/scale"],
            verbs: &["patch"],
        };
        assert!(r.allows("apps", "statefulsets/scale", "patch"));
        assert!(
            !r.allows("apps", "statefulsets", "patch"),
            "a subresource is its own"
        );
        assert!(!r.allows("", "statefulsets/scale", "patch"));
        assert!(!r.allows("apps", "statefulsets/scale", "update"));
        let all = select(&[]);
        assert!(kube_allows(&all, "velero.io", "backups", "create"));
        assert!(iam_allows(&all, "ec2:CreateSnapshot"));
        assert!(
            !iam_allows(&all, "ec2:DeleteVolume"),
            "baton never deletes a volume"
        );
        let migrate = select(&["migrate".into()]);
        for a in ["ec2:CreateTags", "ec2:DeleteTags", "iam:GetPolicyVersion"] {
            assert!(iam_allows(&migrate, a), "{a}");
        }
        assert!(kube_allows(&migrate, "", "serviceaccounts", "get"));
    }
}
