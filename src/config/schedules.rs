//! `SCHEDULES`: a JSON array of periodic jobs, each checked field by field so that a bad entry
//! names itself and the field at fault. Values are never echoed whole: args may hold secrets.

use serde_json::{Map, Value};

use super::ConfigError;
use crate::schedule::{Missed, Schedule, ScheduleError};

/// The most entries `SCHEDULES` may hold.
const SCHEDULES_LIMIT: usize = 1000;

const FIELDS: [&str; 8] = [
    "name", "cron", "kind", "args", "queue", "timezone", "missed", "overlap",
];

/// Parses `SCHEDULES` (unset: none).
pub(super) fn parse_schedules(value: Option<&str>) -> Result<Vec<Schedule>, ConfigError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let entries: Vec<Value> = serde_json::from_str(value).map_err(|e| {
        ConfigError::Schedule(ScheduleError {
            entry: "list".into(),
            field: "SCHEDULES",
            reason: format!("expected a JSON array of objects: {e}"),
        })
    })?;
    if entries.len() > SCHEDULES_LIMIT {
        return Err(ConfigError::Schedule(ScheduleError {
            entry: "list".into(),
            field: "SCHEDULES",
            reason: format!("at most {SCHEDULES_LIMIT} entries"),
        }));
    }
    let mut schedules: Vec<Schedule> = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let schedule = parse_entry(index + 1, entry).map_err(ConfigError::Schedule)?;
        if schedules.iter().any(|s| s.name() == schedule.name()) {
            return Err(ConfigError::Schedule(at(
                index + 1,
                schedule.error("name", "is used by an earlier entry"),
            )));
        }
        schedules.push(schedule);
    }
    Ok(schedules)
}

/// The error, with the entry named by its position as well as its name.
fn at(position: usize, mut error: ScheduleError) -> ScheduleError {
    error.entry = format!("#{position} {}", error.entry);
    error
}

fn parse_entry(position: usize, entry: &Value) -> Result<Schedule, ScheduleError> {
    let fail = |field, reason: &str| {
        at(
            position,
            ScheduleError {
                entry: String::new(),
                field,
                reason: reason.to_string(),
            },
        )
    };
    let Value::Object(fields) = entry else {
        return Err(fail("entry", "expected a JSON object"));
    };
    if let Some(unknown) = fields.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        let expected = FIELDS.join(", ");
        return Err(fail(
            "field",
            &format!("{unknown:?} is an unknown field; expected one of {expected}"),
        ));
    }
    let name = required(fields, "name").map_err(|r| fail("name", &r))?;
    let cron = required(fields, "cron").map_err(|r| fail("cron", &r))?;
    let kind = required(fields, "kind").map_err(|r| fail("kind", &r))?;
    let schedule = Schedule::new(name, cron, kind).map_err(|e| at(position, e))?;
    fill_optional(schedule, fields).map_err(|e| at(position, e))
}

fn required<'a>(fields: &'a Map<String, Value>, field: &str) -> Result<&'a str, String> {
    match fields.get(field) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err("expected a string".into()),
        None => Err("missing".into()),
    }
}

fn optional_str<'a>(
    schedule: &Schedule,
    fields: &'a Map<String, Value>,
    field: &'static str,
) -> Result<Option<&'a str>, ScheduleError> {
    match fields.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(schedule.error(field, "expected a string")),
    }
}

fn fill_optional(
    mut schedule: Schedule,
    fields: &Map<String, Value>,
) -> Result<Schedule, ScheduleError> {
    if let Some(args) = fields.get("args").filter(|a| !a.is_null()) {
        schedule = schedule.args(args.clone());
    }
    if let Some(queue) = optional_str(&schedule, fields, "queue")? {
        schedule = schedule.queue(queue)?;
    }
    if let Some(timezone) = optional_str(&schedule, fields, "timezone")? {
        schedule = schedule.timezone(timezone)?;
    }
    let missed = match optional_str(&schedule, fields, "missed")? {
        None | Some("one") => Missed::One,
        Some("skip") => Missed::Skip,
        Some(other) => {
            return Err(schedule.error(
                "missed",
                &format!("{other:?}: expected \"one\" or \"skip\""),
            ));
        }
    };
    let overlap = match fields.get("overlap") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(schedule.error("overlap", "expected true or false")),
    };
    Ok(schedule.missed(missed).overlap(overlap))
}

