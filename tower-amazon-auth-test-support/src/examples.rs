//! The example binaries (`examples/server.rs`, `hyper_server.rs`, `forward_auth.rs`) as tests run
//! them: built once with the calling test's features
//! ([`example_binaries!`](crate::example_binaries!)), then started as a child process
//! ([`ExampleProcess`]) whose stdout lines and stderr logs the test reads, killed when the handle
//! drops.

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The example binaries the tests run.
pub const EXAMPLES: [&str; 3] = ["server", "hyper_server", "forward_auth"];

/// [`build_examples`] with the calling test's manifest directory and the root package's features
/// it was built with (`cfg!` is evaluated where the macro expands, in the test, not here).
#[macro_export]
macro_rules! example_binaries {
    () => {
        $crate::examples::build_examples(
            env!("CARGO_MANIFEST_DIR"),
            // Keep in step with the root Cargo.toml's [features].
            &[
                #[cfg(feature = "axum")]
                "axum",
                #[cfg(feature = "metrics")]
                "metrics",
                #[cfg(feature = "fuzz")]
                "fuzz",
            ],
        )
    };
}

/// Builds the [`EXAMPLES`] of the package at `manifest_dir` once (the first call's arguments
/// win) with `features`, and returns their paths by name. Use
/// [`example_binaries!`](crate::example_binaries!).
///
/// `cargo test` builds examples too, but `cargo test --test it` does not, and a binary left over
/// from an earlier build may be stale: asking cargo (with the test's features and profile) is a
/// no-op when it is fresh, and the JSON messages say where the binaries are.
pub fn build_examples(manifest_dir: &str, features: &[&str]) -> &'static HashMap<String, PathBuf> {
    static BINARIES: OnceLock<HashMap<String, PathBuf>> = OnceLock::new();
    BINARIES.get_or_init(|| {
        let mut cargo = Command::new(env!("CARGO"));
        cargo.current_dir(manifest_dir).args([
            "build",
            "--message-format=json",
            "--features",
            &features.join(","),
        ]);
        for name in EXAMPLES {
            cargo.args(["--example", name]);
        }
        // Cargo gives the test process the package's `CARGO_MANIFEST_*` and `CARGO_PKG_*`
        // variables. `ring`'s build script tracks some of them (`rerun-if-env-changed`), so the
        // nested build would see a changed environment and rebuild ring, rustls, reqwest, the
        // crate and the examples (half a minute, next to the other tests of the binary), and the
        // next outer build all of it again. Without them it is the no-op promised above.
        for (key, _) in std::env::vars_os() {
            let name = key.to_string_lossy();
            if name.starts_with("CARGO_MANIFEST_")
                || name.starts_with("CARGO_PKG_")
                || matches!(
                    &*name,
                    "CARGO_CRATE_NAME" | "CARGO_BIN_NAME" | "CARGO_PRIMARY_PACKAGE"
                )
            {
                cargo.env_remove(&key);
            }
        }
        if !cfg!(debug_assertions) {
            cargo.arg("--release");
        }
        let output = cargo.output().expect("run cargo build");
        assert!(
            output.status.success(),
            "cargo build of the examples failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let mut binaries = HashMap::new();
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let Ok(message) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let is_example = message["target"]["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|k| k == "example"));
            if let (true, Some(name), Some(path)) = (
                is_example,
                message["target"]["name"].as_str(),
                message["executable"].as_str(),
            ) {
                binaries.insert(name.to_owned(), PathBuf::from(path));
            }
        }
        binaries
    })
}

/// A running example binary. Dropping it kills the process, so a failed assertion leaks
/// nothing.
pub struct ExampleProcess {
    name: String,
    child: Child,
    stdout: mpsc::Receiver<String>,
    logs: Arc<Mutex<String>>,
    stderr: Option<JoinHandle<()>>,
}

impl ExampleProcess {
    /// Starts the example at `binary` as users do: no `AMAZON_CLIENT_ID`, `AMAZON_ENDPOINT` or
    /// `REDIS_URL` (so the embedded mock) and `LISTEN_ADDR=127.0.0.1:0`; `configure` may change
    /// any of that (a variable it sets wins).
    pub fn start(name: &str, binary: &Path, configure: impl FnOnce(&mut Command)) -> Self {
        let mut command = Command::new(binary);
        command
            .env_remove("AMAZON_CLIENT_ID")
            .env_remove("AMAZON_ENDPOINT")
            .env_remove("REDIS_URL")
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        configure(&mut command);
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", binary.display()));

        // Both pipes are drained on their own threads: a full pipe would block the child.
        let mut stderr = child.stderr.take().expect("piped stderr");
        let logs = Arc::new(Mutex::new(String::new()));
        let all = logs.clone();
        let stderr = thread::spawn(move || {
            let mut chunk = [0; 8192];
            while let Ok(read @ 1..) = stderr.read(&mut chunk) {
                let mut all = all.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                all.push_str(&String::from_utf8_lossy(&chunk[..read]));
            }
        });
        let stdout = child.stdout.take().expect("piped stdout");
        let (lines, received) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = lines.send(line);
            }
        });
        Self {
            name: name.to_owned(),
            child,
            stdout: received,
            logs,
            stderr: Some(stderr),
        }
    }

    /// The next line it prints on stdout that starts with `prefix` (earlier lines are passed
    /// over), waiting up to `within`; panics with its logs when none comes.
    pub fn stdout_line(&mut self, prefix: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(_) => continue,
                Err(error) => {
                    let logs = self.stop_and_logs();
                    panic!(
                        "{} printed no line starting with {prefix:?} ({error}); its stderr:\n{logs}",
                        self.name
                    );
                }
            }
        }
    }

    /// What it logged on stderr so far.
    pub fn logs(&self) -> String {
        self.logs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Waits up to `within` until its logs contain `needle`; panics with them when they do not.
    pub fn wait_for_log(&self, needle: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.logs().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "{} did not log {needle:?} within {within:?}:\n{}",
                self.name,
                self.logs()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process if it still runs and returns everything it logged.
    pub fn stop_and_logs(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(stderr) = self.stderr.take() {
            let _ = stderr.join();
        }
        self.logs()
    }

    /// Sends SIGTERM and waits up to `within` for a successful exit.
    #[cfg(unix)]
    pub fn terminate(&mut self, within: Duration) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the example") {
                assert!(status.success(), "exit status after SIGTERM: {status}");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "still running {within:?} after SIGTERM"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ExampleProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
