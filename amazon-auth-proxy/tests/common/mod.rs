//! The rig `proxies.rs` and `browser.rs` share: the real binary with `--demo`, a site, and the
//! real nginx or Caddy in front of them, configured with `tests/nginx-sign-in.conf` and
//! `tests/Caddyfile-sign-in` (the snippets docs/proxy.md shows). Each test binary uses a part.
#![allow(dead_code)]

use std::io::BufRead as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use tower_amazon_auth_test_support::external::{self, External};

const BINARY: &str = env!("CARGO_BIN_EXE_amazon-auth-proxy");
pub(crate) const NGINX_TEMPLATE: &str = include_str!("../nginx-sign-in.conf");
pub(crate) const CADDY_TEMPLATE: &str = include_str!("../Caddyfile-sign-in");
/// The demo user's id.
pub(crate) const DEMO_USER: &str = "amzn1.account.DEMO7ZQK4XUSER";
/// A path whose query needs care: an encoded slash and a non-ASCII character.
pub(crate) const ORIGINAL: &str = "/private/page?a=1&b=%2F&c=%C3%A9";

/// `template` with `@LISTEN@` / `@SITE@`, `@AUTH@` and `@BACKEND@` filled in.
pub(crate) fn render(template: &str, listen: &str, auth: &str, backend: &str) -> String {
    template
        .replace("@LISTEN@", listen)
        .replace("@SITE@", listen)
        .replace("@AUTH@", auth)
        .replace("@BACKEND@", backend)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Nginx,
    Caddy,
}

/// The auth server: the real binary with `--demo`, killed on drop.
pub(crate) struct AuthServer {
    child: Child,
    /// The token the stand-in for Amazon knows, which the binary prints.
    pub(crate) token: String,
}

impl AuthServer {
    fn start(listen: SocketAddr, public_url: &str) -> Self {
        let mut command = Command::new(BINARY);
        for name in [
            "AMAZON_CLIENT_ID",
            "AMAZON_ENDPOINT",
            "REDIS_URL",
            "AMAZON_CLIENT_SECRET",
            "PUBLIC_URL",
            "LISTEN_ADDR",
            "SECURE_COOKIES",
        ] {
            command.env_remove(name);
        }
        let mut child = command
            .args([
                "--demo",
                "--listen",
                &listen.to_string(),
                "--public-url",
                public_url,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Printed once it listens: `curl -H 'Authorization: Bearer TOKEN' http://…/verify`.
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let token = line
            .split("Bearer ")
            .nth(1)
            .and_then(|rest| rest.split('\'').next())
            .unwrap_or_else(|| panic!("no token in {line:?}"))
            .to_owned();
        Self { child, token }
    }
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `app` served on a free 127.0.0.1 port.
async fn serve(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// The proxy, the auth server behind it and the site, for one test.
pub(crate) struct Rig {
    pub(crate) kind: Kind,
    pub(crate) proxy: External,
    pub(crate) auth: AuthServer,
    /// The site's origin, which is the proxy's.
    pub(crate) origin: String,
    pub(crate) http: reqwest::Client,
}

impl Rig {
    /// Everything started, or `None` when the proxy is not installed (skipped; a failure with
    /// `CI` set).
    pub(crate) async fn start(kind: Kind, test: &str, site: axum::Router) -> Option<Self> {
        let program = match kind {
            Kind::Nginx => external::require("nginx", "nginx", test)?,
            Kind::Caddy => external::require("caddy", "caddy", test)?,
        };
        let port = external::free_port();
        let origin = format!("http://127.0.0.1:{port}");
        let auth_addr = SocketAddr::from(([127, 0, 0, 1], external::free_port()));
        let auth = AuthServer::start(auth_addr, &origin);
        let site = serve(site).await.to_string();
        let auth_addr = auth_addr.to_string();
        let proxy = match kind {
            Kind::Nginx => start_nginx(&program, port, &auth_addr, &site),
            Kind::Caddy => start_caddy(&program, port, &auth_addr, &site),
        }
        .unwrap_or_else(|error| panic!("{kind:?} did not start: {error}"));
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Some(Self {
            kind,
            proxy,
            auth,
            origin,
            http,
        })
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }

    pub(crate) async fn send(&self, request: reqwest::RequestBuilder) -> reqwest::Response {
        request
            .send()
            .await
            .unwrap_or_else(|error| panic!("{error}\n{}", self.proxy.logs()))
    }
}

fn start_nginx(program: &Path, port: u16, auth: &str, site: &str) -> std::io::Result<External> {
    let snippet = render(NGINX_TEMPLATE, &format!("127.0.0.1:{port}"), auth, site);
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

fn start_caddy(program: &Path, port: u16, auth: &str, site: &str) -> std::io::Result<External> {
    let snippet = render(CADDY_TEMPLATE, &format!("http://127.0.0.1:{port}"), auth, site);
    // Through env(1), which execs caddy in place, so that what Caddy saves lands in the
    // temporary directory rather than $HOME.
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
