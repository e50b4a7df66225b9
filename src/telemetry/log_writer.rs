//! Log lines reach stdout in batches: under load, one `write` for the lines of about a millisecond.
//!
//! A busy worker logs one line per finished job. Written one by one, each line was a system call
//! on the thread that carries Redis I/O and the runners: about 5% of a drain's process CPU with
//! stdout on a file (`perf`), and more on Heroku, where stdout is a pipe and each write wakes the
//! log router's reader. Here a line is appended to a buffer, and a thread of its own writes what
//! has gathered: it is woken once per batch, not per line, and sleeps while nothing is logged.
//!
//! A line of a quiet process is out as soon as the writer thread wakes; while lines come often
//! (within a millisecond of the last write), they are at most about a millisecond late
//! ([`GATHER`]) while stdout keeps up.
//! What is still in the buffer when the process is killed (SIGKILL, out of memory) is lost;
//! [`flush`] writes it out on every exit this process takes itself, and after a panic is logged.

use std::io::Write;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use tracing_subscriber::fmt::MakeWriter;

/// How long the writer thread lets lines gather between two writes, while lines keep coming.
const GATHER: Duration = Duration::from_millis(1);
/// A buffer this full is written out by the thread that filled it, so the buffer stays bounded
/// however fast lines come.
const FULL: usize = 64 * 1024;

/// Lines waiting to be written, where they go, and the writer thread's wake-up.
struct Batches {
    pending: Mutex<Vec<u8>>,
    /// Held while a batch is taken and written, so batches are written in the order they were
    /// taken: a line is never written before one logged ahead of it.
    output: Mutex<Box<dyn Write + Send>>,
    arrived: Condvar,
    /// [`GATHER`] (longer in tests).
    gather: Duration,
}

static BATCHES: OnceLock<Batches> = OnceLock::new();
/// Whether the writer thread started.
static STARTED: OnceLock<bool> = OnceLock::new();

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while a line was appended leaves at worst a cut line; logging goes on.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Batches {
    fn new(output: Box<dyn Write + Send>) -> Batches {
        Batches::gathering(output, GATHER)
    }

    fn gathering(output: Box<dyn Write + Send>, gather: Duration) -> Batches {
        Batches {
            pending: Mutex::new(Vec::new()),
            output: Mutex::new(output),
            arrived: Condvar::new(),
            gather,
        }
    }

    fn append(&self, line: &[u8]) {
        let mut pending = lock(&self.pending);
        let first = pending.is_empty();
        pending.extend_from_slice(line);
        let full = pending.len() >= FULL;
        drop(pending);
        if full {
            self.write_out();
        } else if first {
            self.arrived.notify_one();
        }
    }

    /// Takes whatever is pending and writes it out. `output` is locked before the batch is
    /// taken, so batches are written in the order they were taken.
    /// Returns how many lines it wrote.
    fn write_out(&self) -> usize {
        self.write_out_with(lock(&self.output))
    }

    fn write_out_with(&self, mut output: MutexGuard<'_, Box<dyn Write + Send>>) -> usize {
        let batch = std::mem::take(&mut *lock(&self.pending));
        if batch.is_empty() {
            return 0;
        }
        // Nowhere to report a failed write of the log; the lines are dropped, as a write to a
        // closed stdout would drop them.
        let _ = output.write_all(&batch);
        let _ = output.flush();
        batch.iter().filter(|&&b| b == b'\n').count()
    }

    /// The writer thread: waits for a line. One that comes after a quiet moment is written at
    /// once, about as soon as a direct write would have put it there, and so is each line of a
    /// process that logs less often than every [`GATHER`]. One that comes within [`GATHER`] of
    /// the last write means lines come often: from then on what gathered is written every
    /// [`GATHER`], until a look finds nothing. Lines that come one at a time but often (a worker
    /// with one slot logs a line every few hundred µs) so cost a wake-up a millisecond, not one a
    /// line (0.8 wake-ups and 9 µs of this thread's CPU per job there, when each line woke it).
    fn run(&self) {
        let mut last_write: Option<Instant> = None;
        loop {
            let mut pending = lock(&self.pending);
            while pending.is_empty() {
                pending = self
                    .arrived
                    .wait(pending)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            drop(pending);
            if last_write.is_some_and(|at| at.elapsed() < self.gather) {
                loop {
                    std::thread::sleep(self.gather);
                    if self.write_out() == 0 {
                        break;
                    }
                }
            } else {
                self.write_out();
            }
            last_write = Some(Instant::now());
        }
    }
}

/// The writer of the batches, for `tracing_subscriber`'s `with_writer`. Starts the writer
/// thread; falls back to writing each line at once should the thread not start.
pub(super) fn batched_stdout() -> LogWriter {
    BATCHES.get_or_init(|| Batches::new(Box::new(std::io::stdout())));
    let started = *STARTED.get_or_init(|| {
        std::thread::Builder::new()
            .name("onedyno-log".into())
            .spawn(batches_run)
            .is_ok()
    });
    LogWriter { batched: started }
}

fn batches_run() {
    if let Some(batches) = BATCHES.get() {
        batches.run();
    }
}

/// Writes out every line logged so far. Called before the process exits on its own, and by the
/// panic hook once the panic is logged.
pub fn flush() {
    if let Some(batches) = BATCHES.get() {
        batches.write_out();
    }
}

/// [`flush`], unless a write is under way: for an exit that must not wait on stdout (the
/// shutdown deadline), where a stalled reader of the log would otherwise hold the process up.
pub fn flush_unless_busy() {
    if let Some(batches) = BATCHES.get()
        && let Ok(output) = batches.output.try_lock()
    {
        batches.write_out_with(output);
    }
}

/// Makes the per-event writers of [`batched_stdout`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct LogWriter {
    batched: bool,
}

