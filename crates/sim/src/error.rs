//! API errors as the real kube-apiserver reports them: a `metav1.Status` body with the
//! HTTP code, `reason` and `details` clients branch on (kube-rs' `ErrorResponse`,
//! client-go's `errors.IsNotFound`/`IsConflict`, kubectl's "Error from server (…)").

use serde_json::{Value, json};

/// One failed API request, carried as the `Status` object the server answers with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{reason} ({code}): {message}")]
pub struct ApiError {
    /// HTTP status code, also `Status.code`.
    pub code: u16,
    /// `Status.reason`, a machine-readable CamelCase word (`NotFound`, `Conflict`, …).
    pub reason: &'static str,
    /// `Status.message`, worded like the real server's.
    pub message: String,
    /// `Status.details` (name, group, kind, causes), when the error is about one object.
    pub details: Option<Value>,
}

/// Where an error points: the resource (plural, with group) and the object's name.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// API group, empty for core.
    pub group: &'a str,
    /// Resource plural as in URLs (`persistentvolumeclaims`).
    pub plural: &'a str,
    /// Kind (`PersistentVolumeClaim`), used in Invalid messages.
    pub kind: &'a str,
    /// Object name.
    pub name: &'a str,
}

impl Target<'_> {
    /// `pods "db-0"` or `statefulsets.apps "db"`, as the server names an object in messages.
    fn qualified(&self) -> String {
        if self.group.is_empty() {
            format!("{} \"{}\"", self.plural, self.name)
        } else {
            format!("{}.{} \"{}\"", self.plural, self.group, self.name)
        }
    }

    fn details(&self) -> Value {
        let mut d = json!({ "name": self.name, "kind": self.plural });
        if !self.group.is_empty() {
            d["group"] = json!(self.group);
        }
        d
    }
}

/// One field-level cause of an `Invalid` error.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// `FieldValueInvalid`, `FieldValueForbidden`, `FieldValueRequired`, …
    pub kind: FieldErrorKind,
    /// Dotted path (`spec.persistentvolumesource`).
    pub field: String,
    /// The detail after the kind's own wording.
    pub detail: String,
    /// The offending value, when the message shows it.
    pub value: Option<String>,
}

/// The field error types of `k8s.io/apimachinery/pkg/util/validation/field`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldErrorKind {
    /// The value is not allowed.
    Invalid,
    /// The field may not be changed or set.
    Forbidden,
    /// The field must be set.
    Required,
    /// The value is not one of the supported ones.
    NotSupported,
    /// The value is a duplicate.
    Duplicate,
}

