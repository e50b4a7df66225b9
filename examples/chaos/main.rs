//! The chaos run, long form: `tests/chaos.rs` for as long as asked. N processes (the release
//! binary) on one Redis take the planned jobs over HTTP while a random process is SIGKILLed or
//! SIGTERMed and restarted every 1.5–2.5 s; a Redis of its own (AOF, `appendfsync always`) is
//! killed and restarted at a third and at two thirds of the run. Then it waits until nothing is
//! left to do and judges every accepted job by its public record.
//!
//! ```text
//! cargo build --release
//! cargo run --release --example chaos -- --jobs 10000 --minutes 10
//! cargo run --release --example chaos -- --jobs 10000 --minutes 10 --redis-url redis://host:port
//! ```
//!
//! With `--redis-url` Redis is not restarted (it is not ours), and the run's keys get a prefix
//! of their own (`REDIS_PREFIX=chaos-SEED`). Exit code 0 when no job was lost or wrong.

#[allow(dead_code)]
#[path = "../common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use common::drive::{self, Enqueued, Ports, Tally};
use common::flags::Flags;
use common::mix::{self, Planned};
use common::procs::{Onedyno, onedyno_binary};
use common::redis_server::AofRedis;

const USAGE: &str = "usage: chaos [--jobs 10000] [--minutes 10] [--redis-url URL] \
                     [--processes 3] [--concurrency 10] [--seed N]";
const BATCH: usize = 50;

/// The Redis the run uses: its own (restartable) or one it was given.
enum Store {
    Own(AofRedis),
    Given(String),
}

impl Store {
    fn url(&self) -> String {
        match self {
            Store::Own(redis) => redis.url(),
            Store::Given(url) => url.clone(),
        }
    }
}

/// The processes, and how to start one more like them.
struct Fleet {
    binary: std::path::PathBuf,
    url: String,
    env: Vec<(String, String)>,
    log: std::path::PathBuf,
    procs: Vec<Onedyno>,
}

impl Fleet {
    fn start_one(&self) -> Onedyno {
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        Onedyno::start(&self.binary, &self.url, &env, &self.log).unwrap_or_else(|| {
            eprintln!(
                "onedyno did not become healthy within 30 s; see {}",
                self.log.display()
            );
            std::process::exit(1)
        })
    }
}

/// What the chaos loop did.
#[derive(Debug, Default)]
struct Actions {
    kills: u64,
    sigterms: u64,
    redis_restarts: u64,
}

fn main() {
    let flags = Flags::parse(
        &[
            "jobs",
            "minutes",
            "redis-url",
            "processes",
            "concurrency",
            "seed",
        ],
        USAGE,
    );
    let jobs: usize = flags.get("jobs", 10_000);
    let minutes: f64 = flags.get("minutes", 10.0);
    let processes: usize = flags.get("processes", 3).max(1);
    let concurrency: u64 = flags.get("concurrency", 10);
    let seed: u64 = flags.get("seed", rand::random());
    println!(
        "chaos seed {seed}: {jobs} jobs, {minutes} min, {processes} processes x {concurrency}"
    );

    let mut store = match flags.text("redis-url") {
        Some(url) => Store::Given(url),
        None => Store::Own(AofRedis::start(true)),
    };
    let mut rng = StdRng::seed_from_u64(seed);
    let plan: Vec<Planned> = (0..jobs).map(|i| mix::plan(&mut rng, seed, i)).collect();
    let mut fleet = fleet(&store, processes, concurrency, seed);
    let ports = Ports::default();
    fleet.procs.iter().for_each(|p| ports.add(p.port()));

    let run = Duration::from_secs_f64(minutes.max(0.1) * 60.0);
    let until = Instant::now() + run;
    // Jobs keep coming until the end, so every kill finds work in flight.
    let pace = run / plan.len().div_ceil(BATCH).max(1) as u32;
    let (accepted, stop) = (AtomicU64::new(0), AtomicBool::new(false));
    let (enqueued, done) = std::thread::scope(|s| {
        let enqueuer = s.spawn(|| {
            let deadline = until + Duration::from_secs(60);
            drive::enqueue_all(&plan, &ports, BATCH, pace, deadline, &accepted, &stop)
        });
        let done = chaos_loop(&mut fleet, &mut store, &ports, &mut rng, until, &accepted);
        (enqueuer.join().expect("enqueuer"), done)
    });

    let ok = settle_and_judge(
        fleet.procs[0].port(),
        &plan,
        &enqueued,
        &done,
        seed,
        (processes as u64, concurrency),
    );
    println!("{}", if ok { "OK" } else { "FAILED" });
    std::process::exit(if ok { 0 } else { 1 });
}

