//! The scheduler loop every process runs: sleep until the next tick of any schedule, then ask
//! Redis to fire each schedule's latest tick. Time is Redis's (`TIME`), so processes with skewed
//! clocks agree on which tick is due; the fire script makes each tick fire once.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

use super::{Schedule, Schedules};
use crate::jobs::Registry;
use crate::queue::{Queue, QueueError, Tick, TickOutcome};
use crate::shutdown::Shutdown;
use crate::telemetry::Outage;

/// The longest sleep between passes, so a far tick is approached in steps and a wall-clock
/// jump (on this host or Redis's) is noticed within this long.
const MAX_SLEEP: Duration = Duration::from_secs(30);
/// The pause after Redis failed or its clock is behind the tick asked for.
const RETRY_AFTER: Duration = Duration::from_millis(500);
const EARLY_RETRY: Duration = Duration::from_millis(20);
const REGISTER_RETRY: Duration = Duration::from_millis(100);

/// A schedule with the job each tick enqueues, resolved once at start.
struct Planned {
    schedule: Schedule,
    queue: String,
    args: String,
    max_attempts: u32,
    timeout: Option<Duration>,
    /// The latest tick this process has had an answer for.
    asked: Option<i64>,
}

impl Planned {
    /// The kind's own options come between the schedule's fields and the process's settings,
    /// as for `POST /jobs`.
    fn new(schedule: &Schedule, registry: &Registry, max_attempts: u32) -> Planned {
        let options = registry.options(schedule.kind()).unwrap_or_default();
        Planned {
            schedule: schedule.clone(),
            queue: super::job_queue(schedule, registry),
            args: schedule.job_args().to_string(),
            max_attempts: options.max_attempts.unwrap_or(max_attempts),
            timeout: options.timeout,
            asked: None,
        }
    }
}

/// Starts the scheduler (nothing when there are no schedules); it ends at shutdown. `registry`
/// supplies each kind's defaults and `max_attempts` is `MAX_ATTEMPTS`.
pub fn spawn(
    queue: Queue,
    schedules: &Schedules,
    registry: &Registry,
    max_attempts: u32,
    shutdown: Shutdown,
) {
    if schedules.is_empty() {
        return;
    }
    let planned = schedules
        .iter()
        .map(|s| Planned::new(s, registry, max_attempts))
        .collect();
    tokio::spawn(run(queue, planned, shutdown));
}

async fn run(queue: Queue, mut planned: Vec<Planned>, shutdown: Shutdown) {
    // Redis being away is logged by the connection already; say it once here, at debug.
    let mut outage = Outage::quiet("schedule.redis_failed");
    let signatures: Vec<(String, String, String)> = planned
        .iter()
        .map(|p| {
            let name = p.schedule.name().to_string();
            (name, p.schedule.signature(), p.queue.clone())
        })
        .collect();
    while let Err(e) = queue.register_schedules(&signatures).await {
        if e.is_transient() {
            outage.fail(&e);
        } else {
            tracing::error!(event = "schedule.register_failed", error = %e);
        }
        // Short: at start-up this only waits for the first connection, and a tick is near.
        if !shutdown.sleep(REGISTER_RETRY).await {
            return;
        }
    }
    outage.recovered();
    tracing::info!(event = "schedule.started", schedules = planned.len());
    loop {
        // Dropped at shutdown even mid-script: a tick's script either ran whole or not at all.
        let Some(result) = shutdown.unless_stopped(pass(&queue, &mut planned)).await else {
            return;
        };
        let wait = match result {
            Ok(wait) => {
                outage.recovered();
                wait
            }
            Err(e) => {
                outage.fail(&e);
                RETRY_AFTER
            }
        };
        if !shutdown.sleep(wait).await {
            return;
        }
    }
}

fn time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Fires every schedule whose latest tick this process has not asked about yet; returns how long
/// to sleep until the next tick of any schedule.
async fn pass(queue: &Queue, planned: &mut [Planned]) -> Result<Duration, QueueError> {
    let now = time(queue.clock_ms().await?);
    let read_at = std::time::Instant::now();
    let mut wait = MAX_SLEEP;
    for plan in planned.iter_mut() {
        if let Some(tick) = plan.schedule.latest_tick(now) {
            let tick_ms = tick.timestamp_millis();
            if plan.asked.is_none_or(|asked| asked < tick_ms) {
                match fire(queue, plan, tick).await? {
                    TickOutcome::Early(_) => wait = wait.min(EARLY_RETRY),
                    _ => plan.asked = Some(tick_ms),
                }
            }
        }
        if let Some(next) = plan.schedule.next_tick(now) {
            let until = (next - now).to_std().unwrap_or_default();
            wait = wait.min(until.max(Duration::from_millis(1)));
        }
    }
    // The waits count from `now`; the fires since then took some of them.
    Ok(wait
        .saturating_sub(read_at.elapsed())
        .max(Duration::from_millis(1)))
}

/// Asks Redis to fire `tick` of `plan`'s schedule, and logs what this process made happen.
async fn fire(
    queue: &Queue,
    plan: &Planned,
    tick: DateTime<Utc>,
) -> Result<TickOutcome, QueueError> {
    let schedule = &plan.schedule;
    let job_id = Queue::job_id_for(&plan.queue);
    let outcome = queue
        .fire_tick(&Tick {
            schedule: schedule.name(),
            at_ms: tick.timestamp_millis(),
            grace: schedule.grace(tick),
            catch_up: schedule.missed_policy() == super::Missed::One,
            overlap: schedule.allows_overlap(),
            job_id: &job_id,
            kind: schedule.kind(),
            queue: &plan.queue,
            args: &plan.args,
            max_attempts: plan.max_attempts,
            timeout: plan.timeout,
        })
        .await?;
    let name = schedule.name();
    let tick_text = rfc3339(tick);
    match &outcome {
        TickOutcome::Fired {
            job_id,
            at_ms,
            caught_up,
        } => tracing::info!(
            event = "schedule.fired",
            name,
            job_id = %job_id,
            tick = %tick_text,
            late_ms = at_ms - tick.timestamp_millis(),
            caught_up,
            kind = schedule.kind(),
            queue = %plan.queue
        ),
        TickOutcome::Missed(reason) => tracing::info!(
            event = "schedule.missed",
            name,
            tick = %tick_text,
            reason = %reason,
            missed = schedule.missed_policy().as_str()
        ),
        TickOutcome::Skipped(previous, status) => tracing::info!(
            event = "schedule.skipped",
            name,
            tick = %tick_text,
            previous_job_id = %previous,
            previous_status = %status,
            reason = "overlap"
        ),
        TickOutcome::Done | TickOutcome::Early(_) => {}
    }
    Ok(outcome)
}
