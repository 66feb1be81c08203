//! What `baton retire` reads of blue beyond the move's own reads: every PV on an EBS
//! volume, with the claim bound to it and the pods mounting that claim.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PersistentVolume, Pod};
use kube::Api;
use kube::api::ListParams;

use crate::KubeError;
use crate::cluster::{Cluster, api_err};

/// One PV on an EBS volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EbsVolume {
    /// The PV's name.
    pub pv: String,
    /// The EBS volume id.
    pub volume_id: String,
    /// `namespace/name` of the claim bound to it.
    pub claim: Option<String>,
    /// `namespace/name` of the pods mounting that claim.
    pub pods: Vec<String>,
}

impl Cluster {
    /// Every PV on an EBS volume (the CSI driver's or the in-tree plugin's), with its
    /// claim and the pods mounting the claim, sorted by PV name.
    pub async fn ebs_volumes(&self) -> Result<Vec<EbsVolume>, KubeError> {
        let params = ListParams::default();
        let pvs = Api::<PersistentVolume>::all(self.client.clone());
        let pvs = pvs
            .list(&params)
            .await
            .map_err(api_err(&self.context, "list PersistentVolumes"))?;
        let pods = Api::<Pod>::all(self.client.clone());
        let pods = pods
            .list(&params)
            .await
            .map_err(api_err(&self.context, "list pods"))?;
        let mut mounts: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        for p in &pods.items {
            let ns = p.metadata.namespace.clone().unwrap_or_default();
            let name = p.metadata.name.clone().unwrap_or_default();
            let Some(spec) = &p.spec else { continue };
            for v in spec.volumes.iter().flatten() {
                if let Some(c) = &v.persistent_volume_claim {
                    mounts
                        .entry((ns.clone(), c.claim_name.clone()))
                        .or_default()
                        .push(format!("{ns}/{name}"));
                }
            }
        }
        let mut out = Vec::new();
        for p in &pvs.items {
            let view = crate::convert::pv(p);
            let Some(volume_id) = view.volume_id else {
                continue;
            };
            let claim = p
                .spec
                .as_ref()
                .and_then(|s| s.claim_ref.as_ref())
                .and_then(|r| Some((r.namespace.clone()?, r.name.clone()?)));
            let pods = claim
                .as_ref()
                .and_then(|c| mounts.get(c).cloned())
                .unwrap_or_default();
            out.push(EbsVolume {
                pv: view.name,
                volume_id,
                claim: claim.map(|(ns, n)| format!("{ns}/{n}")),
                pods,
            });
        }
        out.sort_by(|a, b| a.pv.cmp(&b.pv));
        Ok(out)
    }
}
