//! The API semantics of one cluster, independent of HTTP: create, get, list, update, patch,
//! delete, the `status`/`scale`/`binding` subresources, admission (namespace lifecycle,
//! default StorageClass), server-owned metadata, validation and dry-run.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::defaults;
use crate::error::{ApiError, FieldError, Target};
use crate::meta;
use crate::patch::{self, PatchType};
use crate::resources::ResourceDef;
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::Txn;
use crate::validate;

/// Which part of an object a write addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The object itself (status kept when the kind has a status subresource).
    Main,
    /// The `status` subresource (only status changes).
    Status,
    /// Both, for writes the server makes itself (`pods/binding` sets `spec.nodeName` and the
    /// PodScheduled condition in one write).
    Whole,
}

/// List options.
#[derive(Debug, Default, Clone)]
pub struct ListOptions {
    /// `labelSelector`.
    pub labels: LabelSelector,
    /// `fieldSelector`.
    pub fields: FieldSelector,
    /// `limit` (0 = all).
    pub limit: usize,
    /// `continue` token from a previous page.
    pub continue_token: Option<String>,
}

/// `DeleteOptions` the server honours.
#[derive(Debug, Default, Clone)]
pub struct DeleteOptions {
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<String>,
    /// `propagationPolicy`: Orphan, Background or Foreground.
    pub propagation: Option<String>,
    /// `dryRun=All`.
    pub dry_run: bool,
    /// `gracePeriodSeconds`.
    pub grace_period: Option<i64>,
}

fn target<'a>(def: &'a ResourceDef, name: &'a str) -> Target<'a> {
    Target {
        group: &def.group,
        plural: &def.plural,
        kind: &def.kind,
        name,
    }
}

