//! The objects that could scale a stopped blue workload back up (Argo CD Applications,
//! Flux Kustomizations and HelmReleases, KEDA ScaledObjects: `baton_core::fences`),
//! read for the plan and the runner, and the patches that pause and restore them.

use baton_core::fences::{Fence, FenceKind, FenceObject};
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams};
use serde_json::Value;

use crate::KubeError;
use crate::cluster::{Cluster, api_err};
use crate::request::{Method, Mutation, Tolerate};

fn resource(kind: FenceKind, version: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(kind.group(), version, kind.kind()),
        kind.plural(),
    )
}

fn path(f: &Fence) -> String {
    format!(
        "/apis/{}/{}/namespaces/{}/{}/{}",
        f.kind.group(),
        f.version(),
        f.namespace,
        f.kind.plural(),
        f.name
    )
}

/// Pauses `f`, whose object as just read is `current` (the patch records the value it
/// replaces unless a record is there already).
pub fn pause(f: &Fence, current: &Value) -> Mutation {
    Mutation {
        method: Method::Patch,
        path: path(f),
        body: Some(f.kind.pause(current)),
        tolerate: Tolerate::Nothing,
        what: format!("pause {f}"),
    }
}

/// Puts `original` back into `f`'s fenced field and removes baton's record.
pub fn restore(f: &Fence, original: &Value) -> Mutation {
    Mutation {
        method: Method::Patch,
        path: path(f),
        body: Some(f.kind.restore(original)),
        tolerate: Tolerate::Nothing,
        what: format!("restore {f}"),
    }
}

impl Cluster {
    /// Every object of the fence kinds the cluster serves, in all namespaces (a kind
    /// whose CRD is not installed has none).
    pub async fn fence_objects(&self) -> Result<Vec<FenceObject>, KubeError> {
        // Each kind at the newest version the cluster serves (none served: no objects).
        let lists = FenceKind::ALL.map(|kind| async move {
            for version in kind.versions() {
                let api: Api<DynamicObject> =
                    Api::all_with(self.client.clone(), &resource(kind, version));
                let params = ListParams::default();
                match api.list(&params).await {
                    Ok(l) => {
                        return Ok(l
                            .items
                            .iter()
                            .map(|o| {
                                let mut v = serde_json::to_value(o).unwrap_or(Value::Null);
                                // A list's items may leave apiVersion out.
                                if v["apiVersion"].is_null() {
                                    v["apiVersion"] =
                                        Value::String(format!("{}/{version}", kind.group()));
                                }
                                FenceObject::of(kind, &v)
                            })
                            .collect::<Vec<_>>());
                    }
                    Err(kube::Error::Api(s)) if s.code == 404 => continue,
                    Err(e) => {
                        return Err(api_err(&self.context, format!("list {}", kind.plural()))(e));
                    }
                }
            }
            Ok(Vec::new())
        });
        let mut out: Vec<FenceObject> = futures::future::try_join_all(lists)
            .await?
            .into_iter()
            .flatten()
            .collect();
        out.sort_by(|a, b| a.fence.cmp(&b.fence));
        Ok(out)
    }

    /// One fence's object (None: gone, or its kind no longer served). Read at the version
    /// it was planned at; not found there while that version is no longer served (Flux
    /// upgraded mid-move), at the other versions its kind has.
    pub async fn fence(&self, f: &Fence) -> Result<Option<Value>, KubeError> {
        let versions = std::iter::once(f.version()).chain(
            f.kind
                .versions()
                .iter()
                .copied()
                .filter(|v| *v != f.version()),
        );
        for version in versions {
            let api: Api<DynamicObject> = Api::namespaced_with(
                self.client.clone(),
                &f.namespace,
                &resource(f.kind, version),
            );
            let found = match api.get_opt(&f.name).await {
                Ok(o) => o,
                Err(kube::Error::Api(s)) if s.code == 404 => None,
                Err(e) => return Err(api_err(&self.context, format!("read {f}"))(e)),
            };
            if let Some(o) = found {
                return Ok(Some(serde_json::to_value(o).unwrap_or(Value::Null)));
            }
            // A 404 says "no such object" and "no such version" alike: only a served
            // version's answer is the object's.
            if self.serves(f.kind, version).await? {
                return Ok(None);
            }
        }
        Ok(None)
    }

    /// Whether the cluster serves `kind` at `version` (its list answers).
    async fn serves(&self, kind: FenceKind, version: &str) -> Result<bool, KubeError> {
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &resource(kind, version));
        let params = ListParams::default().limit(1);
        match api.list(&params).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
            Err(e) => Err(api_err(&self.context, format!("list {}", kind.plural()))(e)),
        }
    }
}
