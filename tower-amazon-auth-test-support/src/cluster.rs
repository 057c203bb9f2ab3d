//! A real local Redis Cluster for the tests: six `redis-server` processes (each in its own
//! temporary directory, on a free port whose bus port, the port + 10 000, is free too), made
//! into three primaries with one replica each by `redis-cli --cluster create`, ready once every
//! node says `cluster_state:ok` with all 16384 slots served and every replica is in sync. It
//! can fail a primary over (`CLUSTER FAILOVER` on its replica) or kill one (`kill -9`), and
//! stops every node when dropped. [`redis_cluster_tls`] makes one that speaks TLS only, on the
//! bus and for replication too. A missing `redis-server` or `redis-cli` skips the test outside
//! CI and fails it with `CI` set, like the other servers of [`external`](crate::external).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::external::{free_port, require, External, RedisTls};

/// How long the cluster may take to form, or to settle after a failover.
const SETTLE: Duration = Duration::from_secs(30);
/// Nodes, as three primaries with one replica each.
const NODES: usize = 6;

/// A running Redis Cluster of three primaries with one replica each.
pub struct Cluster {
    /// `None` once killed.
    nodes: Vec<Option<External>>,
    ports: Vec<u16>,
    cli: PathBuf,
    /// `redis-cli`'s TLS arguments (none without TLS).
    cli_tls: Vec<String>,
}

/// A Redis Cluster of the test's own (three primaries, one replica each, `--cluster-node-timeout
/// 2000`), ready; or `None` (the test `test` is skipped) when `redis-server` or `redis-cli` is
/// not installed.
pub fn redis_cluster(test: &str) -> Option<Cluster> {
    start(test, None)
}

/// As [`redis_cluster`], every node speaking TLS only (`--port 0 --tls-port N`, `--tls-cluster
/// yes`, `--tls-replication yes`) with `tls`'s certificate, which must name `127.0.0.1` (the
/// address the nodes announce). Connect with `rediss://127.0.0.1:N`.
pub fn redis_cluster_tls(test: &str, tls: &RedisTls<'_>) -> Option<Cluster> {
    start(test, Some(tls))
}

