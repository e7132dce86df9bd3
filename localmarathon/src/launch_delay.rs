//! Marathon's launch backoff for apps whose tasks keep failing.
//!
//! After a task of the app ends by itself (fails, or finishes: a command that exits at once must
//! not be relaunched in a tight loop) or is killed for failing its health checks, the app's
//! launches wait `backoffSeconds`; each further such end multiplies
//! the wait by `backoffFactor`, capped at `maxLaunchDelaySeconds`. A configuration change resets
//! the delay (Marathon resets it when an app is updated), and so does a task that ran longer
//! than `maxLaunchDelaySeconds` before ending. Times are `tokio::time::Instant`, so
//! tests drive backoff with a paused clock.

use std::time::Duration;

use tokio::time::Instant;

use crate::app::AppDefinition;

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
}
