//! Real servers the tests start themselves (Redis, with or without TLS, nginx, Caddy): find the
//! binary, start it on a free 127.0.0.1 port with a generated config (and certificates) in a
//! temporary directory, wait until it accepts connections, and stop it when the handle drops.
//!
//! A missing binary fails the test when `CI` is set (`.ci/run` installs every binary with
//! `apt-get`); otherwise the test is skipped with a notice written straight to
//! `std::io::stderr()` (libtest captures `eprintln!`), and the process prints one summary line
//! of every skip when it exits.
// The one `unsafe`: registering the skip summary with the C runtime's `atexit`.
#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

/// How long a server may take to accept its first connection.
const STARTUP: Duration = Duration::from_secs(10);

/// Directories searched besides `PATH` (nginx lives in `/usr/sbin`, often not on a user's
/// `PATH`).
const EXTRA_DIRS: &[&str] = &["/usr/sbin", "/usr/local/sbin", "/sbin"];

/// Skipped tests by missing binary.
static SKIPS: Mutex<BTreeMap<String, Vec<String>>> = Mutex::new(BTreeMap::new());
static SUMMARY: Once = Once::new();

/// The path of `binary`, or `None` when the test `test` must be skipped because it is missing
/// (after printing a notice). Panics when it is missing and `CI` is set.
///
/// `package` is the Debian package that provides it, for the message.
pub fn require(binary: &str, package: &str, test: &str) -> Option<PathBuf> {
    if let Some(path) = find(binary) {
        return Some(path);
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "{test}: `{binary}` is not installed and CI is set; `.ci/run` installs it with \
             `apt-get install {package}`"
        );
    }
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: `{binary}` not found (apt-get install {package}); with CI set this fails"
    );
    SKIPS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .entry(binary.to_owned())
        .or_default()
        .push(test.to_owned());
    SUMMARY.call_once(|| {
        extern "C" {
            fn atexit(callback: extern "C" fn()) -> std::ffi::c_int;
        }
        // SAFETY: `atexit` is the C runtime's; `print_summary` neither unwinds nor calls
        // `exit`.
        unsafe {
            atexit(print_summary);
        }
    });
    None
}

extern "C" fn print_summary() {
    let skips = SKIPS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let total: usize = skips.values().map(Vec::len).sum();
    let by_binary: Vec<String> = skips
        .iter()
        .map(|(binary, tests)| format!("{} for want of `{binary}`", tests.len()))
        .collect();
    let _ = writeln!(
        std::io::stderr(),
        "\nexternal servers: {total} test(s) skipped ({}); set CI to make them fail",
        by_binary.join(", ")
    );
}

/// `binary` on `PATH` or in [`EXTRA_DIRS`].
fn find(binary: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(binary))
        .find(|candidate| candidate.is_file())
}

/// A port nobody listens on at the moment (the kernel's choice), on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("no free port on 127.0.0.1")
}

/// A running server, stopped (killed and reaped) on drop. Its temporary directory holds its
/// config and its `stdout.log` / `stderr.log`, and is removed with it.
pub struct External {
    name: String,
    child: Child,
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
}

