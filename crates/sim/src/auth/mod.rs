//! Who a request is and what it may do. The cluster's own bearer token is the admin
//! (`system:masters`: never checked against RBAC, so the controllers' and the tests'
//! traffic costs nothing extra). Service-account tokens, minted through the TokenRequest
//! API (`kubectl create token`), authenticate as `system:serviceaccount:NS:NAME` while
//! that ServiceAccount exists and until they expire; their requests go through the RBAC
//! authorizer ([`rbac`]) on the request attributes ([`attributes`]).

pub mod attributes;
pub mod rbac;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use http::{HeaderMap, header};

pub use attributes::Attributes;
pub use rbac::{Decision, User};

use serde_json::Value;

use crate::error::ApiError;
use crate::resources::GroupResource;
use crate::store::Store;

/// Who sent a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// The cluster's admin token: everything is allowed.
    Admin,
    /// A service account (or other RBAC-checked user).
    User(User),
}

/// One minted service-account token.
#[derive(Debug, Clone)]
struct Issued {
    namespace: String,
    name: String,
    /// The ServiceAccount's uid when minted: a deleted (or re-created) account's tokens
    /// stop working.
    uid: String,
    expires: jiff::Timestamp,
}

/// The service-account tokens a cluster has minted. Its `Debug` prints only how many,
/// so a token never reaches a log.
#[derive(Default)]
pub struct Tokens {
    issued: Mutex<HashMap<String, Issued>>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.issued.lock().map(|m| m.len()).unwrap_or_default();
        f.debug_struct("Tokens").field("issued", &n).finish()
    }
}

/// The shortest lifetime the real TokenRequest API accepts.
const MIN_EXPIRATION_SECONDS: i64 = 600;
/// kubectl's and the API's default lifetime.
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;

fn service_accounts() -> GroupResource {
    GroupResource {
        group: String::new(),
        plural: "serviceaccounts".into(),
    }
}

impl Tokens {
    /// The identity of a request's bearer token, or None (401): the cluster's admin
    /// `admin_token`, or a token minted here whose ServiceAccount still exists in `store`
    /// (same uid) and which has not expired.
    pub fn authenticate(
        &self,
        admin_token: &str,
        store: &Store,
        headers: &HeaderMap,
    ) -> Option<Identity> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))?
            .trim();
        if token == admin_token {
            return Some(Identity::Admin);
        }
        let issued = self
            .issued
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(token)
            .cloned()?;
        if jiff::Timestamp::now() >= issued.expires {
            return None;
        }
        let account = store.txn(|t| t.get(&service_accounts(), &issued.namespace, &issued.name))?;
        (account["metadata"]["uid"].as_str() == Some(issued.uid.as_str()))
            .then(|| Identity::User(User::service_account(&issued.namespace, &issued.name)))
    }

    /// Mints a token for the ServiceAccount `namespace/name`, which `account` reads (its
    /// error, e.g. a 404, is returned), valid for `seconds` (at least 600, as the real API
    /// requires; checked first).
    pub fn issue(
        &self,
        namespace: &str,
        name: &str,
        seconds: i64,
        account: impl FnOnce() -> Result<Arc<Value>, ApiError>,
    ) -> Result<(String, jiff::Timestamp), ApiError> {
        if seconds < MIN_EXPIRATION_SECONDS {
            return Err(ApiError::invalid(
                crate::error::Target {
                    group: "authentication.k8s.io",
                    plural: "tokenrequests",
                    kind: "TokenRequest",
                    name,
                },
                vec![crate::error::FieldError::invalid(
                    "spec.expirationSeconds",
                    seconds.to_string(),
                    "may not specify a duration less than 10 minutes",
                )],
            ));
        }
        let account = account()?;
        let expires = jiff::Timestamp::now()
            .as_second()
            .checked_add(seconds)
            .and_then(|s| jiff::Timestamp::from_second(s).ok())
            .ok_or_else(|| ApiError::bad_request("spec.expirationSeconds is too large"))?;
        let token = format!("baton-sim-sa-{}", uuid::Uuid::new_v4().simple());
        self.issued
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                token.clone(),
                Issued {
                    namespace: namespace.into(),
                    name: name.into(),
                    uid: account["metadata"]["uid"]
                        .as_str()
                        .unwrap_or_default()
                        .into(),
                    expires,
                },
            );
        Ok((token, expires))
    }
}

/// Whether `who` may do what `attrs` describe, by the RBAC objects in `store`: `Ok` with
/// the reason, or the 403.
pub fn authorize(store: &Store, who: &Identity, attrs: &Attributes) -> Result<String, ApiError> {
    match who {
        Identity::Admin => Ok("the cluster admin (system:masters)".into()),
        Identity::User(user) => match rbac::authorize(store, user, attrs) {
            Decision::Allow(why) => Ok(why),
            Decision::Deny(reason) => Err(rbac::forbidden(user, attrs, &reason)),
        },
    }
}