/// Waits until nothing is left to do, judges every accepted job and prints the summary; true
/// when nothing was lost, wrong or left over and the extra runs are within their bound.
fn settle_and_judge(
    port: u16,
    plan: &[Planned],
    enqueued: &Enqueued,
    done: &Actions,
    seed: u64,
    (processes, concurrency): (u64, u64),
) -> bool {
    let client = drive::client();
    println!(
        "chaos over; waiting for the queues to empty (reaping a SIGKILLed process takes ~21 s)"
    );
    let (queues, idle) = drive::wait_idle(&client, port, Duration::from_secs(180));
    let tally = drive::judge_all(port, plan, &enqueued.ids, done.redis_restarts > 0);
    let left = drive::leftovers(&client, port);
    // A kill or SIGTERM cuts short at most one job per slot of its process; a Redis restart at
    // most one per slot of every process (fetch replies lost with the connection).
    let bound =
        (done.kills + done.sigterms) * concurrency + done.redis_restarts * processes * concurrency;
    summary(seed, done, &tally, enqueued.resent, bound);
    let clean = idle && left.as_ref().is_some_and(Vec::is_empty);
    if !clean {
        println!("not idle at the end: {queues}\nleft over: {left:?}");
    }
    for problem in &tally.problems {
        println!("problem: {problem}");
    }
    clean && tally.lost == 0 && tally.wrong == 0 && tally.extra_runs <= bound
}

fn fleet(store: &Store, processes: usize, concurrency: u64, seed: u64) -> Fleet {
    let env = [
        ("WORKER_CONCURRENCY", concurrency.to_string()),
        ("RETRY_BACKOFF_BASE", "0.2".to_string()),
        ("RETRY_BACKOFF_MAX", "1".to_string()),
        ("JOB_RETENTION_MAX", "10000000".to_string()),
        ("REDIS_PREFIX", format!("chaos-{seed}")),
    ];
    let log = std::env::temp_dir().join(format!("onedyno-chaos-{seed}.log"));
    println!("the processes' warnings and errors go to {}", log.display());
    let mut fleet = Fleet {
        binary: onedyno_binary(),
        url: store.url(),
        env: env.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        log,
        procs: Vec::new(),
    };
    for _ in 0..processes {
        let one = fleet.start_one();
        fleet.procs.push(one);
    }
    fleet
}

/// Hits a process every 1.5–2.5 s until `until`, restarts its own Redis at a third and two
/// thirds of the run, and prints the counts every ~10 s.
fn chaos_loop(
    fleet: &mut Fleet,
    store: &mut Store,
    ports: &Ports,
    rng: &mut StdRng,
    until: Instant,
    accepted: &AtomicU64,
) -> Actions {
    let started = Instant::now();
    let third = (until - started) / 3;
    let mut done = Actions::default();
    let mut next_report = started + Duration::from_secs(10);
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(rng.random_range(1500..2500)));
        let redis_due = started + third * (done.redis_restarts as u32 + 1);
        match store {
            Store::Own(redis) if done.redis_restarts < 2 && Instant::now() >= redis_due => {
                redis.restart(Duration::from_millis(500));
                done.redis_restarts += 1;
            }
            _ => hit_one(fleet, ports, rng, &mut done),
        }
        if Instant::now() >= next_report {
            progress(started, fleet, &done, accepted.load(Ordering::Relaxed));
            next_report += Duration::from_secs(10);
        }
    }
    done
}

/// Stops a random process (SIGKILL or SIGTERM) and starts a new one in its place.
fn hit_one(fleet: &mut Fleet, ports: &Ports, rng: &mut StdRng, done: &mut Actions) {
    let i = rng.random_range(0..fleet.procs.len());
    ports.remove(fleet.procs[i].port());
    if rng.random_bool(0.5) {
        fleet.procs[i].kill();
        done.kills += 1;
    } else {
        if !fleet.procs[i].terminate(Duration::from_secs(15)) {
            println!(
                "process {} did not exit within 15 s of SIGTERM (killed)",
                fleet.procs[i].pid()
            );
        }
        done.sigterms += 1;
    }
    fleet.procs[i] = fleet.start_one();
    ports.add(fleet.procs[i].port());
}

/// One line of counts: what was accepted, what is still in the system, what was done to it.
fn progress(started: Instant, fleet: &Fleet, done: &Actions, accepted: u64) {
    let client = drive::client();
    let queues = drive::get_json(&client, fleet.procs[0].port(), "/queues").unwrap_or_default();
    let depth: u64 = queues["queues"]
        .as_array()
        .map_or(0, |qs| qs.iter().filter_map(|q| q["depth"].as_u64()).sum());
    let count = |c: &str| queues["counts"][c].as_u64().unwrap_or(0);
    let waiting = depth + count("running") + count("retrying") + count("scheduled");
    println!(
        "t={:>4}s accepted {accepted} done~{} queued {depth} running {} retrying {} dead {} \
         kills {} sigterms {} redis restarts {}",
        started.elapsed().as_secs(),
        accepted.saturating_sub(waiting),
        count("running"),
        count("retrying"),
        count("dead"),
        done.kills,
        done.sigterms,
        done.redis_restarts,
    );
}

fn summary(seed: u64, done: &Actions, tally: &Tally, resent: u64, bound: u64) {
    println!(
        "summary (seed {seed}): accepted {} succeeded {} lost {} wrong {} extra runs {} \
         (bound {bound}) redis-caused failures {} kills {} sigterms {} redis restarts {} \
         batches resent {resent}",
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
