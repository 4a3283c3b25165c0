//! When the applier steps aside.
//!
//! Answering a hit and applying it share two cores and one disk. While hits arrive faster
//! than the applier records them, applying alongside cannot keep up anyway: it only takes
//! CPU and disk flushes from the visitors waiting for their answers. So during such a
//! burst the applier waits, and the hits wait in the journal, where they are already
//! durable. It never waits when someone waits for an applied hit (`/mtc/event`, which
//! answers with the contact id; an API call or admin page, `caught_up`; `settled`), nor once it has been behind for longer than
//! `max_lag` (`[tracking] apply_lag_seconds`): a burst longer than that is applied as it
//! comes, at the applier's lower priority, as it is without pacing.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How far back the arrival rate looks.
const WINDOW: Duration = Duration::from_secs(1);
/// The shortest span that gives an arrival rate.
const MIN_SPAN: Duration = Duration::from_millis(200);
/// The smallest batch whose time tells how fast the applier can go: a few hits take
/// mostly the fixed cost of a transaction, and would make a light load look like more
/// than the applier can take.
const MIN_MEASURED: usize = 500;

#[derive(Debug)]
pub struct Pace {
    max_lag: Duration,
    /// (when, hits committed by then), oldest first, within `WINDOW`.
    arrivals: VecDeque<(Instant, i64)>,
    /// Hits per second the applier recorded lately (a moving average).
    apply_rate: Option<f64>,
    /// Since when the applier has had hits to apply without ever catching up.
    behind_since: Option<Instant>,
}

impl Pace {
    pub fn new(max_lag: Duration) -> Pace {
        Pace {
            max_lag,
            arrivals: VecDeque::new(),
            apply_rate: None,
            behind_since: None,
        }
    }

    /// Notes how many hits the journal has committed, and how many are applied, at `now`.
    pub fn observe(&mut self, now: Instant, committed: i64, applied: i64) {
        while self
            .arrivals
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > WINDOW)
        {
            self.arrivals.pop_front();
        }
        self.arrivals.push_back((now, committed));
        if committed <= applied {
            self.behind_since = None;
        } else if self.behind_since.is_none() {
            self.behind_since = Some(now);
        }
    }

    /// Notes an applied batch.
    pub fn applied(&mut self, hits: usize, took: Duration) {
        if hits < MIN_MEASURED {
            return;
        }
        let rate = hits as f64 / took.as_secs_f64().max(1e-6);
        self.apply_rate = Some(match self.apply_rate {
            Some(r) => 0.7 * r + 0.3 * rate,
            None => rate,
        });
    }

    /// Hits per second arriving lately, once the window spans long enough to tell.
    fn arrival_rate(&self) -> Option<f64> {
        let (first_at, first) = self.arrivals.front()?;
        let (last_at, last) = self.arrivals.back()?;
        let span = last_at.duration_since(*first_at);
        (span >= MIN_SPAN).then(|| (last - first) as f64 / span.as_secs_f64())
    }

    /// Whether the applier should wait instead of applying now. `urgent`: someone waits
    /// for an applied hit.
    pub fn should_wait(&self, now: Instant, urgent: bool) -> bool {
        if urgent || self.max_lag.is_zero() {
            return false;
        }
        let Some(since) = self.behind_since else {
            return false;
        };
        if now.duration_since(since) >= self.max_lag {
            return false;
        }
        match (self.arrival_rate(), self.apply_rate) {
            (Some(arriving), Some(applying)) => arriving > applying,
            // Until both are measured, apply as usual.
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A pace that has seen hits arrive at `rate` per second for a second, with the
    /// applier at `applying` per second and nothing applied.
    fn burst(rate: i64, applying: usize, max_lag: Duration) -> (Pace, Instant) {
        let start = Instant::now();
        let mut pace = Pace::new(max_lag);
        pace.applied(applying, Duration::from_secs(1));
        for step in 0..=10 {
            pace.observe(start + ms(step * 100), rate * step as i64 / 10, 0);
        }
        (pace, start + ms(1000))
    }

    #[test]
    fn waits_while_hits_arrive_faster_than_they_are_applied() {
        let (pace, now) = burst(20_000, 6_000, Duration::from_secs(30));
        assert!(pace.should_wait(now, false));
    }

    #[test]
    fn applies_when_it_keeps_up() {
        let (pace, now) = burst(3_000, 6_000, Duration::from_secs(30));
        assert!(!pace.should_wait(now, false));
    }

    #[test]
    fn applies_when_someone_waits_for_an_applied_hit() {
        let (pace, now) = burst(20_000, 6_000, Duration::from_secs(30));
        assert!(!pace.should_wait(now, true));
    }

    #[test]
    fn applies_once_behind_for_longer_than_the_lag() {
        let (mut pace, now) = burst(20_000, 6_000, Duration::from_secs(30));
        let later = now + Duration::from_secs(29);
        pace.observe(later - ms(500), 590_000, 0);
        pace.observe(later, 600_000, 0);
        assert!(pace.should_wait(later, false));
        let much_later = now + Duration::from_secs(31);
        pace.observe(much_later - ms(500), 630_000, 0);
        pace.observe(much_later, 640_000, 0);
        assert!(!pace.should_wait(much_later, false));
    }

    #[test]
    fn applies_once_the_burst_ends() {
        let (mut pace, now) = burst(20_000, 6_000, Duration::from_secs(30));
        // No new hits for a whole window: the arrival rate is zero.
        for step in 1..=12 {
            pace.observe(now + ms(step * 100), 20_000, 0);
        }
        assert!(!pace.should_wait(now + ms(1200), false));
    }

    #[test]
    fn catching_up_restarts_the_lag() {
        let (mut pace, now) = burst(20_000, 6_000, Duration::from_secs(30));
        pace.observe(now + Duration::from_secs(31), 20_000, 20_000);
        // A new burst right after: behind for a moment only, so it may wait again.
        for step in 1..=10 {
            let t = now + Duration::from_secs(31) + ms(step * 100);
            pace.observe(t, 20_000 + 2_000 * step as i64, 20_000);
        }
        assert!(pace.should_wait(now + Duration::from_secs(32), false));
    }

    #[test]
    fn small_batches_do_not_make_a_light_load_look_heavy() {
        let (mut pace, now) = burst(300, 6_000, Duration::from_secs(30));
        // At 300 hits/s the applier takes a few hits at a time; each such batch, at
        // 150 hits/s, says nothing of what it can take.
        for _ in 0..20 {
            pace.applied(3, ms(20));
        }
        assert!(!pace.should_wait(now, false));
    }

    #[test]
    fn never_waits_without_a_lag_or_before_measuring() {
        let (pace, now) = burst(20_000, 6_000, Duration::ZERO);
        assert!(!pace.should_wait(now, false));
        let mut unmeasured = Pace::new(Duration::from_secs(30));
        let start = Instant::now();
        unmeasured.observe(start, 0, 0);
        unmeasured.observe(start + ms(500), 10_000, 0);
        assert!(!unmeasured.should_wait(start + ms(500), false));
    }
}
