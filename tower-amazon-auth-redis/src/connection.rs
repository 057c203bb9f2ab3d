//! [`Commands`]: the command connection (a [`ConnectionManager`]), replaced when it has gone
//! silent. The manager reconnects by itself after an I/O error, but not after a timeout: a
//! connection whose packets a NAT or firewall drops without a reset would time out command
//! after command until the kernel gives up on it (many minutes). So after
//! [`TIMEOUTS_BEFORE_RENEWAL`] timeouts in a row, and whenever the subscriber finds its own
//! connection dead (the same network path), a fresh manager takes its place; commands under
//! way on the old one end with their own timeout.

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// Commands timed out in a row before the connection is replaced.
pub(crate) const TIMEOUTS_BEFORE_RENEWAL: u32 = 3;

/// The command connection of one fleet level, replaceable.
pub(crate) struct Commands {
    client: redis::Client,
    config: ConnectionManagerConfig,
    current: Mutex<ConnectionManager>,
    /// Commands timed out in a row on the current connection.
    timeouts: AtomicU32,
}

impl Commands {
    /// A lazy manager for `client` (it connects at its first command).
    pub(crate) fn new(client: redis::Client, config: ConnectionManagerConfig) -> redis::RedisResult<Self> {
        let current = ConnectionManager::new_lazy_with_config(client.clone(), config.clone())?;
        Ok(Self {
            client,
            config,
            current: Mutex::new(current),
            timeouts: AtomicU32::new(0),
        })
    }

    /// The current connection (a cheap handle).
    pub(crate) fn get(&self) -> ConnectionManager {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A command was answered.
    pub(crate) fn answered(&self) {
        self.timeouts.store(0, Relaxed);
    }

    /// A command timed out: after [`TIMEOUTS_BEFORE_RENEWAL`] in a row, the connection is
    /// replaced. Whether it was.
    pub(crate) fn timed_out(&self) -> bool {
        if self.timeouts.fetch_add(1, Relaxed) + 1 >= TIMEOUTS_BEFORE_RENEWAL {
            self.renew();
            return true;
        }
        false
    }

    /// Replaces the connection by a fresh one (lazy: it connects at its next command). The
    /// old one closes when the last command using it ends.
    pub(crate) fn renew(&self) {
        self.timeouts.store(0, Relaxed);
        match ConnectionManager::new_lazy_with_config(self.client.clone(), self.config.clone()) {
            Ok(fresh) => {
                *self.current.lock().unwrap_or_else(PoisonError::into_inner) = fresh;
                tracing::debug!("fleet cache level: command connection replaced");
            }
            // The same client and configuration were accepted at build: not expected.
            Err(error) => tracing::warn!(
                failure = ?error.kind(),
                "fleet cache level: cannot replace the command connection"
            ),
        }
    }
}