impl Cluster {
    /// Creates an object. `namespace` is the URL's namespace ("" for cluster-scoped).
    pub fn create(
        &self,
        def: &ResourceDef,
        namespace: &str,
        mut obj: Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be an object",
            ));
        }
        check_type_meta(def, &mut obj)?;
        if !obj["metadata"].is_object() {
            obj["metadata"] = json!({});
        }
        if def.namespaced {
            match meta::namespace(&obj) {
                "" => obj["metadata"]["namespace"] = json!(namespace),
                ns if ns != namespace => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => {}
            }
        } else if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("namespace");
        }
        if meta::name(&obj).is_empty() {
            match obj["metadata"]["generateName"].as_str() {
                Some(prefix) if !prefix.is_empty() => {
                    let suffix: String = uuid::Uuid::new_v4()
                        .simple()
                        .to_string()
                        .chars()
                        .take(5)
                        .collect();
                    obj["metadata"]["name"] = json!(format!("{prefix}{suffix}"));
                }
                _ => {
                    return Err(ApiError::invalid(
                        target(def, ""),
                        vec![FieldError::required(
                            "metadata.name",
                            "name or generateName is required",
                        )],
                    ));
                }
            }
        }
        if !meta::resource_version(&obj).is_empty() {
            return Err(ApiError::bad_request(
                "resourceVersion should not be set on objects to be created",
            ));
        }
        // Server-owned fields: whatever the client sent is replaced.
        let md = obj["metadata"]
            .as_object_mut()
            .expect("made an object above");
        md.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        md.insert("creationTimestamp".into(), json!(meta::now()));
        md.remove("deletionTimestamp");
        md.remove("deletionGracePeriodSeconds");
        md.remove("managedFields");
        md.remove("selfLink");
        if def.has_spec() {
            md.insert("generation".into(), json!(1));
        } else {
            md.remove("generation");
        }
        defaults::apply(&def.kind, &mut obj);
        defaults::prepare_for_create(&def.kind, &mut obj);
        let name = meta::name(&obj).to_string();
        let errs = validate::validate_object(def, &obj);
        if !errs.is_empty() {
            return Err(ApiError::invalid(target(def, &name), errs));
        }
        self.store.txn(|t| {
            if def.namespaced {
                admit_namespace(t, namespace)?;
            }
            if t.get(&def.key(), namespace_of(def, namespace), &name)
                .is_some()
            {
                return Err(ApiError::already_exists(target(def, &name)));
            }
            self.admit_create(t, def, &mut obj)?;
            if dry_run {
                return Ok(obj);
            }
            let stored = t.put(&def.key(), obj);
            self.after_write(def, &stored);
            Ok((*stored).clone())
        })
    }

    /// Mutating admission on create (the plugins a default EKS API server runs that
    /// matter here).
    fn admit_create(
        &self,
        t: &Txn<'_>,
        def: &ResourceDef,
        obj: &mut Value,
    ) -> Result<(), ApiError> {
        match def.kind.as_str() {
            // DefaultStorageClass: a claim with no class at all (not "") gets the default.
            "PersistentVolumeClaim" if obj["spec"]["storageClassName"].is_null() => {
                let sc = crate::resources::GroupResource {
                    group: "storage.k8s.io".into(),
                    plural: "storageclasses".into(),
                };
                let default = t.list(&sc, None).into_iter().find(|c| {
                    c["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"]
                        .as_str()
                        == Some("true")
                });
                if let Some(c) = default {
                    obj["spec"]["storageClassName"] = json!(meta::name(&c));
                }
            }
            "Service"
                if obj["spec"]["clusterIP"].is_null() && obj["spec"]["type"] != "ExternalName" =>
            {
                let ip = self.allocate_service_ip();
                obj["spec"]["clusterIP"] = json!(ip);
                obj["spec"]["clusterIPs"] = json!([ip]);
            }
            "Pod" => {
                if obj["spec"]["serviceAccountName"].is_null() {
                    obj["spec"]["serviceAccountName"] = json!("default");
                }
                // The AWS Load Balancer Controller's pod webhook, where it is installed.
                if self
                    .def("elbv2.k8s.aws", "v1beta1", "targetgroupbindings")
                    .is_some()
                {
                    crate::controllers::inject_readiness_gates(t, obj);
                }
            }
            _ => {}
        }
        if def.kind == "Service" && def.group.is_empty() {
            allocate_node_ports(t, obj, None)
                .map_err(|errs| ApiError::invalid(target(def, meta::name(obj)), errs))?;
        }
        // StorageObjectInUseProtection.
        let protection = match def.kind.as_str() {
            "PersistentVolumeClaim" if def.group.is_empty() => Some("kubernetes.io/pvc-protection"),
            "PersistentVolume" if def.group.is_empty() => Some("kubernetes.io/pv-protection"),
            _ => None,
        };
        if let Some(f) = protection
            && self
                .storage_protection
                .load(std::sync::atomic::Ordering::Relaxed)
        {
            let mut fins = meta::finalizers(obj);
            if !fins.iter().any(|x| x == f) {
                fins.push(f.to_string());
                meta::set_finalizers(obj, fins);
            }
        }
        Ok(())
    }

    /// Reads one object.
    pub fn get(
        &self,
        def: &ResourceDef,
        namespace: &str,
        name: &str,
    ) -> Result<Arc<Value>, ApiError> {
        self.store
            .txn(|t| t.get(&def.key(), namespace_of(def, namespace), name))
            .ok_or_else(|| ApiError::not_found(target(def, name)))
    }

    /// Lists objects as a `<Kind>List`, paged by `limit`/`continue`.
    pub fn list(
        &self,
        def: &ResourceDef,
        namespace: Option<&str>,
        opts: &ListOptions,
    ) -> Result<ObjectList, ApiError> {
        let token = opts
            .continue_token
            .as_deref()
            .map(ContinueToken::decode)
            .transpose()?;
        if let Some(tok) = &token
            && tok.rv < self.store.oldest_rv()
        {
            return Err(ApiError::gone(
                "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
            ));
        }
        let after = token
            .as_ref()
            .map(|t| (t.namespace.clone(), t.name.clone()));
        let keep = |o: &Value| opts.labels.matches(o) && opts.fields.matches(o);
        let (rv, page) = self.store.txn(|t| {
            let page = t.page(&def.key(), namespace, after.as_ref(), opts.limit, &keep);
            (t.current_rv(), page)
        });
        let list_rv = token.as_ref().map_or(rv, |t| t.rv);
        let mut metadata = json!({ "resourceVersion": list_rv.to_string() });
        if page.more {
            let last = page
                .items
                .last()
                .expect("a page with more after it is full");
            let tok = ContinueToken {
                rv: list_rv,
                namespace: meta::namespace(last).to_string(),
                name: meta::name(last).to_string(),
            };
            metadata["continue"] = json!(tok.encode());
            // As the real server: exact only without selectors, omitted with them.
            if opts.labels.is_empty() && opts.fields.is_empty() {
                metadata["remainingItemCount"] = json!(page.remaining);
            }
        }
        Ok(ObjectList {
            kind: format!("{}List", def.kind),
            api_version: def.api_version(),
            metadata,
            items: page.items,
        })
    }

    /// Replaces an object (PUT), or its status.
    pub fn update(
        &self,
        def: &ResourceDef,
        namespace: &str,
        name: &str,
        mut obj: Value,
        part: Part,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        check_type_meta(def, &mut obj)?;
        let body_name = meta::name(&obj);
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        if def.namespaced && !meta::namespace(&obj).is_empty() && meta::namespace(&obj) != namespace
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        self.store.txn(|t| {
            let old = t
                .get(&def.key(), namespace_of(def, namespace), name)
                .ok_or_else(|| ApiError::not_found(target(def, name)))?;
            let rv = meta::resource_version(&obj).to_string();
            self.commit_update(
                t,
                def,
                &old,
                obj,
                part,
                Some(rv).filter(|r| !r.is_empty()),
                dry_run,
            )
        })
    }

    /// Patches an object (or its status) with a body of the given patch type.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &self,
        def: &ResourceDef,
        namespace: &str,
        name: &str,
        kind: PatchType,
        body: &[u8],
        part: Part,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let existing = self
            .store
            .txn(|t| t.get(&def.key(), namespace_of(def, namespace), name));
        let Some(_) = existing else {
            if kind == PatchType::Apply && part == Part::Main {
                // Server-side apply creates what does not exist.
                let mut obj = patch::parse_yaml_or_json(body)?;
                if meta::name(&obj).is_empty() {
                    obj["metadata"]["name"] = json!(name);
                }
                return self.create(def, namespace, obj, dry_run);
            }
            return Err(ApiError::not_found(target(def, name)));
        };
        self.store.txn(|t| {
            let old = t
                .get(&def.key(), namespace_of(def, namespace), name)
                .ok_or_else(|| ApiError::not_found(target(def, name)))?;
            let mut new = (*old).clone();
            patch::apply(kind, &mut new, body)?;
            // A patch that names a resourceVersion makes it a precondition.
            let rv = meta::resource_version(&new).to_string();
            let precondition = (rv != meta::resource_version(&old)).then_some(rv);
            if meta::name(&new) != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({}) does not match the name on the URL ({name})",
                    meta::name(&new)
                )));
            }
            self.commit_update(t, def, &old, new, part, precondition, dry_run)
        })
    }

    /// The write path shared by update, patch, status, scale and finalizer removal.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn commit_update(
        &self,
        t: &mut Txn<'_>,
        def: &ResourceDef,
        old: &Value,
        mut new: Value,
        part: Part,
        precondition_rv: Option<String>,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let name = meta::name(old).to_string();
        if let Some(rv) = &precondition_rv
            && rv != meta::resource_version(old)
        {
            return Err(ApiError::conflict_stale(target(def, &name)));
        }
        let new_uid = meta::uid(&new);
        if !new_uid.is_empty() && new_uid != meta::uid(old) {
            return Err(ApiError::conflict(
                target(def, &name),
                format!(
                    "Precondition failed: UID in precondition: {new_uid}, UID in object meta: {}",
                    meta::uid(old)
                ),
            ));
        }
        if part == Part::Status {
            let status = new["status"].clone();
            new = old.clone();
            new["status"] = status;
        } else if part == Part::Main && def.status_subresource {
            new["status"] = old["status"].clone();
            if old.get("status").is_none()
                && let Some(m) = new.as_object_mut()
            {
                m.remove("status");
            }
        }
        // Server-owned metadata survives any write.
        for key in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "namespace",
            "name",
        ] {
            match old["metadata"].get(key) {
                Some(v) => new["metadata"][key] = v.clone(),
                None => {
                    if let Some(m) = new["metadata"].as_object_mut() {
                        m.remove(key);
                    }
                }
            }
        }
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
        new["apiVersion"] = json!(def.api_version());
        new["kind"] = json!(def.kind);
        defaults::apply(&def.kind, &mut new);
        if def.kind == "Service" && def.group.is_empty() && part != Part::Status {
            allocate_node_ports(t, &mut new, Some(old))
                .map_err(|errs| ApiError::invalid(target(def, &name), errs))?;
        }
        if meta::is_deleting(old) {
            let added: Vec<String> = meta::finalizers(&new)
                .into_iter()
                .filter(|f| !meta::finalizers(old).contains(f))
                .collect();
            if !added.is_empty() {
                return Err(ApiError::invalid(
                    target(def, &name),
                    vec![FieldError::forbidden(
                        "metadata.finalizers",
                        format!(
                            "no new finalizers can be added if the object is being deleted, found new finalizers {added:?}"
                        ),
                    )],
                ));
            }
        }
        let mut errs = validate::validate_object(def, &new);
        errs.extend(validate::validate_update(def, old, &new));
        if !errs.is_empty() {
            return Err(ApiError::invalid(target(def, &name), errs));
        }
        if def.has_spec() && strip_meta_status(old) != strip_meta_status(&new) {
            let g = old["metadata"]["generation"].as_i64().unwrap_or(0);
            new["metadata"]["generation"] = json!(g + 1);
        }
        if &new == old {
            return Ok(new);
        }
        if dry_run {
            return Ok(new);
        }
        if meta::is_deleting(&new)
            && meta::finalizers(&new).is_empty()
            && !self.blocks_removal(def, &new)
        {
            let removed = t
                .remove(&def.key(), meta::namespace(&new), &name)
                .expect("the object was read in this transaction");
            self.after_remove(t, def, &removed);
            self.collect_garbage(t);
            let mut out = new;
            out["metadata"]["resourceVersion"] = removed["metadata"]["resourceVersion"].clone();
            return Ok(out);
        }
        let stored = t.put(&def.key(), new);
        self.after_write(def, &stored);
        // Only a deleting object's finalizers (orphan, foregroundDeletion) give the
        // collector work; a live object's finalizers do not change what it would find.
        if meta::is_deleting(&stored) && meta::finalizers(old) != meta::finalizers(&stored) {
            self.collect_garbage(t);
        }
        Ok((*stored).clone())
    }

    /// Deletes an object: removed at once, or marked with deletionTimestamp while
    /// finalizers (or a kubelet, for scheduled pods) hold it.
    pub fn delete(
        &self,
        def: &ResourceDef,
        namespace: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Value, ApiError> {
        self.store
            .txn(|t| self.delete_in(t, def, namespace, name, opts))
    }

    pub(crate) fn delete_in(
        &self,
        t: &mut Txn<'_>,
        def: &ResourceDef,
        namespace: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Value, ApiError> {
        let ns = namespace_of(def, namespace);
        let old = t
            .get(&def.key(), ns, name)
            .ok_or_else(|| ApiError::not_found(target(def, name)))?;
        if let Some(uid) = &opts.uid
            && uid != meta::uid(&old)
        {
            return Err(ApiError::conflict(
                target(def, name),
                format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta::uid(&old)
                ),
            ));
        }
        if let Some(rv) = &opts.resource_version
            && rv != meta::resource_version(&old)
        {
            return Err(ApiError::conflict(
                target(def, name),
                format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    meta::resource_version(&old)
                ),
            ));
        }
        let mut obj = (*old).clone();
        let mut finalizers = meta::finalizers(&obj);
        match opts.propagation.as_deref() {
            None | Some("Background") => {}
            Some("Foreground") => {
                if !finalizers.iter().any(|f| f == "foregroundDeletion") {
                    finalizers.push("foregroundDeletion".into());
                }
            }
            Some("Orphan") => {
                if !finalizers.iter().any(|f| f == "orphan") {
                    finalizers.push("orphan".into());
                }
            }
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "DeleteOptions.propagationPolicy: Unsupported value: \"{other}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
                )));
            }
        }
        let graceful_pod = def.kind == "Pod"
            && self
                .graceful_pod_deletion
                .load(std::sync::atomic::Ordering::Relaxed)
            && !obj["spec"]["nodeName"]
                .as_str()
                .unwrap_or_default()
                .is_empty()
            && opts.grace_period != Some(0)
            && obj["status"]["phase"] != "Succeeded"
            && obj["status"]["phase"] != "Failed";
        let hold = !finalizers.is_empty() || def.kind == "Namespace" || graceful_pod;
        if hold {
            if !meta::is_deleting(&obj) {
                obj["metadata"]["deletionTimestamp"] = json!(meta::now());
                let grace = if graceful_pod {
                    opts.grace_period
                        .or(obj["spec"]["terminationGracePeriodSeconds"].as_i64())
                        .unwrap_or(30)
                } else {
                    0
                };
                obj["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
                if def.has_spec() {
                    let g = obj["metadata"]["generation"].as_i64().unwrap_or(0);
                    obj["metadata"]["generation"] = json!(g + 1);
                }
            }
            meta::set_finalizers(&mut obj, finalizers);
            if def.kind == "Namespace" {
                obj["status"]["phase"] = json!("Terminating");
            }
            if opts.dry_run {
                return Ok(obj);
            }
            if *old == obj {
                return Ok(obj);
            }
            let stored = t.put(&def.key(), obj);
            self.collect_garbage(t);
            // The namespace may be gone already if it was empty.
            let now = t
                .get(&def.key(), ns, name)
                .map_or_else(|| (*stored).clone(), |o| (*o).clone());
            return Ok(now);
        }
        if opts.dry_run {
            return Ok(obj);
        }
        let removed = t
            .remove(&def.key(), ns, name)
            .expect("read in this transaction");
        self.after_remove(t, def, &removed);
        self.collect_garbage(t);
        Ok((*removed).clone())
    }

    /// Deletes every object a selector matches.
    pub fn delete_collection(
        &self,
        def: &ResourceDef,
        namespace: Option<&str>,
        list: &ListOptions,
        opts: &DeleteOptions,
    ) -> Result<Value, ApiError> {
        self.store.txn(|t| {
            let victims: Vec<Arc<Value>> = t
                .list(&def.key(), namespace)
                .into_iter()
                .filter(|o| list.labels.matches(o) && list.fields.matches(o))
                .collect();
            let mut items = Vec::new();
            for v in victims {
                match self.delete_in(t, def, meta::namespace(&v), meta::name(&v), opts) {
                    Ok(o) => items.push(o),
                    Err(e) if e.code == 404 => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(json!({
                "kind": format!("{}List", def.kind),
                "apiVersion": def.api_version(),
                "metadata": { "resourceVersion": t.current_rv().to_string() },
                "items": items,
            }))
        })
    }

    /// Whether something other than finalizers keeps a marked object (a namespace with
    /// content or its own `spec.finalizers`).
    pub(crate) fn blocks_removal(&self, def: &ResourceDef, obj: &Value) -> bool {
        def.kind == "Namespace"
            && obj["spec"]["finalizers"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
    }

    /// Side effects of a stored write: CRDs register their kinds.
    fn after_write(&self, def: &ResourceDef, obj: &Value) {
        if def.kind == "CustomResourceDefinition" && def.group == "apiextensions.k8s.io" {
            crate::crd::register(self, obj);
        }
    }

    pub(crate) fn after_remove(&self, t: &mut Txn<'_>, def: &ResourceDef, obj: &Value) {
        if def.kind == "CustomResourceDefinition" && def.group == "apiextensions.k8s.io" {
            crate::crd::unregister(self, t, obj);
        }
    }

    /// `pods/binding`: assigns a pod to a node, once.
    pub fn bind_pod(
        &self,
        namespace: &str,
        name: &str,
        binding: &Value,
    ) -> Result<Value, ApiError> {
        let def = self.def("", "v1", "pods").expect("pods is built in");
        let node = binding["target"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if node.is_empty() {
            return Err(ApiError::invalid(
                target(&def, name),
                vec![FieldError::required("target.name", "")],
            ));
        }
        self.store.txn(|t| {
            let old = t.get(&def.key(), namespace, name).ok_or_else(|| ApiError::not_found(target(&def, name)))?;
            let current = old["spec"]["nodeName"].as_str().unwrap_or_default();
            if !current.is_empty() {
                return Err(ApiError::conflict(
                    target(&def, name),
                    format!("pod {name} is already assigned to node \"{current}\""),
                ));
            }
            let mut new = (*old).clone();
            new["spec"]["nodeName"] = json!(node);
            // As the real binding storage does: the PodScheduled condition is set in the same
            // write, so no later status patch can race the kubelet's conditions.
            let scheduled = json!({ "type": "PodScheduled", "status": "True", "lastTransitionTime": crate::meta::now() });
            match new["status"]["conditions"].as_array_mut() {
                Some(cs) => {
                    cs.retain(|c| c["type"] != "PodScheduled");
                    cs.push(scheduled);
                }
                None => new["status"]["conditions"] = json!([scheduled]),
            }
            self.commit_update(t, &def, &old, new, Part::Whole, None, false)?;
            Ok(json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201 }))
        })
    }

    /// The `scale` subresource of a workload, as an `autoscaling/v1` Scale.
    pub fn get_scale(
        &self,
        def: &ResourceDef,
        namespace: &str,
        name: &str,
    ) -> Result<Value, ApiError> {
        let obj = self.get(def, namespace, name)?;
        to_scale(def, &obj)
    }

    /// Writes the `scale` subresource: PUT (whole Scale) or PATCH.
    pub fn write_scale(
        &self,
        def: &ResourceDef,
        namespace: &str,
        name: &str,
        change: ScaleChange<'_>,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        self.store.txn(|t| {
            let old = t
                .get(&def.key(), namespace, name)
                .ok_or_else(|| ApiError::not_found(target(def, name)))?;
            let mut scale = to_scale(def, &old)?;
            match change {
                ScaleChange::Replace(body) => scale = body.clone(),
                ScaleChange::Patch(kind, body) => patch::apply(kind, &mut scale, body)?,
            }
            let replicas = scale["spec"]["replicas"].as_i64().unwrap_or(0);
            if replicas < 0 {
                return Err(ApiError::invalid(
                    Target {
                        group: "autoscaling",
                        plural: "scale",
                        kind: "Scale",
                        name,
                    },
                    vec![FieldError::invalid(
                        "spec.replicas",
                        replicas.to_string(),
                        "must be greater than or equal to 0",
                    )],
                ));
            }
            let rv = meta::resource_version(&scale).to_string();
            let precondition = (!rv.is_empty() && rv != meta::resource_version(&old)).then_some(rv);
            let mut new = (*old).clone();
            let pointer = def
                .scale
                .as_ref()
                .map_or("/spec/replicas", |s| s.spec_replicas.as_str());
            set_pointer(&mut new, pointer, json!(replicas));
            let updated =
                self.commit_update(t, def, &old, new, Part::Main, precondition, dry_run)?;
            to_scale(def, &updated)
        })
    }
}

