//! A minimal OpenAPI v3 index: for every served kind, its PATCH operation tagged with
//! `x-kubernetes-group-version-kind` and the `fieldValidation` query parameter. kubectl
//! reads this to decide that validation happens on the server (so it does not need the
//! full schema, which this emulator does not publish); strategic-merge patches are then
//! built from kubectl's compiled-in types.
//!
//! `/openapi/v2` answers an empty OpenAPI v2 document (protobuf, which is zero bytes for
//! an empty message). kubectl up to 1.28 reads v2 for apply: to check whether the server
//! validates fields (it then validates on the client, and skips kinds the document does
//! not describe) and for strategic-merge metadata (it then uses its compiled-in types).
//! A 404 there made `kubectl apply` fail against a 1.27 cluster, whose matching kubectl
//! (the gcloud wrapper picks the client by server version) is 1.27.

use serde_json::{Map, Value, json};

use crate::cluster::Cluster;

/// Where the OpenAPI v2 document is served.
pub const V2_PATH: &str = "/openapi/v2";
/// Its media type, as the real server labels it (client-go asks for `…spec.v2@v1.0+protobuf`,
/// which Go's media-type parser refuses in a response).
pub const V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// The OpenAPI v2 document: an empty `openapi.v2.Document` (no definitions, no paths),
/// whose protobuf encoding is empty.
pub fn v2_document() -> Vec<u8> {
    Vec::new()
}

/// The OpenAPI document at `path`, if it is one.
pub fn document(cluster: &Cluster, path: &str) -> Option<Value> {
    let rest = path.strip_prefix("/openapi/v3")?;
    let reg = cluster.registry();
    let mut gvs: Vec<(String, String)> = reg
        .all()
        .map(|d| (d.group.clone(), d.version.clone()))
        .collect();
    gvs.dedup();
    let url_of = |g: &str, v: &str| {
        if g.is_empty() {
            format!("api/{v}")
        } else {
            format!("apis/{g}/{v}")
        }
    };
    if rest.is_empty() || rest == "/" {
        let mut paths = Map::new();
        for (g, v) in &gvs {
            let url = url_of(g, v);
            paths.insert(url.clone(), json!({ "serverRelativeURL": format!("/openapi/v3/{url}?hash={}", hash(cluster, &url)) }));
        }
        return Some(json!({ "paths": paths }));
    }
    let wanted = rest.trim_start_matches('/');
    let (g, v) = gvs.iter().find(|(g, v)| url_of(g, v) == wanted)?;
    let mut paths = Map::new();
    for d in reg.in_group_version(g, v) {
        let prefix = if d.group.is_empty() {
            format!("/api/{}", d.version)
        } else {
            format!("/apis/{}/{}", d.group, d.version)
        };
        let item = if d.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", d.plural)
        } else {
            format!("{prefix}/{}/{{name}}", d.plural)
        };
        paths.insert(
            item,
            json!({
                "patch": {
                    "operationId": format!("patch{}", d.kind),
                    "x-kubernetes-action": "patch",
                    "x-kubernetes-group-version-kind": { "group": d.group, "version": d.version, "kind": d.kind },
                    "parameters": [
                        { "name": "dryRun", "in": "query", "schema": { "type": "string", "uniqueItems": true } },
                        { "name": "fieldManager", "in": "query", "schema": { "type": "string", "uniqueItems": true } },
                        { "name": "fieldValidation", "in": "query", "schema": { "type": "string", "uniqueItems": true } },
                    ],
                    "responses": { "200": { "description": "OK" } },
                }
            }),
        );
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes", "version": cluster.spec.git_version },
        "paths": paths,
        "components": { "schemas": {} },
    }))
}

/// A stable per-document hash, so clients may cache by URL.
fn hash(cluster: &Cluster, url: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in cluster.spec.git_version.bytes().chain(url.bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x100000001b3);
    }
    format!("{h:016X}")
}