fn start(test: &str, tls: Option<&RedisTls<'_>>) -> Option<Cluster> {
    let server = require("redis-server", "redis-server", test)?;
    let cli = require("redis-cli", "redis-tools", test)?;
    let ports = ports();
    let nodes: Vec<Option<External>> = ports
        .iter()
        .map(|&port| Some(start_node(&server, port, tls)))
        .collect();
    let cli_tls = match (tls, &nodes[0]) {
        (Some(_), Some(first)) => vec![
            "--tls".to_owned(),
            "--cacert".to_owned(),
            first.dir().join("ca.pem").display().to_string(),
        ],
        _ => Vec::new(),
    };
    let cluster = Cluster {
        nodes,
        ports,
        cli,
        cli_tls,
    };
    let addresses: Vec<String> = cluster.ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let mut create = Command::new(&cluster.cli);
    create
        .args(&cluster.cli_tls)
        .arg("--cluster")
        .arg("create")
        .args(&addresses)
        .args(["--cluster-replicas", "1", "--cluster-yes"]);
    let output = create.output().expect("redis-cli runs");
    assert!(
        output.status.success(),
        "redis-cli --cluster create failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    cluster.wait_ready();
    Some(cluster)
}

/// Six free ports whose bus ports (+10 000) are free too.
fn ports() -> Vec<u16> {
    let mut ports = Vec::new();
    while ports.len() < NODES {
        let port = free_port();
        let bus_free = port
            .checked_add(10_000)
            .is_some_and(|bus| std::net::TcpListener::bind(("127.0.0.1", bus)).is_ok());
        if bus_free && !ports.contains(&port) {
            ports.push(port);
        }
    }
    ports
}

fn start_node(binary: &Path, port: u16, tls: Option<&RedisTls<'_>>) -> External {
    External::start(
        "redis-cluster-node",
        binary,
        port,
        |dir| match tls {
            Some(tls) => {
                std::fs::write(dir.join("ca.pem"), tls.ca_pem)?;
                std::fs::write(dir.join("server.pem"), tls.cert_pem)?;
                std::fs::write(dir.join("server.key"), tls.key_pem)
            }
            None => Ok(()),
        },
        |dir| {
            let file = |name: &str| dir.join(name).display().to_string();
            let listen = match tls {
                Some(tls) => vec![
                    "--port".to_owned(),
                    "0".to_owned(),
                    "--tls-port".to_owned(),
                    port.to_string(),
                    "--tls-cluster".to_owned(),
                    "yes".to_owned(),
                    "--tls-replication".to_owned(),
                    "yes".to_owned(),
                    "--tls-cert-file".to_owned(),
                    file("server.pem"),
                    "--tls-key-file".to_owned(),
                    file("server.key"),
                    "--tls-ca-cert-file".to_owned(),
                    file("ca.pem"),
                    "--tls-auth-clients".to_owned(),
                    (if tls.auth_clients { "yes" } else { "no" }).to_owned(),
                ],
                None => vec!["--port".to_owned(), port.to_string()],
            };
            let dir = dir.display().to_string();
            listen.into_iter().chain([
                "--bind".to_owned(),
                "127.0.0.1".to_owned(),
                "--cluster-enabled".to_owned(),
                "yes".to_owned(),
                "--cluster-node-timeout".to_owned(),
                "2000".to_owned(),
                "--cluster-config-file".to_owned(),
                format!("{dir}/nodes.conf"),
                // A replica may always take over (the tests kill primaries on purpose).
                "--cluster-replica-validity-factor".to_owned(),
                "0".to_owned(),
                "--save".to_owned(),
                String::new(),
                "--appendonly".to_owned(),
                "no".to_owned(),
                "--dir".to_owned(),
                dir,
            ])
        },
    )
    .expect("redis-server starts in cluster mode")
}

impl Cluster {
    /// The URL of every node (primaries and replicas), to use as seeds (`rediss://` with TLS).
    pub fn urls(&self) -> Vec<String> {
        let scheme = if self.cli_tls.is_empty() {
            "redis"
        } else {
            "rediss"
        };
        self.ports
            .iter()
            .map(|port| format!("{scheme}://127.0.0.1:{port}"))
            .collect()
    }

    /// The ports of the nodes still running.
    pub fn alive(&self) -> Vec<u16> {
        self.ports
            .iter()
            .zip(&self.nodes)
            .filter(|(_, node)| node.is_some())
            .map(|(port, _)| *port)
            .collect()
    }

    /// `redis-cli -p port args…`: what it printed (empty when it failed).
    pub fn cli(&self, port: u16, args: &[&str]) -> String {
        Command::new(&self.cli)
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(&self.cli_tls)
            .args(args)
            .output()
            .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
            .unwrap_or_default()
    }

    /// The ports of the running primaries.
    pub fn primaries(&self) -> Vec<u16> {
        self.alive()
            .into_iter()
            .filter(|&port| self.cli(port, &["ROLE"]).lines().next() == Some("master"))
            .collect()
    }

    /// The running primary holding a key that matches `pattern` (a `SCAN` pattern), if any.
    pub fn primary_holding(&self, pattern: &str) -> Option<u16> {
        self.primaries().into_iter().find(|&port| {
            !self
                .cli(port, &["--scan", "--pattern", pattern])
                .trim()
                .is_empty()
        })
    }

    /// The port of a running replica of the primary on `primary`.
    pub fn replica_of(&self, primary: u16) -> Option<u16> {
        let id = self.cli(primary, &["CLUSTER", "MYID"]).trim().to_owned();
        self.alive().into_iter().find(|&port| {
            port != primary
                && self
                    .cli(port, &["CLUSTER", "NODES"])
                    .lines()
                    .any(|line| line.contains("myself") && line.contains(&format!("slave {id}")))
        })
    }

    /// `CLUSTER FAILOVER` on `replica` (its primary agrees and hands over), then waits until
    /// it is a primary and the cluster has settled.
    pub fn failover(&self, replica: u16) {
        let answer = self.cli(replica, &["CLUSTER", "FAILOVER"]);
        assert!(answer.contains("OK"), "CLUSTER FAILOVER on {replica}: {answer}");
        self.wait_until("the replica to take over", || {
            self.cli(replica, &["ROLE"]).lines().next() == Some("master")
        });
        self.wait_ready();
    }

    /// Kills the node on `port` with SIGKILL (no goodbye), then, when `promoted` is given,
    /// waits until that replica has taken over and the cluster has settled.
    pub fn kill(&mut self, port: u16, promoted: Option<u16>) {
        let index = self
            .ports
            .iter()
            .position(|&p| p == port)
            .expect("a node of the cluster");
        if let Some(node) = &self.nodes[index] {
            node.signal("KILL").expect("kill -9");
        }
        self.nodes[index] = None;
        if let Some(replica) = promoted {
            self.wait_until("the replica to take over after kill -9", || {
                self.cli(replica, &["ROLE"]).lines().next() == Some("master")
            });
            self.wait_ready();
        }
    }

    /// Waits until every running node says `cluster_state:ok` with every slot served, and
    /// every running replica is in sync with its primary.
    pub fn wait_ready(&self) {
        self.wait_until("cluster_state:ok on every node", || {
            self.alive().into_iter().all(|port| {
                let info = self.cli(port, &["CLUSTER", "INFO"]);
                let replication = self.cli(port, &["INFO", "replication"]);
                info.contains("cluster_state:ok")
                    && info.contains("cluster_slots_ok:16384")
                    && (replication.contains("role:master") || replication.contains("master_link_status:up"))
            })
        });
    }

    fn wait_until(&self, what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + SETTLE;
        while !done() {
            assert!(
                Instant::now() < deadline,
                "Redis Cluster: no {what} within {SETTLE:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// What the running nodes logged (for failure messages).
    pub fn logs(&self) -> String {
        self.nodes.iter().flatten().map(External::logs).collect()
    }
}
