//! [`Relay`]: a TCP relay on 127.0.0.1 that a test puts between a client and a server, and
//! that can then act like a NAT that lost its state without telling anyone: after
//! [`swallow`](Relay::swallow), every connection open at that moment still looks open to both
//! ends, but what either end sends is read and thrown away (no reset, no FIN, no error).
//! Connections made afterwards pass normally, as through a NAT that starts afresh.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// A relay to one target; stops (closing every connection) when dropped.
pub struct Relay {
    addr: SocketAddr,
    /// Bumped by `swallow`: connections accepted under an older value are black holes.
    epoch: Arc<AtomicU64>,
    accepted: Arc<AtomicU64>,
    _tasks: JoinSet<()>,
}

impl Relay {
    /// A relay on a free 127.0.0.1 port to `target` (inside a Tokio runtime).
    pub async fn start(target: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let epoch = Arc::new(AtomicU64::new(0));
        let accepted = Arc::new(AtomicU64::new(0));
        let mut tasks = JoinSet::new();
        let (e, a) = (Arc::clone(&epoch), Arc::clone(&accepted));
        tasks.spawn(async move {
            // The connections' tasks end with this one (the relay dropped).
            let mut connections = JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                a.fetch_add(1, SeqCst);
                let Ok(server) = TcpStream::connect(target).await else {
                    continue;
                };
                let born = e.load(SeqCst);
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                connections.spawn(pipe(client_read, server_write, born, Arc::clone(&e)));
                connections.spawn(pipe(server_read, client_write, born, Arc::clone(&e)));
            }
        });
        Ok(Self {
            addr,
            epoch,
            accepted,
            _tasks: tasks,
        })
    }

    /// Its address: give it to the client instead of the target's.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// From now on, the connections open now carry nothing either way (and never close).
    pub fn swallow(&self) {
        self.epoch.fetch_add(1, SeqCst);
    }

    /// How many connections it has accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(SeqCst)
    }
}

/// Copies `from` to `to` while the connection's epoch is current; then reads and drops.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    born: u64,
    epoch: Arc<AtomicU64>,
) {
    let mut buffer = vec![0; 16 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if epoch.load(SeqCst) != born {
            continue;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            break;
        }
    }
    // A black hole never closes: keep the other half open until the relay is dropped.
    if epoch.load(SeqCst) != born {
        std::future::pending::<()>().await;
    }
}
