//! What `baton backup` reads: the objects baton will touch for a set of StatefulSets
//! (the sets, their claims by StatefulSet naming, the PVs those claims are bound to, the
//! HPAs that target them) and every listable namespaced object of the chosen namespaces,
//! found through discovery. Secrets are read only when asked for.

use std::collections::BTreeSet;

use kube::Api;
use kube::api::{ApiResource, DynamicObject, ListParams};
use kube::discovery::{Discovery, Scope, verbs};
use serde_json::Value;

use crate::KubeError;
use crate::cluster::{Cluster, api_err};

/// One object to save.
#[derive(Debug, Clone, PartialEq)]
pub struct Saved {
    /// `apps/v1`.
    pub api_version: String,
    /// `StatefulSet`.
    pub kind: String,
    /// "" for cluster-scoped objects.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The object as the API returned it, without `metadata.managedFields`.
    pub object: Value,
    /// baton changes or deletes it during a move (not only "in a selected namespace").
    pub touched: bool,
}

/// Kinds never saved: records of what happened, not state to restore.
const SKIPPED: &[(&str, &str)] = &[("", "events"), ("events.k8s.io", "events")];

fn saved(ar: &ApiResource, mut o: DynamicObject, touched: bool) -> Saved {
    o.metadata.managed_fields = None;
    let namespace = o.metadata.namespace.clone().unwrap_or_default();
    let name = o.metadata.name.clone().unwrap_or_default();
    let mut object = serde_json::to_value(&o).unwrap_or(Value::Null);
    object["apiVersion"] = Value::String(ar.api_version.clone());
    object["kind"] = Value::String(ar.kind.clone());
    Saved {
        api_version: ar.api_version.clone(),
        kind: ar.kind.clone(),
        namespace,
        name,
        object,
        touched,
    }
}

fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &kube::api::GroupVersionKind::gvk(group, version, kind),
        plural,
    )
}

impl Cluster {
    /// The objects a move of the StatefulSets (with claim templates) in `namespaces` (all
    /// when empty) touches: the sets, their claims, those claims' PVs, their HPAs.
    pub async fn touched_objects(&self, namespaces: &[String]) -> Result<Vec<Saved>, KubeError> {
        let view = self.view(namespaces).await?;
        let sets: Vec<_> = view
            .statefulsets
            .iter()
            .filter(|s| !s.templates.is_empty())
            .collect();
        let mut out = Vec::new();
        let sts_ar = resource("apps", "v1", "StatefulSet", "statefulsets");
        let pvc_ar = resource("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims");
        let pv_ar = resource("", "v1", "PersistentVolume", "persistentvolumes");
        let hpa_ar = resource(
            "autoscaling",
            "v2",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
        );
        let mut pvs = BTreeSet::new();
        for s in &sets {
            let get = |ar: &ApiResource, name: &str| {
                let api: Api<DynamicObject> =
                    Api::namespaced_with(self.client.clone(), &s.namespace, ar);
                let what = format!("get {} {}/{name}", ar.kind, s.namespace);
                let name = name.to_string();
                async move {
                    api.get_opt(&name)
                        .await
                        .map_err(api_err(&self.context, what))
                }
            };
            if let Some(o) = get(&sts_ar, &s.name).await? {
                out.push(saved(&sts_ar, o, true));
            }
            for c in view.claims.iter().filter(|c| {
                c.namespace == s.namespace
                    && s.templates.iter().any(|t| {
                        c.name
                            .strip_prefix(&format!("{}-{}-", t.name, s.name))
                            .is_some_and(|n| !n.is_empty() && n.chars().all(|d| d.is_ascii_digit()))
                    })
            }) {
                if let Some(o) = get(&pvc_ar, &c.name).await? {
                    out.push(saved(&pvc_ar, o, true));
                }
                if !c.volume_name.is_empty() {
                    pvs.insert(c.volume_name.clone());
                }
            }
            for scaler in &s.scalers {
                if let Some(name) = scaler.rsplit('/').next()
                    && let Some(o) = get(&hpa_ar, name).await?
                {
                    out.push(saved(&hpa_ar, o, true));
                }
            }
        }
        let pv_api: Api<DynamicObject> = Api::all_with(self.client.clone(), &pv_ar);
        for name in pvs {
            if let Some(o) = pv_api
                .get_opt(&name)
                .await
                .map_err(api_err(&self.context, format!("get PV {name}")))?
            {
                out.push(saved(&pv_ar, o, true));
            }
        }
        Ok(out)
    }

    /// Every object of every listable namespaced kind in `namespace` (events skipped;
    /// Secrets only with `include_secrets`).
    pub async fn namespace_objects(
        &self,
        namespace: &str,
        include_secrets: bool,
    ) -> Result<Vec<Saved>, KubeError> {
        let discovery = Discovery::new(self.client.clone())
            .run()
            .await
            .map_err(api_err(&self.context, "discover the served kinds"))?;
        let mut out = Vec::new();
        for group in discovery.groups() {
            for (ar, caps) in group.recommended_resources() {
                if caps.scope != Scope::Namespaced
                    || !caps.supports_operation(verbs::LIST)
                    || SKIPPED.contains(&(ar.group.as_str(), ar.plural.as_str()))
                    || (ar.group.is_empty() && ar.plural == "secrets" && !include_secrets)
                {
                    continue;
                }
                let api: Api<DynamicObject> =
                    Api::namespaced_with(self.client.clone(), namespace, &ar);
                let params = ListParams::default();
                let list = api.list(&params).await.map_err(api_err(
                    &self.context,
                    format!("list {} in {namespace}", ar.plural),
                ))?;
                out.extend(list.items.into_iter().map(|o| saved(&ar, o, false)));
            }
        }
        Ok(out)
    }
}
