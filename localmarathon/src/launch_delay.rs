//! Marathon's launch backoff for apps whose tasks keep failing.
//!
//! After a task of the app ends by itself (fails, or finishes: a command that exits at once must
//! not be relaunched in a tight loop) or is killed for failing its health checks, the app's
//! launches wait `backoffSeconds`; each further such end multiplies
//! the wait by `backoffFactor`, capped at `maxLaunchDelaySeconds`. A configuration change resets
//! the delay (Marathon resets it when an app is updated), and so does a task that ran longer
//! than `maxLaunchDelaySeconds` before ending. Times are `tokio::time::Instant`, so
//! tests drive backoff with a paused clock.
//!
//! [`DelayEnds`] remembers when each delay ends, so the scheduler wakes then and looks at that
//! app again without scanning every app for an expired delay.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::time::Instant;

use crate::app::AppDefinition;
use crate::app_id::AppId;

/// The launch delay of one app.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LaunchDelay {
    current: Option<Duration>,
    until: Option<Instant>,
}

impl LaunchDelay {
    /// Records a failure at `now` and returns the new delay.
    pub fn on_failure(&mut self, app: &AppDefinition, now: Instant) -> Duration {
        let max = Duration::from_secs(u64::from(app.max_launch_delay_seconds));
        let next = match self.current {
            None => Duration::from_secs(u64::from(app.backoff_seconds)),
            Some(d) => d.mul_f64(app.backoff_factor),
        }
        .min(max);
        self.current = Some(next);
        self.until = Some(now + next);
        next
    }

    /// Clears the delay.
    pub fn reset(&mut self) {
        *self = LaunchDelay::default();
    }

    /// When launches may resume, if they are held back at `now`.
    pub fn blocked_until(&self, now: Instant) -> Option<Instant> {
        self.until.filter(|u| *u > now)
    }

    /// The current delay (for `/v2/queue`).
    pub fn current(&self) -> Option<Duration> {
        self.current
    }
}

/// When apps' launch delays end, earliest first.
///
/// An entry may outlive its delay (reset by a configuration change, or replaced by a longer
/// one after another failure); it then costs one look at an app with nothing to launch.
#[derive(Debug, Clone, Default)]
pub struct DelayEnds {
    due: BTreeSet<(Instant, AppId)>,
}

impl DelayEnds {
    /// Remembers that `app`'s launches may resume at `at`.
    pub fn schedule(&mut self, app: AppId, at: Instant) {
        self.due.insert((at, app));
    }

    /// The earliest end still to come.
    pub fn next(&self) -> Option<Instant> {
        self.due.first().map(|(at, _)| *at)
    }

    /// Takes out the apps whose delay has ended by `now`.
    pub fn take_ended(&mut self, now: Instant) -> Vec<AppId> {
        let mut ended = Vec::new();
        while let Some((at, _)) = self.due.first()
            && *at <= now
        {
            if let Some((_, app)) = self.due.pop_first() {
                ended.push(app);
            }
        }
        ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app_id::AppId;
    use crate::app_update::AppUpdate;
    use crate::timestamp::Timestamp;
    use serde_json::json;

    #[tokio::test(start_paused = true)]
    async fn delays_grow_by_the_factor_up_to_the_maximum() {
        let app = AppUpdate::from_value(&json!({
            "cmd": "x", "backoffSeconds": 2, "backoffFactor": 2.0, "maxLaunchDelaySeconds": 10
        }))
        .unwrap()
        .apply(None, AppId::parse("/a").unwrap(), Timestamp::from_millis(0))
        .unwrap();
        let mut delay = LaunchDelay::default();
        let now = Instant::now();
        assert_eq!(delay.blocked_until(now), None);
        let waits: Vec<u64> = (0..5)
            .map(|_| delay.on_failure(&app, Instant::now()).as_secs())
            .collect();
        assert_eq!(waits, [2, 4, 8, 10, 10]);
        assert!(delay.blocked_until(Instant::now()).is_some());
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(delay.blocked_until(Instant::now()), None);
        delay.reset();
        assert_eq!(delay.on_failure(&app, Instant::now()).as_secs(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn delay_ends_come_out_once_each_when_their_time_has_come() {
        let (a, b) = (AppId::parse("/a").unwrap(), AppId::parse("/b").unwrap());
        let mut ends = DelayEnds::default();
        let now = Instant::now();
        assert_eq!(ends.next(), None);
        ends.schedule(b.clone(), now + Duration::from_secs(5));
        ends.schedule(a.clone(), now + Duration::from_secs(2));
        ends.schedule(a.clone(), now + Duration::from_secs(8));
        assert_eq!(ends.next(), Some(now + Duration::from_secs(2)));
        assert!(ends.take_ended(now).is_empty());
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(ends.take_ended(Instant::now()), [a.clone(), b]);
        assert!(ends.take_ended(Instant::now()).is_empty());
        assert_eq!(ends.next(), Some(now + Duration::from_secs(8)));
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(ends.take_ended(Instant::now()), [a]);
        assert_eq!(ends.next(), None);
    }
}
