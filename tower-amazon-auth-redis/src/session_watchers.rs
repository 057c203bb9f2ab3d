//! [`SessionWatchers`]: the sign-ins that keep their sessions in the fleet level, told by the
//! subscriber what other instances did to sessions.

use std::sync::{Mutex, PoisonError};

use tower_amazon_auth::second_level::{SessionEvents, TokenKey};

/// The sign-ins watching the fleet's sessions (one per `SignIn` built on the cache).
#[derive(Default)]
pub(crate) struct SessionWatchers(Mutex<Vec<SessionEvents>>);

impl SessionWatchers {
    /// Adds a sign-in.
    pub(crate) fn add(&self, events: SessionEvents) {
        self.lock().push(events);
    }

    /// Session `key` ended on another instance: every sign-in drops its copy (a sign-in that
    /// is gone is forgotten).
    pub(crate) fn ended(&self, key: TokenKey) -> bool {
        self.lock().retain(|events| events.end(key));
        true
    }

    /// Messages may have been missed: every sign-in drops every copy.
    pub(crate) fn forget_all(&self) -> bool {
        self.lock().retain(SessionEvents::forget_all);
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<SessionEvents>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
