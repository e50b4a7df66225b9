//! Delays that grow: a job's retry delays (exponential, with jitter, capped), and [`Doubling`],
//! the plain doubling wait of a loop that retries a failed Redis call.

use std::time::Duration;

/// `RETRY_BACKOFF_BASE` and `RETRY_BACKOFF_MAX`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// The delay before the first retry.
    pub base: Duration,
    /// The longest delay.
    pub max: Duration,
}

impl Backoff {
    /// The delay after failure number `failure` (1 for the first): about base x 2^(failure-1),
    /// spread by ±25% so that jobs that failed together (an API outage) do not retry together.
    pub fn delay(&self, failure: u32, rng: &mut impl rand::Rng) -> Duration {
        let exponent = failure.saturating_sub(1).min(62) as i32;
        let nominal = self.base.as_secs_f64() * 2f64.powi(exponent);
        let jittered = nominal * rng.random_range(0.75..1.25);
        Duration::from_secs_f64(jittered.min(self.max.as_secs_f64()))
    }
}

/// A wait that doubles after each use, up to `max`, and starts over on [`Doubling::reset`]: how
/// long a loop waits before trying a failed call again, so an outage is not hammered.
#[derive(Debug, Clone, Copy)]
pub struct Doubling {
    first: Duration,
    current: Duration,
    max: Duration,
}

impl Doubling {
    /// Waits `first`, then twice as long each time, never more than `max`.
    pub fn new(first: Duration, max: Duration) -> Doubling {
        Doubling {
            first,
            current: first.min(max),
            max,
        }
    }

    /// The wait to use now; the next one is twice as long.
    pub fn next_wait(&mut self) -> Duration {
        let now = self.current;
        self.current = (self.current * 2).min(self.max);
        now
    }

    /// Starts over from the first wait (the call succeeded).
    pub fn reset(&mut self) {
        self.current = self.first.min(self.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn delays_double_with_jitter_up_to_the_cap() {
        let backoff = Backoff {
            base: Duration::from_secs(15),
            max: Duration::from_secs(3600),
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for failure in 1..=12u32 {
            let nominal = (15.0 * 2f64.powi(failure as i32 - 1)).min(3600.0);
            for _ in 0..50 {
                let d = backoff.delay(failure, &mut rng).as_secs_f64();
                assert!(d <= 3600.0, "failure {failure}: {d}");
                assert!(
                    d >= nominal * 0.75 - 1e-9,
                    "failure {failure}: {d} < 0.75 x {nominal}"
                );
                if nominal < 3600.0 / 1.25 {
                    assert!(d < nominal * 1.25, "failure {failure}: {d}");
                }
            }
        }
        assert_eq!(backoff.delay(1000, &mut rng), Duration::from_secs(3600));
    }

    #[test]
    fn fractional_bases_work() {
        let backoff = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        let d = backoff.delay(1, &mut rand::rng());
        assert!(d >= Duration::from_millis(75) && d < Duration::from_millis(125));
    }

    #[test]
    fn doubling_doubles_up_to_its_cap_and_starts_over() {
        let mut wait = Doubling::new(Duration::from_millis(100), Duration::from_millis(500));
        let waits: Vec<u64> = (0..5)
            .map(|_| wait.next_wait().as_millis() as u64)
            .collect();
        assert_eq!(waits, vec![100, 200, 400, 500, 500]);
        wait.reset();
        assert_eq!(wait.next_wait(), Duration::from_millis(100));
    }
}
