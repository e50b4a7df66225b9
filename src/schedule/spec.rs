//! One periodic job: its name, cron pattern, time zone and the job it enqueues, checked when it
//! is built, and the tick arithmetic (previous and next tick in its time zone, DST included).

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use serde_json::{Value, json};
use thiserror::Error;

use crate::queue::spec::valid_queue_name;

/// The longest a tick may be late and still count as on time (Sidekiq-cron's default grace);
/// later than this it was missed, and the schedule's [`Missed`] policy decides.
pub const ON_TIME_GRACE: Duration = Duration::from_secs(60);

/// A schedule whose entry or field is unusable: a start-up error.
#[derive(Debug, Error, PartialEq)]
#[error("schedule {entry}: {field}: {reason}")]
pub struct ScheduleError {
    /// The schedule, as its name (quoted) or its position in `SCHEDULES`.
    pub entry: String,
    /// The field at fault (`name`, `cron`, `kind`, `args`, `queue`, `timezone`, `missed`, ...).
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

/// What a schedule does about ticks that passed while no process ran it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missed {
    /// Run once to catch up (the latest missed tick only, never one job per tick).
    One,
    /// Wait for the next tick.
    Skip,
}

impl Missed {
    /// The name `SCHEDULES` and the scripts use.
    pub fn as_str(self) -> &'static str {
        match self {
            Missed::One => "one",
            Missed::Skip => "skip",
        }
    }
}

/// A periodic job: every tick of `cron` in `timezone` enqueues one `kind` job with `args`.
#[derive(Debug, Clone)]
pub struct Schedule {
    name: String,
    pattern: String,
    cron: Cron,
    timezone: Tz,
    kind: String,
    args: Value,
    queue: Option<String>,
    missed: Missed,
    overlap: bool,
}

/// 5 fields, or 6 with seconds first; no year field.
fn parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
}

impl Schedule {
    /// A schedule named `name` (1 to 64 of `A-Z a-z 0-9 _ - .`, unique) firing `kind` at each
    /// tick of `cron` (5 fields, or 6 with seconds first) in UTC, with `{}` as args, missed
    /// ticks caught up once and overlapping runs allowed. The builder methods change those.
    pub fn new(name: &str, cron: &str, kind: &str) -> Result<Schedule, ScheduleError> {
        let entry = format!("{name:?}");
        let err = |field, reason: &str| ScheduleError {
            entry: entry.clone(),
            field,
            reason: reason.to_string(),
        };
        if !valid_queue_name(name) {
            return Err(err("name", "must be 1 to 64 of A-Z a-z 0-9 _ - ."));
        }
        let parsed = parser()
            .parse(cron)
            .map_err(|e| err("cron", &format!("{cron:?} is not a cron pattern: {e}")))?;
        if kind.trim().is_empty() {
            return Err(err("kind", "must name a job kind"));
        }
        let schedule = Schedule {
            name: name.to_string(),
            pattern: cron.trim().to_string(),
            cron: parsed,
            timezone: Tz::UTC,
            kind: kind.to_string(),
            args: json!({}),
            queue: None,
            missed: Missed::One,
            overlap: true,
        };
        if schedule.next_tick(Utc::now()).is_none() {
            return Err(err("cron", &format!("{cron:?} never fires")));
        }
        Ok(schedule)
    }

    /// The ticks are read in the IANA time zone `name` (e.g. `Europe/Berlin`), so a daily tick
    /// stays at the same wall-clock time across DST changes.
    pub fn timezone(mut self, name: &str) -> Result<Schedule, ScheduleError> {
        self.timezone = Tz::from_str(name).map_err(|_| {
            self.error(
                "timezone",
                &format!("{name:?} is not an IANA time zone name"),
            )
        })?;
        Ok(self)
    }

    /// The job's arguments (checked against the kind at start-up).
    pub fn args(mut self, args: Value) -> Schedule {
        self.args = args;
        self
    }

    /// The queue the jobs go to (else the kind's own, else `default`).
    pub fn queue(mut self, queue: &str) -> Result<Schedule, ScheduleError> {
        if !valid_queue_name(queue) {
            return Err(self.error("queue", "must be 1 to 64 of A-Z a-z 0-9 _ - ."));
        }
        self.queue = Some(queue.to_string());
        Ok(self)
    }

