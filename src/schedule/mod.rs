//! Periodic jobs: cron schedules that enqueue a job at each tick, once across every process.
//!
//! A [`Schedule`] comes from `SCHEDULES` (parsed in `crate::config`) or from code (see
//! [`schedules`]); [`Schedules`] holds them, refuses a name given twice and, at start-up, a kind
//! that is not registered or args that do not fit it. Every process runs the scheduler
//! (`runner.rs`): there is no leader to lose. It sleeps until the next tick of any schedule and
//! then asks Redis to fire it; one Lua script per tick decides, atomically, whether this is the
//! first ask for that schedule and tick, and only then stores the job. So each tick fires once
//! however many processes ask, and a process that dies loses nothing the others do not cover.
//!
//! Ticks missed while no process ran are handled by the schedule's [`Missed`] policy: `one`
//! fires the latest of them once (never one job per missed tick), `skip` waits for the next
//! tick. A tick counts as missed once it is later than [`ON_TIME_GRACE`] (or half the gap to the
//! next tick, when shorter). A schedule never catches up a tick from before it first existed
//! (the first time any process saw its pattern and time zone), as Sidekiq-cron does not.

mod runner;
mod spec;

pub use runner::spawn;
pub use spec::{Missed, ON_TIME_GRACE, Schedule, ScheduleError};

use crate::config::Config;
use crate::jobs::Registry;

/// The schedules a process runs, names unique.
#[derive(Debug, Clone, Default)]
pub struct Schedules {
    list: Vec<Schedule>,
}

impl Schedules {
    /// No schedules.
    pub fn new() -> Schedules {
        Schedules::default()
    }

    /// Adds `schedule`; a name already taken is refused.
    pub fn add(&mut self, schedule: Schedule) -> Result<&mut Schedules, ScheduleError> {
        if self.list.iter().any(|s| s.name() == schedule.name()) {
            return Err(schedule.error("name", "is used by another schedule"));
        }
        self.list.push(schedule);
        Ok(self)
    }

    /// Checks that every schedule's kind is registered and its args fit the kind.
    pub fn check(&self, registry: &Registry) -> Result<(), ScheduleError> {
        for schedule in &self.list {
            match registry.validate(schedule.kind(), schedule.job_args()) {
                Ok(()) => {}
                Err(crate::jobs::KindError::Unknown(_)) => {
                    let known = registry.kinds().join(", ");
                    return Err(schedule.error(
                        "kind",
                        &format!(
                            "{}; registered kinds: {known}",
                            crate::jobs::unknown_kind_message(schedule.kind())
                        ),
                    ));
                }
                Err(e) => return Err(schedule.error("args", &e.to_string())),
            }
        }
        Ok(())
    }

    /// The schedules, in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = &Schedule> {
        self.list.iter()
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

/// The queue `schedule`'s jobs go to: its own, else its kind's, else `default`.
pub fn job_queue(schedule: &Schedule, registry: &Registry) -> String {
    schedule
        .queue_name()
        .map(str::to_string)
        .or_else(|| registry.options(schedule.kind()).and_then(|o| o.queue))
        .unwrap_or_else(|| crate::queue::spec::DEFAULT_QUEUE.to_string())
}

/// The schedules this binary runs: those in `SCHEDULES`, then yours, checked against `registry`.
///
/// To run one of your own kinds periodically, add a line here, e.g.
/// `schedules.add(Schedule::new("nightly-report", "0 3 * * *", "report")?.timezone("Europe/Berlin")?)?;`
/// A name used twice (here or in `SCHEDULES`), an unknown kind or args that do not fit it stop
/// the process at start-up, before anything runs.
pub fn schedules(config: &Config, registry: &Registry) -> Result<Schedules, ScheduleError> {
    let mut schedules = Schedules::new();
    for schedule in &config.schedules {
        schedules.add(schedule.clone())?;
    }
    // Your own schedules go here, one `schedules.add(...)?;` line each.
    schedules.check(registry)?;
    Ok(schedules)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn registry() -> Registry {
        let vars = [("DEMO_KINDS".to_string(), "true".to_string())];
        crate::jobs::registry(&Config::from_vars(vars).unwrap()).unwrap()
    }

    #[test]
    fn schedules_added_in_code_join_those_of_the_config_with_unique_names() {
        let vars = [(
            "SCHEDULES".to_string(),
            r#"[{"name":"tidy","cron":"0 * * * *","kind":"noop"}]"#.to_string(),
        )];
        let config = Config::from_vars(vars).unwrap();
        let mut all = schedules(&config, &registry()).unwrap();
        let mine = Schedule::new("report", "0 3 * * *", "echo")
            .unwrap()
            .args(json!({"to": "ops"}));
        all.add(mine).unwrap();
        assert_eq!(all.len(), 2);
        let again = Schedule::new("tidy", "0 4 * * *", "noop").unwrap();
        let err = all.add(again).unwrap_err();
        assert_eq!((err.entry.as_str(), err.field), ("\"tidy\"", "name"));
        assert!(all.check(&registry()).is_ok());
    }

    #[test]
    fn an_unregistered_kind_or_unfitting_args_are_refused_naming_the_field() {
        let mut unknown = Schedules::new();
        unknown
            .add(Schedule::new("x", "* * * * *", "report").unwrap())
            .unwrap();
        let err = unknown.check(&registry()).unwrap_err();
        assert_eq!(err.field, "kind");
        assert!(
            err.reason.contains("\"report\"") && err.reason.contains("echo"),
            "{err}"
        );
        let mut bad_args = Schedules::new();
        let sleep = Schedule::new("nap", "* * * * *", "sleep")
            .unwrap()
            .args(json!({"ms": "long"}));
        bad_args.add(sleep).unwrap();
        let err = bad_args.check(&registry()).unwrap_err();
        assert_eq!((err.entry.as_str(), err.field), ("\"nap\"", "args"));
    }
}