#[cfg(test)]
mod tests {
    use super::super::test_config as config;
    use super::*;

    fn error(value: &str) -> String {
        config(&[("SCHEDULES", value)]).unwrap_err().to_string()
    }

    #[test]
    fn entries_parse_with_their_defaults() {
        let c = config(&[(
            "SCHEDULES",
            r#"[{"name":"nightly","cron":"0 3 * * *","kind":"echo","args":{"a":1},
                 "queue":"low","timezone":"Europe/Berlin","missed":"skip","overlap":false},
                {"name":"every.second","cron":"* * * * * *","kind":"noop"}]"#,
        )])
        .unwrap();
        let [nightly, fast] = &c.schedules[..] else {
            panic!("{:?}", c.schedules)
        };
        assert_eq!(nightly.timezone_name(), "Europe/Berlin");
        assert_eq!(nightly.queue_name(), Some("low"));
        assert_eq!(nightly.missed_policy(), Missed::Skip);
        assert!(!nightly.allows_overlap());
        assert_eq!(nightly.job_args()["a"], 1);
        assert_eq!(fast.timezone_name(), "UTC");
        assert_eq!(fast.missed_policy(), Missed::One);
        assert!(fast.allows_overlap());
        assert_eq!(fast.job_args(), &serde_json::json!({}));
        assert!(config(&[]).unwrap().schedules.is_empty());
    }

    #[test]
    fn a_bad_entry_names_the_entry_and_the_field_but_not_the_args() {
        for (value, needles) in [
            ("nope", vec!["SCHEDULES", "JSON array"]),
            ("[1]", vec!["#1", "entry", "object"]),
            (
                r#"[{"cron":"* * * * *","kind":"noop"}]"#,
                vec!["#1", "name: missing"],
            ),
            (
                r#"[{"name":"a b","cron":"* * * * *","kind":"noop"}]"#,
                vec!["#1", "name"],
            ),
            (
                r#"[{"name":"n","cron":"* * *","kind":"noop"}]"#,
                vec!["\"n\"", "cron"],
            ),
            (
                r#"[{"name":"n","cron":"* * * * *","kind":7}]"#,
                vec!["#1", "kind"],
            ),
            (
                r#"[{"name":"n","cron":"* * * * *","kind":"noop","timezone":"Mars/Base"}]"#,
                vec!["\"n\"", "timezone", "Mars/Base"],
            ),
            (
                r#"[{"name":"n","cron":"* * * * *","kind":"noop","missed":"all"}]"#,
                vec!["\"n\"", "missed", "\"all\""],
            ),
            (
                r#"[{"name":"n","cron":"* * * * *","kind":"noop","overlap":"no"}]"#,
                vec!["\"n\"", "overlap"],
            ),
            (
                r#"[{"name":"n","cron":"* * * * *","kind":"noop","queue":"a b"}]"#,
                vec!["\"n\"", "queue"],
            ),
            (
                r#"[{"name":"n","cron":"* * * * *","kind":"noop","every":"day"}]"#,
                vec!["#1", "\"every\"", "unknown field"],
            ),
            (
                r#"[{"name":"n","cron":"* * * * *","kind":"noop"},
                    {"name":"n","cron":"0 * * * *","kind":"echo","args":{"secret":"hunter2"}}]"#,
                vec!["#2 \"n\"", "name", "earlier entry"],
            ),
        ] {
            let err = error(value);
            assert!(err.starts_with("invalid SCHEDULES"), "{err}");
            for needle in needles {
                assert!(err.contains(needle), "{needle:?} not in {err}");
            }
            assert!(!err.contains("hunter2"), "{err}");
        }
    }
}
