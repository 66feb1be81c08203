//! Which errors are worth another try: a transient one anywhere in the chain.

/// Whether an error is worth retrying (somewhere in its chain).
pub fn is_transient(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<baton_kube::KubeError>()
            .is_some_and(|k| k.is_transient())
            || c.downcast_ref::<baton_aws::Error>()
                .is_some_and(|a| a.is_transient())
    })
}
