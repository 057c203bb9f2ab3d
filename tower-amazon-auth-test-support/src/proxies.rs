//! The real reverse proxies the forward-auth tests put in front of an auth server: nginx and
//! Caddy, each started by [`External`] on `port` with a configuration snippet (what a README or
//! guide shows) wrapped in the test-only settings that keep one foreground process and every
//! file in the server's temporary directory.

use std::io;
use std::path::Path;

use crate::external::External;

/// nginx at `program` on `port`, with `snippet` inside its `http { … }` block.
pub fn nginx(program: &Path, port: u16, snippet: &str) -> io::Result<External> {
    External::start(
        "nginx",
        program,
        port,
        |dir| {
            let dir = dir.display();
            // Test-only wrapping: one foreground process, every file in the temporary directory.
            let config = format!(
                "daemon off;\nmaster_process off;\npid {dir}/nginx.pid;\n\
                 events {{ worker_connections 1024; }}\n\
                 http {{\n\
                 access_log {dir}/access.log;\n\
                 client_body_temp_path {dir}/client_body;\nproxy_temp_path {dir}/proxy;\n\
                 fastcgi_temp_path {dir}/fastcgi;\nuwsgi_temp_path {dir}/uwsgi;\n\
                 scgi_temp_path {dir}/scgi;\n\
                 {snippet}}}\n"
            );
            std::fs::write(format!("{dir}/nginx.conf"), config)
        },
        |dir| {
            let prefix = format!("{}/", dir.display());
            vec![
                "-p".to_owned(),
                prefix.clone(),
                "-c".to_owned(),
                format!("{prefix}nginx.conf"),
                "-e".to_owned(),
                format!("{prefix}error.log"),
            ]
        },
    )
}

/// Caddy at `program` on `port`, with `snippet` as its site block(s).
pub fn caddy(program: &Path, port: u16, snippet: &str) -> io::Result<External> {
    // Through env(1), which execs caddy in place (same pid), so that what Caddy saves
    // (autosave.json, its data) lands in the temporary directory rather than $HOME.
    External::start(
        "caddy",
        Path::new("env"),
        port,
        |dir| {
            // Test-only global options: no admin endpoint, no certificates, state in the
            // temporary directory.
            let config = format!(
                "{{\n\tadmin off\n\tauto_https off\n\tstorage file_system {}/data\n}}\n\n{snippet}",
                dir.display()
            );
            std::fs::write(dir.join("Caddyfile"), config)
        },
        |dir| {
            vec![
                format!("XDG_CONFIG_HOME={}/config", dir.display()),
                format!("XDG_DATA_HOME={}/data", dir.display()),
                program.display().to_string(),
                "run".to_owned(),
                "--config".to_owned(),
                format!("{}/Caddyfile", dir.display()),
                "--adapter".to_owned(),
                "caddyfile".to_owned(),
            ]
        },
    )
}
