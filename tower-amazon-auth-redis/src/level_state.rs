//! What the subscriber, the session store and the statistics read of a [`FleetLevel`]'s state:
//! its command timeout, whether it is subscribed, whether its breaker is open, and the signal
//! that it was dropped.

use std::time::Duration;

use tokio::sync::watch;

use crate::level::FleetLevel;

impl FleetLevel {
    /// How long one command may take.
    pub(crate) fn command_timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether the subscriber is connected now.
    pub(crate) fn is_subscribed(&self) -> bool {
        self.subscribed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The subscriber (dis)connected.
    pub(crate) fn set_subscribed(&self, subscribed: bool) {
        self.subscribed
            .store(subscribed, std::sync::atomic::Ordering::Relaxed);
    }

    /// Ends when the level is dropped.
    pub(crate) fn stopped(&self) -> watch::Receiver<()> {
        self.stop.subscribe()
    }

    /// Whether the breaker keeps Redis out of requests now.
    pub(crate) fn breaker_open(&self) -> bool {
        self.breaker.is_open()
    }
}