/// A list response: the stored objects themselves (shared, not copied) and the list
/// metadata; serialized straight into the response body.
#[derive(Debug, Clone)]
pub struct ObjectList {
    /// `<Kind>List`.
    pub kind: String,
    /// The group/version.
    pub api_version: String,
    /// `resourceVersion`, `continue`, `remainingItemCount`.
    pub metadata: Value,
    /// The objects.
    pub items: Vec<Arc<Value>>,
}

impl ObjectList {
    /// The list as JSON bytes, without copying the objects into a new value first.
    pub fn to_json(&self) -> Vec<u8> {
        #[derive(serde::Serialize)]
        struct Out<'a> {
            kind: &'a str,
            #[serde(rename = "apiVersion")]
            api_version: &'a str,
            metadata: &'a Value,
            items: Vec<&'a Value>,
        }
        serde_json::to_vec(&Out {
            kind: &self.kind,
            api_version: &self.api_version,
            metadata: &self.metadata,
            items: self.items.iter().map(|v| v.as_ref()).collect(),
        })
        .unwrap_or_default()
    }
}

/// A change to a `scale` subresource.
#[derive(Debug, Clone, Copy)]
pub enum ScaleChange<'a> {
    /// PUT of a whole Scale.
    Replace(&'a Value),
    /// PATCH of the Scale.
    Patch(PatchType, &'a [u8]),
}

fn to_scale(def: &ResourceDef, obj: &Value) -> Result<Value, ApiError> {
    let Some(s) = &def.scale else {
        return Err(ApiError::no_route());
    };
    let selector = s
        .label_selector
        .as_deref()
        .and_then(|p| obj.pointer(p))
        .map(|sel| LabelSelector::from_object(sel).to_query())
        .unwrap_or_default();
    let md = &obj["metadata"];
    Ok(json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": md["name"], "namespace": md["namespace"], "uid": md["uid"],
            "resourceVersion": md["resourceVersion"], "creationTimestamp": md["creationTimestamp"],
        },
        "spec": { "replicas": obj.pointer(&s.spec_replicas).cloned().unwrap_or(json!(0)) },
        "status": {
            "replicas": obj.pointer(&s.status_replicas).cloned().unwrap_or(json!(0)),
            "selector": selector,
        },
    }))
}

