//! Writes kubeconfig files so kubectl, kube-rs and baton reach the emulated clusters the
//! way they reach real ones: one cluster, user (bearer token) and context per cluster.

use std::path::Path;

use serde_json::{Value, json};

#[derive(Debug, Clone)]
struct Entry {
    name: String,
    url: String,
    token: String,
    ca_pem: String,
}

/// A kubeconfig being built.
#[derive(Debug, Default, Clone)]
pub struct Kubeconfig {
    entries: Vec<Entry>,
}

impl Kubeconfig {
    /// Adds a context named `name` for the server at `url` with a bearer token, trusting
    /// the CA in `ca_pem`.
    pub fn add(&mut self, name: &str, url: &str, token: &str, ca_pem: &str) {
        self.entries.push(Entry {
            name: name.into(),
            url: url.into(),
            token: token.into(),
            ca_pem: ca_pem.into(),
        });
    }

    /// The kubeconfig as a JSON value.
    pub fn to_value(&self) -> Value {
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let clusters: Vec<Value> = self
            .entries
            .iter()
            .map(|e| json!({ "name": e.name, "cluster": { "server": e.url, "certificate-authority-data": b64(&e.ca_pem) } }))
            .collect();
        let users: Vec<Value> = self
            .entries
            .iter()
            .map(|e| json!({ "name": format!("{}-admin", e.name), "user": { "token": e.token } }))
            .collect();
        let contexts: Vec<Value> = self
            .entries
            .iter()
            .map(|e| json!({ "name": e.name, "context": { "cluster": e.name, "user": format!("{}-admin", e.name), "namespace": "default" } }))
            .collect();
        json!({
            "apiVersion": "v1",
            "kind": "Config",
            "preferences": {},
            "clusters": clusters,
            "users": users,
            "contexts": contexts,
            "current-context": self.entries.first().map(|e| e.name.clone()).unwrap_or_default(),
        })
    }

    /// The kubeconfig as YAML text.
    pub fn to_yaml(&self) -> String {
        serde_saphyr::to_string(&self.to_value()).unwrap_or_else(|_| self.to_value().to_string())
    }

    /// Writes the file with owner-only permissions (it holds tokens).
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, self.to_yaml())?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        }
        Ok(())
    }
}
