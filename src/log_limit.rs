//! [`LogLimit`]: rate-limited warnings. A flood of failed verifications (made-up tokens during
//! an Amazon outage, say) must not fill the logs: each kind of warning is written at most once
//! per [`EVERY`], and the line that is written counts the ones held back since the last.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// At most one line of a kind per this interval.
pub(crate) const EVERY: Duration = Duration::from_secs(5);

/// The state of one kind of warning: at most one line per 5 s, counting the ones held back.
///
/// ```
/// use tower_amazon_auth::second_level::LogLimit;
///
/// let limit = LogLimit::default();
/// if let Some(suppressed) = limit.admit() {
///     tracing::warn!(suppressed, "the store failed");
/// }
/// assert_eq!(limit.admit(), None, "held back for 5 s");
/// ```
#[derive(Debug, Default)]
pub struct LogLimit {
    window: Mutex<Window>,
}

#[derive(Debug, Default)]
struct Window {
    /// When the last line of this kind was written.
    last: Option<Instant>,
    /// Lines held back since.
    suppressed: u64,
}

impl LogLimit {
    /// `Some(held back since the last line)` when a line may be written now; `None` (and one
    /// more held back) otherwise.
    pub fn admit(&self) -> Option<u64> {
        let mut window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if window
            .last
            .is_some_and(|last| now.saturating_duration_since(last) < EVERY)
        {
            window.suppressed += 1;
            return None;
        }
        window.last = Some(now);
        Some(std::mem::take(&mut window.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_then_the_count_of_the_rest() {
        let limit = LogLimit::default();
        assert_eq!(limit.admit(), Some(0));
        for _ in 0..99 {
            assert_eq!(limit.admit(), None);
        }
        // Pretend the interval has passed.
        limit.window.lock().unwrap().last = Instant::now().checked_sub(EVERY);
        assert_eq!(limit.admit(), Some(99));
        assert_eq!(limit.admit(), None);
    }
}
