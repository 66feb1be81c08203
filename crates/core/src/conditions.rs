//! The `Condition` block of an IAM or KMS policy statement, read the way both of
//! baton's judgements need it ([`crate::keys`], [`crate::identity`]): the string and
//! boolean operators, with `…IfExists`, against the keys a request carries.

use serde_json::Value;

use crate::handover::glob;

/// What a request carries for a condition key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Key {
    /// This value.
    Is(String),
    /// Nothing: the request does not carry the key (a positive operator fails, its
    /// `…IfExists` form holds).
    Absent,
    /// A key baton does not know whether the request carries.
    Unread,
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Bool(b) => vec![b.to_string()],
        Value::Array(a) => a.iter().flat_map(strings).collect(),
        _ => vec![],
    }
}

/// Whether a statement's conditions hold, each key looked up with `key`. Operators read:
/// `StringEquals`, `StringEqualsIgnoreCase`, `StringLike`, `Bool`, and their `…IfExists`
/// forms. Err: what was not read (another operator, an unread key), for people.
pub(crate) fn hold(statement: &Value, key: impl Fn(&str) -> Key) -> Result<bool, String> {
    let Some(cond) = statement.get("Condition") else {
        return Ok(true);
    };
    let Value::Object(ops) = cond else {
        return Err("a Condition that is not an object".into());
    };
    for (op, block) in ops {
        let (base, if_exists) = match op.strip_suffix("IfExists") {
            Some(b) => (b, true),
            None => (op.as_str(), false),
        };
        let Value::Object(keys) = block else {
            return Err(format!("condition {op} is not an object"));
        };
        for (k, wanted) in keys {
            let value = match key(k) {
                Key::Is(v) => v,
                Key::Absent if if_exists => continue,
                Key::Absent => return Ok(false),
                Key::Unread => return Err(format!("condition key {k} is not one baton reads")),
            };
            let wanted = strings(wanted);
            let holds = match base {
                "Bool" | "StringEqualsIgnoreCase" => {
                    wanted.iter().any(|w| w.eq_ignore_ascii_case(&value))
                }
                "StringEquals" => wanted.contains(&value),
                "StringLike" => wanted.iter().any(|w| glob(w, &value)),
                other => return Err(format!("condition operator {other} is not read")),
            };
            if !holds {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lookup(k: &str) -> Key {
        match k {
            "a" => Key::Is("x-1".into()),
            "b" => Key::Absent,
            _ => Key::Unread,
        }
    }

    #[test]
    fn operators_and_missing_keys_read_as_iam_reads_them() {
        let st = |c: Value| json!({ "Condition": c });
        assert_eq!(hold(&json!({}), lookup), Ok(true));
        assert_eq!(
            hold(&st(json!({"StringEquals": {"a": "x-1"}})), lookup),
            Ok(true)
        );
        assert_eq!(
            hold(&st(json!({"StringLike": {"a": "x-*"}})), lookup),
            Ok(true)
        );
        assert_eq!(
            hold(&st(json!({"StringEquals": {"a": ["y", "X-1"]}})), lookup),
            Ok(false)
        );
        assert_eq!(
            hold(&st(json!({"StringEqualsIgnoreCase": {"a": "X-1"}})), lookup),
            Ok(true)
        );
        assert_eq!(
            hold(&st(json!({"StringEquals": {"b": "v"}})), lookup),
            Ok(false)
        );
        assert_eq!(
            hold(&st(json!({"StringEqualsIfExists": {"b": "v"}})), lookup),
            Ok(true)
        );
        assert!(hold(&st(json!({"StringEquals": {"c": "v"}})), lookup).is_err());
        assert!(hold(&st(json!({"IpAddress": {"a": "10.0.0.0/8"}})), lookup).is_err());
    }
}
