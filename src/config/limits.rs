//! `LIMITS`: shared rate and concurrency limits, as a JSON object keyed by what they limit.
//!
//! ```json
//! {"http:api.twitter.com": {"rate": "1/s"}, "kind:report": {"concurrency": 2},
//!  "http:localhost:8080": {"rate": "300/m", "concurrency": 5}}
//! ```
//!
//! A key is `kind:<job kind>` or `http:<host>` (the URL's host in lower case, with `:port` when
//! the port is not the scheme's default). The same types serve limits declared in code
//! ([`crate::Registry::limit`]).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde_json::Value;

use super::ConfigError;

/// The most jobs one limit lets run at once.
pub const CONCURRENCY_LIMIT: u32 = 10_000;
/// The shortest spacing a rate may ask for: the scripts count in milliseconds.
const MIN_INTERVAL: Duration = Duration::from_millis(1);
/// Longest limit key, so a key stays a sensible Redis key and log field.
const KEY_MAX_LEN: usize = 255;

/// One shared limit: how often jobs may start, how many may run at once, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limit {
    /// Starts per period, across every process.
    pub rate: Option<Rate>,
    /// Jobs holding the key at once, across every process.
    pub concurrency: Option<u32>,
}

impl Limit {
    /// A limit of `count` starts per `per`.
    pub fn rate(count: u32, per: Duration) -> Limit {
        Limit {
            rate: Some(Rate { count, per }),
            concurrency: None,
        }
    }

    /// A limit of `n` at once.
    pub fn concurrency(n: u32) -> Limit {
        Limit {
            rate: None,
            concurrency: Some(n),
        }
    }

    /// This limit with a concurrency bound of `n` as well.
    pub fn with_concurrency(self, n: u32) -> Limit {
        Limit {
            concurrency: Some(n),
            ..self
        }
    }

    /// Checks the bounds `LIMITS` documents; the error names the field.
    pub fn check(&self) -> Result<(), String> {
        if self.rate.is_none() && self.concurrency.is_none() {
            return Err("give \"rate\", \"concurrency\" or both".into());
        }
        if let Some(rate) = self.rate {
            rate.check().map_err(|e| format!("field \"rate\": {e}"))?;
        }
        match self.concurrency {
            Some(n) if !(1..=CONCURRENCY_LIMIT).contains(&n) => Err(format!(
                "field \"concurrency\": must be from 1 to {CONCURRENCY_LIMIT}"
            )),
            _ => Ok(()),
        }
    }
}

/// `count` starts per `per`: `5/s`, `300/m`, `5000/h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Starts allowed per period.
    pub count: u32,
    /// The period.
    pub per: Duration,
}

impl Rate {
    /// The spacing between two starts: `per / count`.
    pub fn interval(&self) -> Duration {
        self.per / self.count.max(1)
    }

    /// Parses `<count>/<s|m|h>` (also `sec`, `min`, `hour`).
    pub fn parse(text: &str) -> Result<Rate, String> {
        let expected = || format!("expected \"<count>/s\", \"/m\" or \"/h\", got {text:?}");
        let (count, unit) = text.trim().split_once('/').ok_or_else(expected)?;
        let count: u32 = count.trim().parse().map_err(|_| expected())?;
        let per = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            _ => return Err(expected()),
        };
        let rate = Rate { count, per };
        rate.check()?;
        Ok(rate)
    }

    fn check(&self) -> Result<(), String> {
        if self.count == 0 {
            return Err("the count must be at least 1".into());
        }
        if self.per.is_zero() || self.interval() < MIN_INTERVAL {
            return Err("at most 1000 starts a second (1000/s, 60000/m, 3600000/h)".into());
        }
        Ok(())
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.per.as_secs() {
            1 => write!(f, "{}/s", self.count),
            60 => write!(f, "{}/m", self.count),
            3600 => write!(f, "{}/h", self.count),
            _ => write!(f, "{}/{}ms", self.count, self.per.as_millis()),
        }
    }
}