fn set_pointer(obj: &mut Value, pointer: &str, v: Value) {
    let mut cur = obj;
    let segs: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    for (i, s) in segs.iter().enumerate() {
        if i + 1 == segs.len() {
            cur[*s] = v;
            return;
        }
        if !cur[*s].is_object() {
            cur[*s] = json!({});
        }
        cur = &mut cur[*s];
    }
}

fn namespace_of<'a>(def: &ResourceDef, namespace: &'a str) -> &'a str {
    if def.namespaced { namespace } else { "" }
}

/// Checks `apiVersion`/`kind` in a body against the URL's resource and fills them in.
fn check_type_meta(def: &ResourceDef, obj: &mut Value) -> Result<(), ApiError> {
    let want = def.api_version();
    match obj["apiVersion"].as_str() {
        Some(v) if v != want => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({want})"
            )));
        }
        _ => obj["apiVersion"] = json!(want),
    }
    match obj["kind"].as_str() {
        Some(k) if k != def.kind => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                def.kind
            )));
        }
        _ => obj["kind"] = json!(def.kind),
    }
    Ok(())
}

/// NamespaceLifecycle admission: the namespace must exist and not be terminating.
/// The NodePort range of the API server (`--service-node-port-range`).
const NODE_PORTS: std::ops::RangeInclusive<i64> = 30000..=32767;