    /// What to do about ticks missed while no process ran.
    pub fn missed(mut self, missed: Missed) -> Schedule {
        self.missed = missed;
        self
    }

    /// `false`: a tick is skipped while the previous tick's job is still waiting or running.
    pub fn overlap(mut self, overlap: bool) -> Schedule {
        self.overlap = overlap;
        self
    }

    /// An error about this schedule's `field`.
    pub(crate) fn error(&self, field: &'static str, reason: &str) -> ScheduleError {
        ScheduleError {
            entry: format!("{:?}", self.name),
            field,
            reason: reason.to_string(),
        }
    }

    /// The unique name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cron pattern as given.
    pub fn cron(&self) -> &str {
        &self.pattern
    }

    /// The time zone's IANA name.
    pub fn timezone_name(&self) -> &str {
        self.timezone.name()
    }

    /// The job kind.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The job's arguments.
    pub fn job_args(&self) -> &Value {
        &self.args
    }

    /// The queue asked for, if any.
    pub fn queue_name(&self) -> Option<&str> {
        self.queue.as_deref()
    }

    /// The missed-tick policy.
    pub fn missed_policy(&self) -> Missed {
        self.missed
    }

    /// Whether a tick may start while the previous tick's job is unfinished.
    pub fn allows_overlap(&self) -> bool {
        self.overlap
    }

    /// What decides the ticks: a change of it makes the schedule new again in Redis, so ticks
    /// of the old pattern are not caught up under the new one.
    pub(crate) fn signature(&self) -> String {
        format!("{} {}", self.pattern, self.timezone.name())
    }

