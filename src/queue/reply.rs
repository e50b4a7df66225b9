//! Reading script replies as types. Each outcome type implements [`redis::FromRedisValue`] next
//! to its definition (in `jobs.rs`, `lease.rs`, `processes.rs`) with the helpers here; the
//! queue's operations run a script for a [`redis::Value`] and read it with [`parse`], so a
//! reply the Rust side does not expect surfaces as [`QueueError::UnexpectedReply`] naming the
//! script rather than as an anonymous Redis type error.

use redis::{FromRedisValue, ParsingError, Value};

use super::error::QueueError;
use super::job::JobRecord;

/// Reads `script`'s `reply` as a `T`.
pub(super) fn parse<T: FromRedisValue>(
    script: &'static str,
    reply: Value,
) -> Result<T, QueueError> {
    T::from_redis_value(reply).map_err(|e| QueueError::UnexpectedReply {
        script,
        reply: e.to_string(),
    })
}

/// Splits a `{tag, ...}` reply into its tag and the `N` values after it.
pub(super) fn tagged<const N: usize>(v: Value) -> Result<(String, [Value; N]), ParsingError> {
    let items: Vec<Value> = match v {
        Value::Array(items) => items,
        other => return Err(format!("expected a tagged array, got {other:?}").into()),
    };
    let mut items = items.into_iter();
    let tag = match items.next() {
        Some(tag) => String::from_redis_value(tag)?,
        None => return Err("an empty array".into()),
    };
    let rest: Vec<Value> = items.collect();
    let len = rest.len();
    let rest = rest
        .try_into()
        .map_err(|_| ParsingError::from(format!("{tag:?} with {len} values, not {N}")))?;
    Ok((tag, rest))
}

/// A tag no arm of the reader expects.
pub(super) fn unexpected(tag: &str) -> ParsingError {
    format!("unknown tag {tag:?}").into()
}

/// A job record sent as the flat field/value list of HGETALL.
pub(super) fn record(v: Value) -> Result<JobRecord, ParsingError> {
    let fields: Vec<String> = FromRedisValue::from_redis_value(v)?;
    JobRecord::from_fields(fields).map_err(|e| e.to_string().into())
}

/// Builds replies by hand for the readers' tests.
#[cfg(test)]
pub(super) mod build {
    use redis::Value;

    /// A bulk string.
    pub(crate) fn s(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    /// An array.
    pub(crate) fn arr(items: Vec<Value>) -> Value {
        Value::Array(items)
    }

    /// The HGETALL reply of a minimal queued job `id`.
    pub(crate) fn job(id: &str) -> Value {
        arr([
            "id", id, "kind", "echo", "queue", "default", "status", "queued",
        ]
        .into_iter()
        .map(s)
        .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::build::*;
    use super::*;

    #[test]
    fn a_tagged_reply_splits_into_its_tag_and_values() {
        let (tag, [n, rec]) = tagged::<2>(arr(vec![s("ok"), Value::Int(1), job("j1")])).unwrap();
        assert_eq!(tag, "ok");
        assert_eq!(n, Value::Int(1));
        assert_eq!(record(rec).unwrap().id, "j1");
    }

    #[test]
    fn a_reply_of_the_wrong_shape_is_an_unexpected_reply_of_its_script() {
        let e = parse::<(String, i64)>("probe", s("x")).unwrap_err();
        assert!(
            matches!(
                e,
                QueueError::UnexpectedReply {
                    script: "probe",
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(tagged::<2>(arr(vec![s("ok"), Value::Int(1)])).is_err());
        assert!(tagged::<0>(arr(vec![])).is_err());
        assert!(record(arr(vec![s("kind"), s("echo")])).is_err());
    }
}