/// A Service's node ports, as the API server's allocator and validation give them: a
/// NodePort or LoadBalancer Service's port without one gets a free port of the range (on
/// update, the one it had), one given must be in the range and free; a ClusterIP Service
/// may name none (those it kept from a NodePort type are dropped, as the server does when
/// the type changes).
fn allocate_node_ports(
    t: &Txn<'_>,
    svc: &mut Value,
    old: Option<&Value>,
) -> Result<(), Vec<FieldError>> {
    let wants = matches!(
        svc["spec"]["type"].as_str(),
        Some("NodePort" | "LoadBalancer")
    ) && svc["spec"]["allocateLoadBalancerNodePorts"] != false;
    let old_port = |port: &Value| -> Option<i64> {
        old?["spec"]["ports"]
            .as_array()?
            .iter()
            .find(|p| p["port"] == port["port"] && p["protocol"] == port["protocol"])
            .and_then(|p| p["nodePort"].as_i64())
    };
    let ty = svc["spec"]["type"]
        .as_str()
        .unwrap_or("ClusterIP")
        .to_string();
    let uid = meta::uid(svc).to_string();
    let mut used: std::collections::BTreeSet<i64> = t
        .list(
            &crate::resources::GroupResource {
                group: String::new(),
                plural: "services".into(),
            },
            None,
        )
        .iter()
        .filter(|o| uid.is_empty() || meta::uid(o) != uid)
        .flat_map(|o| {
            o["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["nodePort"].as_i64())
                .collect::<Vec<_>>()
        })
        .collect();
    let mut errs = Vec::new();
    let Some(ports) = svc["spec"]["ports"].as_array_mut() else {
        return Ok(());
    };
    for (i, port) in ports.iter_mut().enumerate() {
        let field = format!("spec.ports[{i}].nodePort");
        let given = port["nodePort"].as_i64().filter(|n| *n != 0);
        if !wants {
            if given.is_some() && given == old_port(port) {
                port.as_object_mut().map(|m| m.remove("nodePort"));
            } else if given.is_some() {
                errs.push(FieldError::forbidden(
                    field,
                    format!("may not be used when `type` is '{ty}'"),
                ));
            }
            continue;
        }
        let n = match given.or_else(|| old_port(port)) {
            Some(n) if !NODE_PORTS.contains(&n) => {
                errs.push(FieldError::invalid(
                    field,
                    n.to_string(),
                    "provided port is not in the valid range. The range of valid ports is 30000-32767",
                ));
                continue;
            }
            Some(n) if used.contains(&n) => {
                errs.push(FieldError::invalid(
                    field,
                    n.to_string(),
                    "provided port is already allocated",
                ));
                continue;
            }
            Some(n) => n,
            None => {
                // At random, as the allocator does; the next free one after a taken pick.
                let span = NODE_PORTS.end() - NODE_PORTS.start() + 1;
                let start = rand::random_range(0..span);
                match (0..span)
                    .map(|k| NODE_PORTS.start() + (start + k) % span)
                    .find(|n| !used.contains(n))
                {
                    Some(n) => n,
                    None => {
                        errs.push(FieldError::invalid(field, "0", "range is full"));
                        continue;
                    }
                }
            }
        };
        used.insert(n);
        port["nodePort"] = json!(n);
    }
    if errs.is_empty() { Ok(()) } else { Err(errs) }
}

fn admit_namespace(t: &Txn<'_>, namespace: &str) -> Result<(), ApiError> {
    let gr = crate::resources::GroupResource {
        group: String::new(),
        plural: "namespaces".into(),
    };
    match t.get(&gr, "", namespace) {
        None => Err(ApiError::not_found(Target {
            group: "",
            plural: "namespaces",
            kind: "Namespace",
            name: namespace,
        })),
        Some(ns) if meta::is_deleting(&ns) => Err(ApiError::forbidden(format!(
            "unable to create new content in namespace {namespace} because it is being terminated"
        ))),
        Some(_) => Ok(()),
    }
}

fn strip_meta_status(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    v
}

/// Where a paged list continues: the list's resourceVersion and the last key served.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ContinueToken {
    rv: u64,
    namespace: String,
    name: String,
}

