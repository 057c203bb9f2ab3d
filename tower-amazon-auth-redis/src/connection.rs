//! [`Commands`]: the command connection, a [`Connection`] (a [`ConnectionManager`] to one Redis,
//! or the client's cluster connection to a Redis Cluster, which follows `MOVED` and `ASK` and
//! learns a failover's new topology by itself), replaced when it has gone silent. Neither
//! reconnects after a timeout: a connection whose packets a NAT or firewall drops without a
//! reset would time out command after command until the kernel gives up on it (many minutes).
//! So after [`TIMEOUTS_BEFORE_RENEWAL`] timeouts in a row, and whenever the subscriber finds
//! its own connection dead (the same network path), a fresh connection takes its place;
//! commands under way on the old one end with their own timeout.

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

/// Commands timed out in a row before the connection is replaced.
pub(crate) const TIMEOUTS_BEFORE_RENEWAL: u32 = 3;

/// Where the commands go, and how to connect there.
pub(crate) enum Target {
    /// One Redis endpoint.
    Single(redis::Client, ConnectionManagerConfig),
    /// A Redis Cluster.
    Cluster(ClusterClient),
}

impl Target {
    /// A lazy connection (it connects at its first command).
    fn connect(&self) -> redis::RedisResult<Connection> {
        Ok(match self {
            Self::Single(client, config) => Connection::Single(ConnectionManager::new_lazy_with_config(
                client.clone(),
                config.clone(),
            )?),
            Self::Cluster(client) => {
                Connection::Cluster(client.get_pending_async_connection_with_config(ClusterConfig::new()))
            }
        })
    }
}

/// A command connection, as every command of the level takes it (a cheap handle).
#[derive(Clone)]
pub(crate) enum Connection {
    /// To one Redis endpoint.
    Single(ConnectionManager),
    /// To a Redis Cluster: each command goes to the node of its first key's slot.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(connection) => connection.req_packed_command(cmd),
            Self::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(connection) => connection.req_packed_commands(pipeline, offset, count),
            Self::Cluster(connection) => connection.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(connection) => connection.get_db(),
            Self::Cluster(connection) => connection.get_db(),
        }
    }
}

/// The command connection of one fleet level, replaceable.
pub(crate) struct Commands {
    target: Target,
    current: Mutex<Connection>,
    /// Commands timed out in a row on the current connection.
    timeouts: AtomicU32,
}

impl Commands {
    /// A lazy connection to `target` (it connects at its first command).
    pub(crate) fn new(target: Target) -> redis::RedisResult<Self> {
        let current = target.connect()?;
        Ok(Self {
            target,
            current: Mutex::new(current),
            timeouts: AtomicU32::new(0),
        })
    }

    /// The current connection (a cheap handle).
    pub(crate) fn get(&self) -> Connection {
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
        match self.target.connect() {
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
