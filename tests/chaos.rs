//! Chaos: three processes on one Redis with AOF take a few thousand jobs of mixed kinds while a
//! random process is SIGKILLed or SIGTERMed and restarted every couple of seconds, and Redis is
//! killed and restarted once. Afterwards every accepted job finished as its kind dictates, none
//! is lost, nothing is left in flight, and the extra runs are bounded by the kills.
//!
//! The run is seeded: it prints `chaos seed N`, and `CHAOS_SEED=N` replays the same plan and
//! the same choice of victims (the timing of a kill against the jobs is the machine's).
//! `examples/chaos` is the same for as long as asked.

mod support;

#[allow(dead_code)]
#[path = "../examples/common/drive.rs"]
mod drive;
#[allow(dead_code)]
#[path = "../examples/common/mix.rs"]
mod mix;
#[allow(dead_code)]
#[path = "../examples/common/redis_server.rs"]
mod redis_server;

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use drive::{Ports, Tally};
use mix::Planned;
use redis_server::AofRedis;
use support::{App, FAST_BACKOFF, SIGTERM};

const PROCESSES: usize = 3;
const CONCURRENCY: u64 = 10;
const JOBS: usize = 3000;
const BATCH: usize = 50;
/// How long the kills go on; the jobs are spread over it.
const CHAOS: Duration = Duration::from_secs(35);

/// What the chaos loop did.
#[derive(Debug, Default)]
struct Actions {
    kills: u64,
    sigterms: u64,
    redis_restarts: u64,
}

fn start_app(redis: &AofRedis) -> App {
    let concurrency = CONCURRENCY.to_string();
    let mut env = FAST_BACKOFF.to_vec();
    env.extend([
        ("WORKER_CONCURRENCY", concurrency.as_str()),
        ("JOB_RETENTION_MAX", "1000000"),
    ]);
    App::start_ready(&redis.url(), &env)
}

fn seed() -> u64 {
    std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random)
}

/// Stops process `i` (SIGKILL or SIGTERM, as `rng` says) and starts a new one in its place.
fn hit_one(
    apps: &mut [App],
    ports: &Ports,
    redis: &AofRedis,
    rng: &mut StdRng,
    done: &mut Actions,
) {
    let i = rng.random_range(0..apps.len());
    ports.remove(apps[i].port());
    if rng.random_bool(0.5) {
        apps[i].kill();
        done.kills += 1;
    } else {
        apps[i].signal(SIGTERM);
        // The drain ends with exit code 0, well before SHUTDOWN_TIMEOUT's watchdog (code 1).
        let exited = apps[i].wait_exit(Duration::from_secs(15));
        let clean = exited.is_some_and(|status| status.success());
        assert!(clean, "{exited:?} after SIGTERM:\n{}", apps[i].logs());
        done.sigterms += 1;
    }
    apps[i] = start_app(redis);
    ports.add(apps[i].port());
}

/// Hits a process every 1.5–2.5 s until `until`, and restarts Redis once halfway.
fn chaos_loop(
    apps: &mut [App],
    ports: &Ports,
    redis: &mut AofRedis,
    rng: &mut StdRng,
    until: Instant,
) -> Actions {
    let mut done = Actions::default();
    let halfway = Instant::now() + (until - Instant::now()) / 2;
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(rng.random_range(1500..2500)));
        if done.redis_restarts == 0 && Instant::now() >= halfway {
            redis.restart(Duration::from_millis(500));
            done.redis_restarts += 1;
        } else {
            hit_one(apps, ports, redis, rng, &mut done);
        }
    }
    done
}

fn report(seed: u64, done: &Actions, tally: &Tally, resent: u64, bound: u64) {
    println!(
        "chaos seed {seed}: accepted {} succeeded {} lost {} wrong {} extra runs {} (bound {bound}) \
         redis-caused failures {} kills {} sigterms {} redis restarts {} batches resent {resent}",
        tally.accepted,
        tally.succeeded,
        tally.lost,
        tally.wrong,
        tally.extra_runs,
        tally.redis_failures,
        done.kills,
        done.sigterms,
        done.redis_restarts,
    );
}

#[test]
fn every_accepted_job_finishes_as_its_kind_dictates_through_kills_and_a_redis_restart() {
    let seed = seed();
    println!("chaos seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let plan: Vec<Planned> = (0..JOBS).map(|i| mix::plan(&mut rng, seed, i)).collect();
    let mut redis = AofRedis::start(true);
    let mut apps: Vec<App> = (0..PROCESSES).map(|_| start_app(&redis)).collect();
    let ports = Ports::default();
    apps.iter().for_each(|a| ports.add(a.port()));

    let until = Instant::now() + CHAOS;
    let pace = CHAOS / (JOBS / BATCH) as u32;
    let (accepted, stop) = (AtomicU64::new(0), AtomicBool::new(false));
    let (enqueued, done) = std::thread::scope(|s| {
        let enqueuer = s.spawn(|| {
            let deadline = until + Duration::from_secs(20);
            drive::enqueue_all(&plan, &ports, BATCH, pace, deadline, &accepted, &stop)
        });
        let done = chaos_loop(&mut apps, &ports, &mut redis, &mut rng, until);
        (enqueuer.join().expect("enqueuer"), done)
    });

    // A SIGKILLed process's jobs come back once its heartbeat expires (15 s) and a reaper
    // sees it (every 5-6 s); 60 s is room for that on a busy machine.
    let client = drive::client();
    let port = apps[0].port();
    let (queues, idle) = drive::wait_idle(&client, port, Duration::from_secs(60));
    let tally = drive::judge_all(port, &plan, &enqueued.ids, done.redis_restarts > 0);
    let bound = (done.kills + done.sigterms) * CONCURRENCY
        + done.redis_restarts * PROCESSES as u64 * CONCURRENCY;
    report(seed, &done, &tally, enqueued.resent, bound);

    assert!(idle, "never idle: {queues}");
    assert_eq!(tally.accepted, JOBS as u64, "not every batch was accepted");
    assert_eq!(tally.lost, 0, "{:?}", tally.problems);
    assert_eq!(tally.wrong, 0, "{:?}", tally.problems);
    assert_eq!(tally.succeeded, tally.accepted);
    assert!(
        tally.extra_runs <= bound,
        "extra runs {} > {bound}",
        tally.extra_runs
    );
    let left = drive::leftovers(&client, port).expect("lists readable");
    assert!(left.is_empty(), "left over: {left:?}");
    assert!(done.kills + done.sigterms >= 5, "too few hits: {done:?}");
    assert_eq!(done.redis_restarts, 1);
}