    /// The latest tick at or before `now`.
    pub fn latest_tick(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let now = now.trunc_subsecs(0).with_timezone(&self.timezone);
        self.cron
            .find_previous_occurrence(&now, true)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The first tick after `now`.
    pub fn next_tick(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let now = now.trunc_subsecs(0).with_timezone(&self.timezone);
        self.cron
            .find_next_occurrence(&now, false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// How late `tick` may fire and still count as on time: [`ON_TIME_GRACE`], or half the gap
    /// to the tick after it when that is shorter, so a tick is never mistaken for the next one.
    pub fn grace(&self, tick: DateTime<Utc>) -> Duration {
        let gap = self
            .next_tick(tick)
            .and_then(|next| (next - tick).to_std().ok())
            .unwrap_or(ON_TIME_GRACE);
        (gap / 2).min(ON_TIME_GRACE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn ticks(schedule: &Schedule, from: &str, n: usize) -> Vec<String> {
        let mut at = utc(from);
        (0..n)
            .map(|_| {
                at = schedule.next_tick(at).unwrap();
                at.to_rfc3339()
            })
            .collect()
    }

    fn berlin(cron: &str) -> Schedule {
        Schedule::new("s", cron, "noop")
            .unwrap()
            .timezone("Europe/Berlin")
            .unwrap()
    }

    #[test]
    fn a_daily_tick_keeps_its_wall_clock_time_across_both_dst_changes() {
        let daily = berlin("0 9 * * *");
        // CET is UTC+1, CEST UTC+2: 09:00 Berlin moves from 08:00Z to 07:00Z and back.
        assert_eq!(
            ticks(&daily, "2026-03-28T12:00:00Z", 2),
            ["2026-03-29T07:00:00+00:00", "2026-03-30T07:00:00+00:00"]
        );
        assert_eq!(
            ticks(&daily, "2026-10-24T12:00:00Z", 2),
            ["2026-10-25T08:00:00+00:00", "2026-10-26T08:00:00+00:00"]
        );
    }

    #[test]
    fn hourly_ticks_follow_real_hours_through_the_dst_changes() {
        let hourly = berlin("0 * * * *");
        // Spring: 02:00 does not exist on 2026-03-29; 01:00 CET (00:00Z) is followed by
        // 03:00 CEST (01:00Z), one real hour later.
        assert_eq!(
            ticks(&hourly, "2026-03-28T23:30:00Z", 3),
            [
                "2026-03-29T00:00:00+00:00",
                "2026-03-29T01:00:00+00:00",
                "2026-03-29T02:00:00+00:00"
            ]
        );
        // Autumn: 02:00 happens twice (00:00Z in CEST, 01:00Z in CET); both are real hours.
        assert_eq!(
            ticks(&hourly, "2026-10-24T23:30:00Z", 3),
            [
                "2026-10-25T00:00:00+00:00",
                "2026-10-25T01:00:00+00:00",
                "2026-10-25T02:00:00+00:00"
            ]
        );
    }

    #[test]
    fn a_daily_tick_in_the_repeated_hour_fires_once() {
        let daily = berlin("30 2 * * *");
        // 02:30 happens twice on 2026-10-25 (00:30Z and 01:30Z): a daily job runs once.
        assert_eq!(
            ticks(&daily, "2026-10-24T12:00:00Z", 2),
            ["2026-10-25T00:30:00+00:00", "2026-10-26T01:30:00+00:00"]
        );
    }

    #[test]
    fn a_daily_tick_in_the_skipped_hour_still_fires_that_day() {
        let daily = berlin("30 2 * * *");
        // 02:30 does not exist on 2026-03-29: it runs when the clock jumps, at 03:00 CEST
        // (01:00Z), as Vixie cron does, and at 02:30 CEST (00:30Z) the day after.
        assert_eq!(
            ticks(&daily, "2026-03-28T12:00:00Z", 2),
            ["2026-03-29T01:00:00+00:00", "2026-03-30T00:30:00+00:00"]
        );
        // Looking back works across the change too: the latest hourly tick at 01:45Z on the
        // autumn day is the second 02:00 (CET, 01:00Z).
        let hourly = berlin("0 * * * *");
        let latest = hourly.latest_tick(utc("2026-10-25T01:45:00Z")).unwrap();
        assert_eq!(latest.to_rfc3339(), "2026-10-25T01:00:00+00:00");
    }

    #[test]
    fn six_fields_put_seconds_first_and_the_latest_tick_is_at_or_before_now() {
        let every_10s = Schedule::new("s", "*/10 * * * * *", "noop").unwrap();
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 7).unwrap()
            + chrono::Duration::milliseconds(400);
        assert_eq!(
            every_10s.latest_tick(now).unwrap().to_rfc3339(),
            "2026-01-01T12:00:00+00:00"
        );
        assert_eq!(
            every_10s.next_tick(now).unwrap().to_rfc3339(),
            "2026-01-01T12:00:10+00:00"
        );
        let on_tick = utc("2026-01-01T12:00:10Z");
        assert_eq!(every_10s.latest_tick(on_tick), Some(on_tick));
        assert_eq!(every_10s.grace(on_tick), Duration::from_secs(5));
        let daily = Schedule::new("d", "0 3 * * *", "noop").unwrap();
        assert_eq!(daily.grace(utc("2026-01-01T03:00:00Z")), ON_TIME_GRACE);
    }

    #[test]
    fn bad_fields_are_named() {
        let field = |r: Result<Schedule, ScheduleError>| r.unwrap_err().field;
        assert_eq!(field(Schedule::new("a b", "* * * * *", "noop")), "name");
        assert_eq!(
            field(Schedule::new(&"n".repeat(65), "* * * * *", "noop")),
            "name"
        );
        assert_eq!(field(Schedule::new("n", "* * * *", "noop")), "cron");
        assert_eq!(
            field(Schedule::new("n", "0 0 0 * * * 2030", "noop")),
            "cron"
        );
        assert_eq!(field(Schedule::new("n", "61 * * * *", "noop")), "cron");
        assert_eq!(field(Schedule::new("n", "0 0 30 2 *", "noop")), "cron");
        assert_eq!(field(Schedule::new("n", "* * * * *", " ")), "kind");
        let ok = || Schedule::new("n", "* * * * *", "noop").unwrap();
        assert_eq!(field(ok().timezone("Mars/Olympus")), "timezone");
        assert_eq!(field(ok().queue("a b")), "queue");
        let err = ok().timezone("Europe/Berln").unwrap_err().to_string();
        assert!(
            err.contains("\"n\"") && err.contains("Europe/Berln"),
            "{err}"
        );
    }
}