impl ContinueToken {
    fn encode(&self) -> String {
        use base64::Engine;
        let raw =
            json!({ "v": "baton.sim/1", "rv": self.rv, "ns": self.namespace, "start": self.name })
                .to_string();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    }

    fn decode(s: &str) -> Result<Self, ApiError> {
        use base64::Engine;
        let bad = || {
            ApiError::bad_request(
                "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
            )
        };
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| bad())?;
        let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
        Ok(Self {
            rv: v["rv"].as_u64().ok_or_else(bad)?,
            namespace: v["ns"].as_str().ok_or_else(bad)?.to_string(),
            name: v["start"].as_str().ok_or_else(bad)?.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::ClusterSpec;

    fn service(c: &Cluster, name: &str, spec: Value) -> Result<Value, ApiError> {
        let def = c.def("", "v1", "services").unwrap();
        c.create(
            &def,
            "default",
            json!({ "metadata": { "name": name }, "spec": spec }),
            false,
        )
    }

    fn node_port(svc: &Value) -> i64 {
        svc["spec"]["ports"][0]["nodePort"].as_i64().unwrap()
    }

    #[test]
    fn node_ports_are_allocated_free_in_range_kept_on_update_and_dropped_for_cluster_ip() {
        let c = Cluster::new(ClusterSpec::new("t", "v1.31.0"));
        let port = |p: Value| json!({ "type": "NodePort", "ports": [p] });
        let a = service(&c, "a", port(json!({ "port": 80 }))).unwrap();
        let n = node_port(&a);
        assert!(NODE_PORTS.contains(&n), "{n}");
        assert!(
            service(
                &c,
                "lb",
                json!({ "type": "LoadBalancer", "ports": [{ "port": 80 }] })
            )
            .is_ok_and(|s| node_port(&s) != n),
            "a LoadBalancer Service gets one too, another"
        );
        let taken = service(&c, "b", port(json!({ "port": 80, "nodePort": n }))).unwrap_err();
        assert_eq!(taken.code, 422);
        assert!(
            taken.message.contains("provided port is already allocated"),
            "{}",
            taken.message
        );
        let out = service(&c, "c", port(json!({ "port": 80, "nodePort": 80 }))).unwrap_err();
        assert!(
            out.message
                .contains("The range of valid ports is 30000-32767")
        );
        let cip = service(
            &c,
            "d",
            json!({ "ports": [{ "port": 80, "nodePort": 30500 }] }),
        );
        assert!(
            cip.unwrap_err()
                .message
                .contains("may not be used when `type` is 'ClusterIP'")
        );
        assert!(
            service(&c, "e", json!({ "ports": [{ "port": 80 }] })).unwrap()["spec"]["ports"][0]
                .get("nodePort")
                .is_none()
        );

        // An update that leaves the node port out keeps it; one to ClusterIP drops it.
        let def = c.def("", "v1", "services").unwrap();
        let mut replaced = a.clone();
        replaced["spec"]["ports"] = json!([{ "port": 80, "protocol": "TCP" }]);
        let kept = c
            .update(&def, "default", "a", replaced, Part::Main, false)
            .unwrap();
        assert_eq!(node_port(&kept), n);
        let mut to_cluster_ip = kept.clone();
        to_cluster_ip["spec"]["type"] = json!("ClusterIP");
        let dropped = c
            .update(&def, "default", "a", to_cluster_ip, Part::Main, false)
            .unwrap();
        assert!(dropped["spec"]["ports"][0].get("nodePort").is_none());
        assert!(
            service(&c, "f", port(json!({ "port": 80, "nodePort": n }))).is_ok(),
            "a dropped node port is free again"
        );
    }
}
