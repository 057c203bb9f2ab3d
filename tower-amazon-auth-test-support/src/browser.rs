//! A headless Chromium driven over WebDriver, as a person's browser: `chromedriver` started by
//! [`External`] on a free 127.0.0.1 port, a fresh profile in its temporary directory, and a
//! `fantoccini` client connected to it. [`chromium`] skips (or, with `CI` set, fails) a test when
//! `chromedriver` or `chromium` is missing, like the other real servers.

use std::collections::HashMap;
use std::ops::Deref;
use std::process::Command;
use std::time::Duration;

use fantoccini::wd::{Capabilities, TimeoutConfiguration};
use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

use crate::external::{free_port, require, External};

/// How long a page may take to load.
const PAGE_LOAD: Duration = Duration::from_secs(30);
/// How long a script (`execute`, `execute_async`) may take to finish.
const SCRIPT: Duration = Duration::from_secs(10);

/// Chromium's flags: headless, and nothing that reaches out to the network by itself (on a closed
/// network Chromium's own connections are refused, which slows or breaks it).
const ARGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1024,768",
];

/// A Chromium session: dereferences to the `fantoccini` client. [`Browser::close`] ends the
/// session (the browser exits); dropping it, even on a failed assertion, kills `chromedriver`
/// and every browser process it started.
pub struct Browser {
    client: Client,
    driver: External,
}

/// A fresh headless Chromium, or `None` (the test `test` is skipped, see
/// [`require`]) when `chromedriver` or `chromium` is not installed.
pub async fn chromium(test: &str) -> Option<Browser> {
    let chromedriver = require("chromedriver", "chromium-driver", test)?;
    let chromium = require("chromium", "chromium", test)?;
    let port = free_port();
    let driver = External::start(
        "chromedriver",
        &chromedriver,
        port,
        |dir| std::fs::create_dir(dir.join("profile")),
        |dir| {
            [
                format!("--port={port}"),
                format!("--log-path={}", dir.join("chromedriver.log").display()),
            ]
        },
    )
    .expect("chromedriver starts");
    let mut args: Vec<String> = ARGS.iter().map(|arg| (*arg).to_owned()).collect();
    args.push(format!(
        "--user-data-dir={}",
        driver.dir().join("profile").display()
    ));
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": { "binary": chromium, "args": args },
        // An alert stays open for the test to see (`get_alert_text`), instead of being
        // dismissed by the next command.
        "unhandledPromptBehavior": "ignore",
    });
    let capabilities = serde_json::from_value::<Capabilities>(capabilities).expect("an object");
    let client = ClientBuilder::new(HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .unwrap_or_else(|error| {
            // No `Browser` yet whose drop would end a Chromium that did start.
            kill_descendants(driver.pid());
            panic!("a Chromium session: {error}\n{}", driver.logs())
        });
    client
        .update_timeouts(TimeoutConfiguration::new(
            Some(SCRIPT),
            Some(PAGE_LOAD),
            Some(Duration::ZERO),
        ))
        .await
        .expect("set the WebDriver timeouts");
    Some(Browser { client, driver })
}

impl Browser {
    /// Ends the session: Chromium exits, then `chromedriver` is stopped.
    pub async fn close(self) {
        if let Err(error) = self.client.clone().close().await {
            panic!("closing the Chromium session: {error}\n{}", self.logs());
        }
        // Dropping `self` stops chromedriver.
    }

    /// What `chromedriver` logged (for failure messages).
    pub fn logs(&self) -> String {
        let log = std::fs::read_to_string(self.driver.dir().join("chromedriver.log")).unwrap_or_default();
        format!("{}--- chromedriver.log\n{log}", self.driver.logs())
    }
}

impl Deref for Browser {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // After `close` there is nothing left; after a panic Chromium still runs, and killing
        // chromedriver (the `External`'s drop) would leave it behind.
        kill_descendants(self.driver.pid());
    }
}

/// Kills (SIGKILL) every process below `pid`, parents first so none is left to start more
/// (Linux: the parent of each process is read from `/proc/<pid>/stat`).
fn kill_descendants(pid: u32) {
    let parents = parents();
    let mut below = vec![pid];
    while let Some(parent) = below.pop() {
        for (&child, _) in parents.iter().filter(|(_, &p)| p == parent) {
            let _ = Command::new("kill").args(["-KILL", &child.to_string()]).status();
            below.push(child);
        }
    }
}

/// Every process's parent, by process id.
fn parents() -> HashMap<u32, u32> {
    let Ok(proc) = std::fs::read_dir("/proc") else {
        return HashMap::new();
    };
    proc.flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // `pid (comm) state ppid …`: the command may hold spaces and parentheses.
            let ppid = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()?;
            Some((pid, ppid))
        })
        .collect()
}
