//! [`UserRevocations`]: how many revocations each user has in force, so one account logging in
//! and out in a loop cannot fill `max_revocations` for everyone. Only revocations of tokens
//! whose user the cache knows are counted (the others fall under the global bound alone).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use foldhash::fast::RandomState;

/// How long a user's record is kept after its last revocation: the longest a revocation can
/// last (a day, the most any token lives).
const KEPT: Duration = Duration::from_secs(24 * 3600);

/// Each user's revocations in force: when each ends.
pub(crate) struct UserRevocations {
    users: moka::sync::Cache<Box<str>, Arc<Mutex<Vec<Instant>>>, RandomState>,
    max_per_user: u64,
}

impl UserRevocations {
    /// At most `max_per_user` per user, for up to `users` users.
    pub(crate) fn new(max_per_user: u64, users: u64) -> Self {
        Self {
            users: moka::sync::Cache::builder()
                .max_capacity(users)
                .time_to_idle(KEPT)
                .build_with_hasher(RandomState::default()),
            max_per_user,
        }
    }

    /// Counts a revocation of `user_id`'s lasting until `until`; `false` (nothing counted) when
    /// the user already has `max_per_user` in force at `now`.
    pub(crate) fn admit(&self, user_id: &str, until: Instant, now: Instant) -> bool {
        let user = self.users.get_with(user_id.into(), Arc::default);
        let mut in_force = user.lock().unwrap_or_else(PoisonError::into_inner);
        in_force.retain(|ends| *ends > now);
        if u64::try_from(in_force.len()).unwrap_or(u64::MAX) >= self.max_per_user {
            return false;
        }
        in_force.push(until);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_at_the_cap_is_refused_until_one_ends_and_others_are_not() {
        let revocations = UserRevocations::new(2, 100);
        let now = Instant::now();
        let soon = now + Duration::from_secs(1);
        let later = now + Duration::from_secs(3600);
        assert!(revocations.admit("alice", soon, now));
        assert!(revocations.admit("alice", later, now));
        assert!(!revocations.admit("alice", later, now), "at the cap");
        assert!(
            revocations.admit("bob", later, now),
            "another user's budget is their own"
        );
        assert!(
            revocations.admit("alice", later, soon + Duration::from_millis(1)),
            "one of alice's ended"
        );
    }
}