/// One event's writer. The formatter writes the whole line in one call.
pub(crate) struct LineWriter {
    batched: bool,
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        LineWriter {
            batched: self.batched,
        }
    }
}

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match BATCHES.get() {
            Some(batches) if self.batched => {
                batches.append(buf);
                Ok(buf.len())
            }
            _ => std::io::stdout().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// Everything written, and how many writes it took, shared with the test.
    #[derive(Clone, Default)]
    struct Written(Arc<Mutex<Vec<u8>>>, Arc<Mutex<usize>>);

    impl Write for Written {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            lock(&self.0).extend_from_slice(buf);
            *lock(&self.1) += 1;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn text(written: &Written) -> String {
        String::from_utf8(lock(&written.0).clone()).unwrap()
    }

    #[test]
    fn lines_wait_for_their_batch_and_come_out_whole_and_in_order() {
        let written = Written::default();
        let batches = Batches::new(Box::new(written.clone()));
        batches.append(b"at=info event=one\n");
        batches.append(b"at=info event=two\n");
        assert_eq!(text(&written), "", "nothing is written per line");
        batches.write_out();
        assert_eq!(text(&written), "at=info event=one\nat=info event=two\n");
        assert_eq!(*lock(&written.1), 1, "one write for the batch");
        batches.write_out();
        assert_eq!(*lock(&written.1), 1, "an empty batch writes nothing");
    }

    #[test]
    fn a_full_buffer_is_written_by_the_thread_that_filled_it() {
        let written = Written::default();
        let batches = Batches::new(Box::new(written.clone()));
        let line = format!("at=info event=job.finished pad={}\n", "x".repeat(100));
        let lines = FULL / line.len() + 1;
        for _ in 0..lines {
            batches.append(line.as_bytes());
        }
        // No writer thread runs here: the append that filled the buffer wrote it.
        assert_eq!(text(&written).lines().count(), lines);
        assert!(
            lock(&batches.pending).capacity() < FULL,
            "the buffer was handed over"
        );
    }

    #[test]
    fn a_first_line_goes_at_once_and_lines_that_follow_soon_go_together() {
        let written = Written::default();
        // A long gather, so the lines below come well within it on a loaded machine too.
        let batches: &'static Batches = Box::leak(Box::new(Batches::gathering(
            Box::new(written.clone()),
            Duration::from_secs(3),
        )));
        std::thread::spawn(move || batches.run());
        let lines_within = |n: usize, limit: Duration| {
            let until = Instant::now() + limit;
            while text(&written).lines().count() < n && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(5));
            }
            text(&written).lines().count()
        };
        batches.append(b"first\n");
        assert_eq!(lines_within(1, Duration::from_secs(2)), 1, "at once");
        // One at a time, as a worker with one slot logs: each would have woken the writer.
        for i in 0..5 {
            std::thread::sleep(Duration::from_millis(20));
            batches.append(format!("then {i}\n").as_bytes());
        }
        assert_eq!(lines_within(6, Duration::from_secs(10)), 6);
        assert_eq!(*lock(&written.1), 2, "the five that followed in one write");
    }

    #[test]
    fn lines_from_many_threads_keep_each_threads_order_with_the_writer_thread_running() {
        let written = Written::default();
        let batches: &'static Batches =
            Box::leak(Box::new(Batches::new(Box::new(written.clone()))));
        std::thread::spawn(move || batches.run());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                std::thread::spawn(move || {
                    for i in 0..2_000 {
                        batches.append(format!("t={t} i={i}\n").as_bytes());
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // The writer thread writes what gathered within a few milliseconds, unasked.
        let mut waited = 0;
        while text(&written).lines().count() < 8_000 && waited < 500 {
            std::thread::sleep(Duration::from_millis(10));
            waited += 1;
        }
        let all = text(&written);
        let mut next = [0; 4];
        for line in all.lines() {
            let (t, i) = line.split_once(' ').unwrap();
            let t: usize = t.trim_start_matches("t=").parse().unwrap();
            let i: usize = i.trim_start_matches("i=").parse().unwrap();
            assert_eq!(i, next[t], "thread {t}'s lines in order, none cut or lost");
            next[t] += 1;
        }
        assert_eq!(next, [2_000; 4]);
    }
}
