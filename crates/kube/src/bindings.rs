//! The AWS Load Balancer Controller's TargetGroupBindings (`elbv2.k8s.aws/v1beta1`),
//! read and created for `baton traffic bindings`, and the namespace label that turns on
//! its pod readiness gates.

use baton_core::traffic::bindings::Binding;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams};
use serde_json::json;

use crate::KubeError;
use crate::cluster::{Cluster, api_err};
use crate::request::{Method, Mutation, Tolerate};

/// The TargetGroupBinding kind as the controller's CRD serves it.
pub fn binding_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("elbv2.k8s.aws", "v1beta1", "TargetGroupBinding"),
        "targetgroupbindings",
    )
}

/// Creates green's binding (409 is read back: the caller compares it).
pub fn create_binding(b: &Binding) -> Mutation {
    Mutation {
        method: Method::Post,
        path: format!(
            "/apis/elbv2.k8s.aws/v1beta1/namespaces/{}/targetgroupbindings",
            b.namespace
        ),
        body: Some(json!({
            "apiVersion": "elbv2.k8s.aws/v1beta1",
            "kind": "TargetGroupBinding",
            "metadata": { "name": b.name, "namespace": b.namespace },
            "spec": b.spec,
        })),
        tolerate: Tolerate::AlreadyExists,
        what: format!("create TargetGroupBinding {}", b.key()),
    }
}

/// Deletes one of blue's bindings when blue is retired (gone already is fine): the
/// controller's finalizer deregisters its targets before the object goes.
pub fn delete_binding(ns: &str, name: &str) -> Mutation {
    Mutation {
        method: Method::Delete,
        path: format!("/apis/elbv2.k8s.aws/v1beta1/namespaces/{ns}/targetgroupbindings/{name}"),
        body: None,
        tolerate: Tolerate::NotFound,
        what: format!("delete TargetGroupBinding {ns}/{name}"),
    }
}

/// Sets one label on a namespace (a merge patch: the other labels stay).
pub fn label_namespace(ns: &str, key: &str, value: &str) -> Mutation {
    Mutation {
        method: Method::Patch,
        path: format!("/api/v1/namespaces/{ns}"),
        body: Some(json!({ "metadata": { "labels": { key: value } } })),
        tolerate: Tolerate::Nothing,
        what: format!("label namespace {ns} {key}={value}"),
    }
}

impl Cluster {
    /// The TargetGroupBindings of `namespaces` (all when empty), sorted; None when the
    /// kind is not served (no load balancer controller CRD).
    pub async fn target_group_bindings(
        &self,
        namespaces: &[String],
    ) -> Result<Option<Vec<Binding>>, KubeError> {
        let ar = binding_resource();
        let apis: Vec<(String, Api<DynamicObject>)> = if namespaces.is_empty() {
            vec![(
                "all namespaces".into(),
                Api::all_with(self.client.clone(), &ar),
            )]
        } else {
            namespaces
                .iter()
                .map(|ns| {
                    (
                        ns.clone(),
                        Api::namespaced_with(self.client.clone(), ns, &ar),
                    )
                })
                .collect()
        };
        let mut out = Vec::new();
        for (where_, api) in apis {
            let params = ListParams::default();
            let list = match api.list(&params).await {
                Ok(l) => l,
                Err(kube::Error::Api(s)) if s.code == 404 => return Ok(None),
                Err(e) => {
                    return Err(api_err(
                        &self.context,
                        format!("list TargetGroupBindings in {where_}"),
                    )(e));
                }
            };
            out.extend(list.items.into_iter().map(|o| Binding {
                namespace: o.metadata.namespace.unwrap_or_default(),
                name: o.metadata.name.unwrap_or_default(),
                spec: o.data["spec"].clone(),
            }));
        }
        out.sort_by_key(Binding::key);
        Ok(Some(out))
    }

    /// The namespaces that carry `key=value`.
    pub async fn namespaces_labelled(
        &self,
        key: &str,
        value: &str,
    ) -> Result<Vec<String>, KubeError> {
        use k8s_openapi::api::core::v1::Namespace;
        let api = Api::<Namespace>::all(self.client.clone());
        let params = ListParams::default().labels(&format!("{key}={value}"));
        let list = api.list(&params).await.map_err(api_err(
            &self.context,
            format!("list namespaces labelled {key}={value}"),
        ))?;
        Ok(list
            .items
            .into_iter()
            .filter_map(|n| n.metadata.name)
            .collect())
    }
}
