//! What the network planner reads from a cluster: its ENIConfigs
//! (`crd.k8s.amazonaws.com/v1alpha1`, cluster-scoped), which with VPC CNI custom
//! networking say which subnet each zone's pods take their addresses from.

use baton_core::network::plan::EniConfigView;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams};

use crate::KubeError;
use crate::cluster::{Cluster, api_err};

/// The ENIConfig kind as the VPC CNI installs it.
pub fn eni_config_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("crd.k8s.amazonaws.com", "v1alpha1", "ENIConfig"),
        "eniconfigs",
    )
}

impl Cluster {
    /// The cluster's ENIConfigs, by name; none when the kind is not served (no VPC CNI
    /// CRD: the cluster does not use custom networking).
    pub async fn eni_configs(&self) -> Result<Vec<EniConfigView>, KubeError> {
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &eni_config_resource());
        let params = ListParams::default();
        let list = match api.list(&params).await {
            Ok(l) => l,
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Vec::new()),
            Err(e) => return Err(api_err(&self.context, "list ENIConfigs")(e)),
        };
        let mut out: Vec<EniConfigView> = list
            .items
            .into_iter()
            .map(|o| {
                let spec = &o.data["spec"];
                EniConfigView {
                    name: o.metadata.name.unwrap_or_default(),
                    subnet: spec["subnet"].as_str().unwrap_or_default().to_string(),
                    security_groups: spec["securityGroups"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|g| g.as_str().map(String::from))
                        .collect(),
                }
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}
