//! Helm v3 release records, decoded: a Secret of type `helm.sh/release.v1` whose
//! `data.release` holds base64(gzip(JSON of the release)) — and the Secret's own base64
//! around that, which the API's JSON carries and the client decodes. The release's
//! `manifest` is the rendered YAML Helm applied; it is what `helm upgrade` must read back,
//! so a removed API in it breaks the release on a newer cluster.

use std::io::Read;

use base64::Engine as _;
use baton_core::preflight::{ApiSource, ApiUse};
use serde::Deserialize;

/// The Secret type Helm v3 stores releases as.
pub const RELEASE_TYPE: &str = "helm.sh/release.v1";

/// A release, as far as baton reads it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Release {
    /// Release name.
    pub name: String,
    /// Namespace it was installed in.
    #[serde(default)]
    pub namespace: String,
    /// Revision.
    pub version: u32,
    /// The rendered manifests (multi-document YAML).
    #[serde(default)]
    pub manifest: String,
    /// `info.status` (deployed, superseded, failed, …).
    #[serde(default)]
    pub info: Info,
}

/// `info` of a release.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Info {
    /// deployed, superseded, failed, …
    #[serde(default)]
    pub status: String,
}

/// Failed to decode a release record.
#[derive(Debug, thiserror::Error)]
pub enum HelmError {
    /// `data.release` is not base64.
    #[error("failed to decode the release's base64: {0}")]
    Base64(#[from] base64::DecodeError),
    /// The gzip stream is corrupt.
    #[error("failed to gunzip the release: {0}")]
    Gzip(#[from] std::io::Error),
    /// The JSON is not a release.
    #[error("failed to parse the release's JSON: {0}")]
    Json(#[from] serde_json::Error),
}

const GZIP_MAGIC: [u8; 3] = [0x1f, 0x8b, 0x08];

/// Decodes `data.release` (already un-base64'd once, as the Secret's data arrives):
/// base64, then gunzip when the gzip magic is there (Helm v3 always compresses; older
/// records may not be), then JSON.
pub fn decode_release(data: &[u8]) -> Result<Release, HelmError> {
    let text: Vec<u8> = data
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let raw = base64::engine::general_purpose::STANDARD.decode(text)?;
    let json = if raw.starts_with(&GZIP_MAGIC) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw.as_slice()).read_to_end(&mut out)?;
        out
    } else {
        raw
    };
    Ok(serde_json::from_slice(&json)?)
}

/// Encodes a release as Helm v3 does (for tests and the emulator's fixtures): JSON,
/// gzip, base64. The Secret's data then carries this string (base64'd once more).
pub fn encode_release(release_json: &serde_json::Value) -> String {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(release_json.to_string().as_bytes())
        .expect("writing to memory");
    base64::engine::general_purpose::STANDARD.encode(gz.finish().expect("writing to memory"))
}

/// Every object's apiVersion and kind in a multi-document YAML (or JSON) text. A
/// document that is not a mapping with both is skipped; text that is not YAML at all is
/// an error naming why.
pub fn api_uses(
    text: &str,
    default_namespace: &str,
    source: &ApiSource,
) -> Result<Vec<ApiUse>, String> {
    let docs: Vec<serde_json::Value> = if text.trim_start().starts_with('{') {
        vec![serde_json::from_str(text).map_err(|e| e.to_string())?]
    } else {
        serde_saphyr::from_multiple(text).map_err(|e| e.to_string())?
    };
    let mut out = Vec::new();
    let mut push = |d: &serde_json::Value| {
        let (Some(api_version), Some(kind)) = (d["apiVersion"].as_str(), d["kind"].as_str()) else {
            return;
        };
        out.push(ApiUse {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
            namespace: d["metadata"]["namespace"]
                .as_str()
                .unwrap_or(default_namespace)
                .to_string(),
            name: d["metadata"]["name"].as_str().unwrap_or("").to_string(),
            source: source.clone(),
        });
    };
    for d in &docs {
        // A `kind: List` (kubectl get -o yaml) holds its objects in items.
        match d["items"].as_array() {
            Some(items) if d["kind"].as_str().is_some_and(|k| k.ends_with("List")) => {
                items.iter().for_each(&mut push)
            }
            _ => push(d),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_release_round_trips_through_helms_encoding() {
        let release = json!({
            "name": "shop", "namespace": "web", "version": 3,
            "info": { "status": "deployed" },
            "manifest": "---\n# Source: shop/templates/pdb.yaml\napiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata:\n  name: shop\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: shop\n  namespace: web\n"
        });
        let encoded = encode_release(&release);
        // What Helm stores starts with gzip's magic once decoded: "H4sI" in base64.
        assert!(encoded.starts_with("H4sI"), "{encoded}");
        let r = decode_release(encoded.as_bytes()).unwrap();
        assert_eq!((r.name.as_str(), r.version), ("shop", 3));
        assert_eq!(r.info.status, "deployed");
        let uses = api_uses(
            &r.manifest,
            &r.namespace,
            &ApiSource::Helm {
                release: r.name.clone(),
                revision: r.version,
            },
        )
        .unwrap();
        assert_eq!(uses.len(), 2);
        assert_eq!(
            (
                uses[0].api_version.as_str(),
                uses[0].kind.as_str(),
                uses[0].namespace.as_str()
            ),
            ("policy/v1beta1", "PodDisruptionBudget", "web")
        );
    }

    #[test]
    fn corrupt_records_fail_with_the_reason() {
        assert!(matches!(decode_release(b"%%%"), Err(HelmError::Base64(_))));
        let not_gzip_json = base64::engine::general_purpose::STANDARD.encode(b"not json");
        assert!(matches!(
            decode_release(not_gzip_json.as_bytes()),
            Err(HelmError::Json(_))
        ));
    }

    #[test]
    fn lists_and_json_documents_are_read() {
        let list = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: extensions/v1beta1\n  kind: Ingress\n  metadata: {name: a}\n";
        let src = ApiSource::File { path: "x".into() };
        let uses = api_uses(list, "", &src).unwrap();
        assert_eq!(uses[0].kind, "Ingress");
        let j = r#"{"apiVersion":"batch/v1beta1","kind":"CronJob","metadata":{"name":"c"}}"#;
        assert_eq!(
            api_uses(j, "", &src).unwrap()[0].api_version,
            "batch/v1beta1"
        );
        assert!(api_uses("a: [unclosed", "", &src).is_err());
    }
}