/// Checks a limit key: `kind:<name>` (1-64 of `A-Z a-z 0-9 _ - .`) or `http:<host>[:port]`
/// (lower case, as URLs spell hosts once parsed).
pub fn check_limit_key(key: &str) -> Result<(), String> {
    if key.len() > KEY_MAX_LEN {
        return Err(format!("a key is at most {KEY_MAX_LEN} bytes"));
    }
    if let Some(kind) = key.strip_prefix("kind:") {
        return if crate::queue::spec::valid_queue_name(kind) {
            Ok(())
        } else {
            Err("a kind is 1-64 of A-Z a-z 0-9 _ - .".into())
        };
    }
    let Some(authority) = key.strip_prefix("http:") else {
        return Err("a key is \"kind:<name>\" or \"http:<host>\"".into());
    };
    check_authority(authority)
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`, in lower case.
fn check_authority(authority: &str) -> Result<(), String> {
    let (host, port) = match authority.strip_prefix('[') {
        Some(rest) => {
            let (v6, after) = rest.split_once(']').ok_or("an IPv6 host needs its ']'")?;
            if v6.is_empty()
                || !v6
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
            {
                return Err("bad IPv6 host".into());
            }
            (v6, after.strip_prefix(':'))
        }
        None => match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    let host_ok = !host.is_empty()
        && (authority.starts_with('[')
            || host
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'));
    if !host_ok {
        return Err("a host is lower-case letters, digits, '-' and '.' (or [IPv6])".into());
    }
    match port.map(|p| p.parse::<u16>()) {
        None | Some(Ok(1..)) => Ok(()),
        Some(_) => Err("a port is a number from 1 to 65535".into()),
    }
}

/// Parses `LIMITS`; an entry that does not fit names its key and field.
pub(super) fn parse_limits(text: Option<&str>) -> Result<BTreeMap<String, Limit>, ConfigError> {
    let Some(text) = text else {
        return Ok(BTreeMap::new());
    };
    let bad = |value: &str, reason: String| ConfigError::Invalid {
        var: "LIMITS",
        value: crate::queue::truncate(value, 200).into_owned(),
        reason,
    };
    let parsed: Value = serde_json::from_str(text).map_err(|e| bad(text, e.to_string()))?;
    let Value::Object(entries) = parsed else {
        return Err(bad(text, "expected a JSON object of limits".into()));
    };
    let mut limits = BTreeMap::new();
    for (key, value) in entries {
        let limit = check_limit_key(&key)
            .and_then(|()| parse_entry(&value))
            .map_err(|reason| bad(&value.to_string(), format!("entry {key:?}: {reason}")))?;
        limits.insert(key, limit);
    }
    Ok(limits)
}

/// `{"rate": "5/s", "concurrency": 2}`, either or both, nothing else.
fn parse_entry(value: &Value) -> Result<Limit, String> {
    let Value::Object(fields) = value else {
        return Err("expected an object like {\"rate\": \"5/s\", \"concurrency\": 2}".into());
    };
    let mut limit = Limit::default();
    for (field, v) in fields {
        match field.as_str() {
            "rate" => {
                let text = v
                    .as_str()
                    .ok_or("field \"rate\": expected a string like \"5/s\"")?;
                limit.rate = Some(Rate::parse(text).map_err(|e| format!("field \"rate\": {e}"))?);
            }
            "concurrency" => {
                let n = v
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or("field \"concurrency\": expected a whole number")?;
                limit.concurrency = Some(n);
            }
            other => {
                return Err(format!(
                    "unknown field {other:?} (expected \"rate\" and/or \"concurrency\")"
                ));
            }
        }
    }
    limit.check()?;
    Ok(limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<BTreeMap<String, Limit>, String> {
        parse_limits(Some(text)).map_err(|e| e.to_string())
    }

    #[test]
    fn rates_and_concurrency_parse_either_or_both() {
        let limits = parse(
            r#"{"http:api.twitter.com": {"rate": "1/s"}, "kind:report": {"concurrency": 2},
                "http:localhost:8080": {"rate": "300/m", "concurrency": 5},
                "http:[::1]:9000": {"rate": "5000/h"}}"#,
        )
        .unwrap();
        assert_eq!(
            limits["http:api.twitter.com"],
            Limit::rate(1, Duration::from_secs(1))
        );
        assert_eq!(limits["kind:report"], Limit::concurrency(2));
        let both = limits["http:localhost:8080"];
        assert_eq!(
            both,
            Limit::rate(300, Duration::from_secs(60)).with_concurrency(5)
        );
        assert_eq!(both.rate.unwrap().interval(), Duration::from_millis(200));
        assert_eq!(both.rate.unwrap().to_string(), "300/m");
        assert_eq!(
            limits["http:[::1]:9000"].rate.unwrap().per,
            Duration::from_secs(3600)
        );
        assert!(parse_limits(None).unwrap().is_empty());
        assert!(parse("{}").unwrap().is_empty());
    }

    #[test]
    fn a_bad_entry_names_its_key_and_field() {
        for (text, key, field) in [
            (r#"{"kind:x": {"rate": "5/d"}}"#, "kind:x", "rate"),
            (r#"{"kind:x": {"rate": "0/s"}}"#, "kind:x", "rate"),
            (r#"{"kind:x": {"rate": "2000/s"}}"#, "kind:x", "rate"),
            (r#"{"kind:x": {"rate": 5}}"#, "kind:x", "rate"),
            (r#"{"kind:x": {"concurrency": 0}}"#, "kind:x", "concurrency"),
            (
                r#"{"kind:x": {"concurrency": -1}}"#,
                "kind:x",
                "concurrency",
            ),
            (
                r#"{"kind:x": {"concurrency": 2.5}}"#,
                "kind:x",
                "concurrency",
            ),
            (
                r#"{"kind:x": {"concurrency": 10001}}"#,
                "kind:x",
                "concurrency",
            ),
            (r#"{"kind:x": {"burst": 3}}"#, "kind:x", "burst"),
            (r#"{"kind:x": {}}"#, "kind:x", "rate"),
            (r#"{"kind:x": "5/s"}"#, "kind:x", "rate"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(
                err.contains("LIMITS") && err.contains(key) && err.contains(field),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn keys_are_kinds_or_lower_case_hosts_with_an_optional_port() {
        for good in [
            "kind:email",
            "http:api.example.com",
            "http:localhost:8080",
            "http:127.0.0.1",
            "http:[::1]",
            "http:[2001:db8::1]:443",
        ] {
            assert_eq!(check_limit_key(good), Ok(()), "{good}");
        }
        for bad in [
            "email",
            "kind:",
            "kind:a b",
            "http:",
            "http:API.example.com",
            "http:host:0",
            "http:host:99999",
            "http:host:x",
            "http:[::1",
            "queue:default",
        ] {
            assert!(check_limit_key(bad).is_err(), "{bad}");
        }
        let err = parse(r#"{"http:Example.com": {"rate": "1/s"}}"#).unwrap_err();
        assert!(
            err.contains("http:Example.com") && err.contains("lower-case"),
            "{err}"
        );
        assert!(parse("[1]").unwrap_err().contains("object"));
        assert!(parse("{").unwrap_err().contains("LIMITS"));
    }
}