impl FieldError {
    /// A `FieldValueInvalid` cause.
    pub fn invalid(
        field: impl Into<String>,
        value: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            kind: FieldErrorKind::Invalid,
            field: field.into(),
            detail: detail.into(),
            value: Some(value.into()),
        }
    }

    /// A `FieldValueForbidden` cause.
    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            kind: FieldErrorKind::Forbidden,
            field: field.into(),
            detail: detail.into(),
            value: None,
        }
    }

    /// A `FieldValueRequired` cause.
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            kind: FieldErrorKind::Required,
            field: field.into(),
            detail: detail.into(),
            value: None,
        }
    }

    /// A `FieldValueNotSupported` cause.
    pub fn not_supported(
        field: impl Into<String>,
        value: impl Into<String>,
        supported: &[&str],
    ) -> Self {
        let list = supported
            .iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(", ");
        Self {
            kind: FieldErrorKind::NotSupported,
            field: field.into(),
            detail: format!("supported values: {list}"),
            value: Some(value.into()),
        }
    }

    /// A `FieldValueDuplicate` cause.
    pub fn duplicate(field: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            kind: FieldErrorKind::Duplicate,
            field: field.into(),
            detail: String::new(),
            value: Some(value.into()),
        }
    }

    fn reason(&self) -> &'static str {
        match self.kind {
            FieldErrorKind::Invalid => "FieldValueInvalid",
            FieldErrorKind::Forbidden => "FieldValueForbidden",
            FieldErrorKind::Required => "FieldValueRequired",
            FieldErrorKind::NotSupported => "FieldValueNotSupported",
            FieldErrorKind::Duplicate => "FieldValueDuplicate",
        }
    }

    /// The cause as `field.Error.Error()` prints it: `field: detail`.
    pub fn message(&self) -> String {
        format!("{}: {}", self.field, self.body())
    }

    /// The cause without its field, as `Status.details.causes[].message` carries it.
    pub fn body(&self) -> String {
        let value = self
            .value
            .as_deref()
            .map(|v| format!("\"{v}\""))
            .unwrap_or_default();
        match self.kind {
            FieldErrorKind::Invalid => format!("Invalid value: {value}: {}", self.detail),
            FieldErrorKind::Forbidden => format!("Forbidden: {}", self.detail),
            FieldErrorKind::Required => {
                if self.detail.is_empty() {
                    "Required value".to_string()
                } else {
                    format!("Required value: {}", self.detail)
                }
            }
            FieldErrorKind::NotSupported => format!("Unsupported value: {value}: {}", self.detail),
            FieldErrorKind::Duplicate => format!("Duplicate value: {value}"),
        }
    }
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    /// 404 for a named object.
    pub fn not_found(t: Target<'_>) -> Self {
        Self {
            details: Some(t.details()),
            ..Self::new(404, "NotFound", format!("{} not found", t.qualified()))
        }
    }

    /// 404 for a path that names no resource.
    pub fn no_route() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    /// 409 on create of an existing name.
    pub fn already_exists(t: Target<'_>) -> Self {
        Self {
            details: Some(t.details()),
            ..Self::new(
                409,
                "AlreadyExists",
                format!("{} already exists", t.qualified()),
            )
        }
    }

    /// 409 on a stale resourceVersion (optimistic concurrency).
    pub fn conflict_stale(t: Target<'_>) -> Self {
        Self::conflict(
            t,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 409 with a custom cause.
    pub fn conflict(t: Target<'_>, why: impl std::fmt::Display) -> Self {
        Self {
            details: Some(t.details()),
            ..Self::new(
                409,
                "Conflict",
                format!("Operation cannot be fulfilled on {}: {why}", t.qualified()),
            )
        }
    }

    /// 422 with field causes.
    pub fn invalid(t: Target<'_>, causes: Vec<FieldError>) -> Self {
        let joined = if causes.len() == 1 {
            causes[0].message()
        } else {
            format!(
                "[{}]",
                causes
                    .iter()
                    .map(FieldError::message)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let mut details = t.details();
        details["kind"] = json!(t.kind);
        details["causes"] = Value::Array(
            causes
                .iter()
                .map(|c| json!({ "reason": c.reason(), "message": c.body(), "field": c.field }))
                .collect(),
        );
        Self {
            details: Some(details),
            ..Self::new(
                422,
                "Invalid",
                format!("{} \"{}\" is invalid: {joined}", t.kind, t.name),
            )
        }
    }

    /// 422 for a patch that cannot be applied (a JSON-patch `test` failing, a bad path).
    pub fn new_unprocessable(message: String) -> Self {
        Self::new(422, "Invalid", message)
    }

    /// 400 for a malformed request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 401 without valid credentials.
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    /// 403 for a request the server refuses.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }

    /// 405 for a verb the resource does not serve.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    /// 410 for a resourceVersion or continue token older than the retained history.
    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// 415 for a body type the endpoint does not take.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml; got {content_type:?}"
            ),
        )
    }

    /// 500, for a fault injected by a test or a bug.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    /// 429, for an injected throttling fault.
    pub fn too_many_requests() -> Self {
        Self::new(
            429,
            "TooManyRequests",
            "the server has received too many requests and has asked us to try again later",
        )
    }

    /// The `Status` object sent as the response body (and inside watch ERROR events).
    pub fn status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}
