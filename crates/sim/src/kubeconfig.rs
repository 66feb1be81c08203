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
        json!({
            "apiVersion": "v1",
            "kind": "Config",
            "preferences": {},
            "clusters": self.entries.iter().map(Entry::cluster).collect::<Vec<_>>(),
            "users": self.entries.iter().map(Entry::user).collect::<Vec<_>>(),
            "contexts": self.entries.iter().map(Entry::context).collect::<Vec<_>>(),
            "current-context": self.entries.first().map(|e| e.name.clone()).unwrap_or_default(),
        })
    }

    /// The kubeconfig as YAML text.
    pub fn to_yaml(&self) -> String {
        serde_saphyr::to_string(&self.to_value()).unwrap_or_else(|_| self.to_value().to_string())
    }

    /// Writes the file with owner-only permissions (it holds tokens), atomically.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        write_private(path, &self.to_yaml())
    }
}

impl Entry {
    fn cluster(&self) -> Value {
        use base64::Engine;
        let ca = base64::engine::general_purpose::STANDARD.encode(&self.ca_pem);
        json!({ "name": self.name, "cluster": { "server": self.url, "certificate-authority-data": ca } })
    }

    fn user(&self) -> Value {
        json!({ "name": format!("{}-admin", self.name), "user": { "token": self.token } })
    }

    fn context(&self) -> Value {
        json!({ "name": self.name, "context": { "cluster": self.name, "user": format!("{}-admin", self.name), "namespace": "default" } })
    }
}

/// Adds (or replaces) the context `name` in the kubeconfig file at `path`, with its
/// cluster (the server at `url`, trusting the CA in `ca_pem`) and user (a bearer
/// token), keeping everything else the file holds; the file is replaced atomically, so
/// a reader sees it before or after, never half written.
pub fn add_context(
    path: &Path,
    name: &str,
    url: &str,
    token: &str,
    ca_pem: &str,
) -> std::io::Result<()> {
    let invalid = |why: String| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} is not a kubeconfig: {why}", path.display()),
        )
    };
    let text = std::fs::read_to_string(path)?;
    let mut doc: Value = serde_saphyr::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    if !doc.is_object() {
        return Err(invalid("not a mapping".into()));
    }
    let entry = Entry {
        name: name.into(),
        url: url.into(),
        token: token.into(),
        ca_pem: ca_pem.into(),
    };
    for (list, item) in [
        ("clusters", entry.cluster()),
        ("users", entry.user()),
        ("contexts", entry.context()),
    ] {
        let items = doc[list].as_array().cloned().unwrap_or_default();
        let mut items: Vec<Value> = items
            .into_iter()
            .filter(|i| i["name"] != item["name"])
            .collect();
        items.push(item);
        doc[list] = Value::Array(items);
    }
    let yaml = serde_saphyr::to_string(&doc).map_err(|e| invalid(e.to_string()))?;
    write_private(path, &yaml)
}

/// Writes `text` to a file beside `path` with owner-only permissions, then renames it
/// over `path`.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut file = std::fs::OpenOptions::new();
    file.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        file.mode(0o600);
    }
    let written = file.open(&tmp).and_then(|mut f| {
        f.write_all(text.as_bytes())?;
        f.sync_all()
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_context_is_added_beside_the_others_and_replaced_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        let mut k = Kubeconfig::default();
        k.add("blue", "https://127.0.0.1:1", "t-blue", "CA");
        k.add("green", "https://127.0.0.1:2", "t-green", "CA");
        k.write(&path).unwrap();
        add_context(&path, "teal", "https://127.0.0.1:3", "t-teal", "CA").unwrap();
        add_context(&path, "teal", "https://127.0.0.1:4", "t-teal2", "CA").unwrap();
        let doc: Value = serde_saphyr::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let names = |list: &str| -> Vec<String> {
            doc[list]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["name"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(names("contexts"), ["blue", "green", "teal"]);
        assert_eq!(names("users"), ["blue-admin", "green-admin", "teal-admin"]);
        assert_eq!(
            doc["clusters"][2]["cluster"]["server"],
            "https://127.0.0.1:4"
        );
        assert_eq!(doc["users"][2]["user"]["token"], "t-teal2");
        assert_eq!(doc["current-context"], "blue");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file left"
        );
        std::fs::write(&path, "- a list\n").unwrap();
        assert!(add_context(&path, "teal", "u", "t", "CA").is_err());
    }
}