impl External {
    /// Starts `program` with `args` (in a fresh temporary directory, which `args` may refer to
    /// through the path it is given) and waits until 127.0.0.1:`port` accepts a connection.
    ///
    /// `write_config` runs first, to put config files in the directory.
    pub fn start<I, S>(
        name: &str,
        program: &Path,
        port: u16,
        write_config: impl FnOnce(&Path) -> std::io::Result<()>,
        args: impl FnOnce(&Path) -> I,
    ) -> std::io::Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let dir = tempfile::Builder::new()
            .prefix(&format!("taa-{name}-"))
            .tempdir()?;
        write_config(dir.path())?;
        let child = Command::new(program)
            .args(args(dir.path()))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.path().join("stdout.log"))?)
            .stderr(std::fs::File::create(dir.path().join("stderr.log"))?)
            .spawn()?;
        let mut server = Self {
            name: name.to_owned(),
            child,
            port,
            dir,
        };
        server.wait_ready()?;
        Ok(server)
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its temporary directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What it wrote to stdout and stderr so far (for failure messages).
    pub fn logs(&self) -> String {
        let read = |file: &str| std::fs::read_to_string(self.dir.path().join(file)).unwrap_or_default();
        format!(
            "--- {} stdout\n{}--- {} stderr\n{}",
            self.name,
            read("stdout.log"),
            self.name,
            read("stderr.log")
        )
    }

    /// Sends it `signal` (`"STOP"`, `"CONT"`, `"TERM"`, …) with kill(1).
    pub fn signal(&self, signal: &str) -> std::io::Result<()> {
        let status = Command::new("kill")
            .args(["-s", signal, &self.child.id().to_string()])
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(std::io::Error::other(format!(
                "kill -s {signal} failed: {status}"
            )))
        }
    }

    /// Whether it has exited.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    fn wait_ready(&mut self) -> std::io::Result<()> {
        let deadline = Instant::now() + STARTUP;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(std::io::Error::other(format!(
                    "{} exited before accepting connections ({status})\n{}",
                    self.name,
                    self.logs()
                )));
            }
            if TcpStream::connect_timeout(&self.addr(), Duration::from_millis(100)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(std::io::Error::other(format!(
                    "{} did not accept connections on {} within {STARTUP:?}\n{}",
                    self.name,
                    self.addr(),
                    self.logs()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for External {
    fn drop(&mut self) {
        // A stopped (SIGSTOP) process still dies of SIGKILL.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `redis-server` of the test's own on a free port (no persistence), or `None` (the test
/// `test` is skipped) when it is not installed.
pub fn redis(test: &str) -> Option<External> {
    let binary = require("redis-server", "redis-server", test)?;
    Some(start_redis(&binary, free_port()))
}

/// Starts the `redis-server` at `binary` on `port` (for a test that restarts it on the same
/// port).
pub fn start_redis(binary: &Path, port: u16) -> External {
    External::start(
        "redis",
        binary,
        port,
        |_| Ok(()),
        |dir| {
            vec![
                "--port".to_owned(),
                port.to_string(),
                "--bind".to_owned(),
                "127.0.0.1".to_owned(),
                "--save".to_owned(),
                String::new(),
                "--appendonly".to_owned(),
                "no".to_owned(),
                "--dir".to_owned(),
                dir.display().to_string(),
            ]
        },
    )
    .expect("redis-server starts")
}

/// What a TLS `redis-server` serves: its certificate and key, the CA it trusts for client
/// certificates (all PEM), and whether it demands one (`--tls-auth-clients yes`).
pub struct RedisTls<'a> {
    /// The CA that signed client certificates (`--tls-ca-cert-file`).
    pub ca_pem: &'a str,
    /// The server's certificate (`--tls-cert-file`).
    pub cert_pem: &'a str,
    /// The server's private key (`--tls-key-file`).
    pub key_pem: &'a str,
    /// `--tls-auth-clients yes` when set, `no` otherwise.
    pub auth_clients: bool,
}

/// A `redis-server` of the test's own speaking TLS only (`--port 0 --tls-port N`, on a free
/// port, no persistence), with `tls`'s files written into its temporary directory; or `None`
/// (the test `test` is skipped) when it is not installed. Connect with `rediss://`.
pub fn redis_tls(test: &str, tls: &RedisTls<'_>) -> Option<External> {
    let binary = require("redis-server", "redis-server", test)?;
    let port = free_port();
    let server = External::start(
        "redis-tls",
        &binary,
        port,
        |dir| {
            std::fs::write(dir.join("ca.pem"), tls.ca_pem)?;
            std::fs::write(dir.join("server.pem"), tls.cert_pem)?;
            std::fs::write(dir.join("server.key"), tls.key_pem)
        },
        |dir| {
            let file = |name: &str| dir.join(name).display().to_string();
            let auth = if tls.auth_clients { "yes" } else { "no" };
            vec![
                "--port".to_owned(),
                "0".to_owned(),
                "--tls-port".to_owned(),
                port.to_string(),
                "--tls-cert-file".to_owned(),
                file("server.pem"),
                "--tls-key-file".to_owned(),
                file("server.key"),
                "--tls-ca-cert-file".to_owned(),
                file("ca.pem"),
                "--tls-auth-clients".to_owned(),
                auth.to_owned(),
                "--bind".to_owned(),
                "127.0.0.1".to_owned(),
                "--save".to_owned(),
                String::new(),
                "--appendonly".to_owned(),
                "no".to_owned(),
                "--dir".to_owned(),
                dir.display().to_string(),
            ]
        },
    )
    .expect("redis-server starts with TLS (Debian's package is built with it)");
    Some(server)
}

/// The URL of a Redis that [`redis`] started.
pub fn redis_url(redis: &External) -> String {
    format!("redis://127.0.0.1:{}", redis.port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_binary_on_path_and_not_a_made_up_one() {
        assert!(find("sh").is_some());
        assert!(find("no-such-binary-taa").is_none());
    }
}
