//! What the proxy's test binaries share: the real binary with no configuration from the
//! environment ([`command`]), with `--demo` or against a stand-in for Amazon the test controls
//! ([`AuthServer`]), a site, and the real nginx or
//! Caddy in front of them, configured with `tests/nginx-sign-in.conf` and
//! `tests/Caddyfile-sign-in` (the snippets docs/proxy.md shows). Each test binary uses a part.
#![allow(dead_code)]

use std::io::BufRead as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tower_amazon_auth_mock::{
    mock_access_token, MockAmazon, MockScope, MockUser, MOCK_CLIENT_ID, MOCK_CLIENT_SECRET,
};

use tower_amazon_auth_test_support::external::{self, External};
use tower_amazon_auth_test_support::proxies;

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

/// The binary with no configuration from this test's environment, and no standard input.
pub(crate) fn command() -> Command {
    let mut command = Command::new(BINARY);
    for name in [
        "AMAZON_CLIENT_ID",
        "AMAZON_ENDPOINT",
        "AMAZON_CLIENT_SECRET",
        "AMAZON_AUTHORIZE_URL",
        "REDIS_URL",
        "REDIS_CLUSTER",
        "AMAZON_AUTH_CACHE_SECRET",
        "PUBLIC_URL",
        "LISTEN_ADDR",
        "LOG_FORMAT",
        "SECURE_COOKIES",
        "PASS_ACCESS_TOKEN",
        "HEADER_READ_TIMEOUT",
        "MAX_HEADER_BYTES",
        "MAX_CONNECTIONS",
    ] {
        command.env_remove(name);
    }
    command.stdin(Stdio::null());
    command
}

/// The `Location` of a redirect.
pub(crate) fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .unwrap_or_else(|| panic!("no Location: {response:?}"))
        .to_str()
        .unwrap()
        .to_owned()
}

/// The `name=value` of each `Set-Cookie`.
pub(crate) fn cookies(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect()
}

/// The `rd` parameter of a query.
pub(crate) fn rd_of(query: &str) -> String {
    form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == "rd")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default()
}

/// Signs the demo user in from `start` (a `/oauth2/start?rd=…` path) on the site at `origin`,
/// as a browser does: the stand-in's consent page on another site, Allow, and back through
/// the callback on `origin`. Answers where the callback sends the browser, and the session
/// cookie (`name=value`). `http` must not follow redirects.
pub(crate) async fn sign_in(http: &reqwest::Client, origin: &str, start: &str) -> (String, String) {
    let started = http.get(format!("{origin}{start}")).send().await.unwrap();
    assert_eq!(started.status(), 303, "{start}");
    let authorize = location(&started);
    assert!(
        authorize.starts_with("http://localhost:"),
        "the stand-in's consent page, on another site: {authorize}"
    );
    let pending = cookies(&started);
    assert!(pending.iter().any(|c| c.starts_with("taa_login_")), "{pending:?}");
    let (page, query) = authorize.split_once('?').unwrap();
    let mut form: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    form.push(("user_id".into(), DEMO_USER.into()));
    form.push(("action".into(), "allow".into()));
    let consent = http.post(page).form(&form).send().await.unwrap();
    let callback = location(&consent);
    assert!(
        callback.starts_with(&format!("{origin}/oauth2/callback?")),
        "back through the site's origin: {callback}"
    );
    let landed = http
        .get(&callback)
        .header("cookie", pending.join("; "))
        .send()
        .await
        .unwrap();
    assert_eq!(landed.status(), 303);
    let session = cookies(&landed)
        .into_iter()
        .find(|c| c.starts_with("taa_session="))
        .expect("a session cookie");
    (location(&landed), session)
}

/// The `/oauth2/start` path that returns to `rd`.
pub(crate) fn start_path(rd: &str) -> String {
    let rd: String = form_urlencoded::byte_serialize(rd.as_bytes()).collect();
    format!("/oauth2/start?rd={rd}")
}

/// The auth server: the real binary, killed on drop.
pub(crate) struct AuthServer {
    pub(crate) child: Child,
    /// Where it listens.
    pub(crate) addr: String,
    /// A token the stand-in for Amazon knows, of the demo user.
    pub(crate) token: String,
    /// The stand-in for Amazon the test controls ([`AuthServer::against`]); `None` with
    /// `--demo`, whose stand-in lives in the binary.
    pub(crate) amazon: Option<MockAmazon>,
}

impl AuthServer {
    /// The binary with `--demo` and `args`, once it listens (default `--listen`: a free port).
    pub(crate) fn demo(args: &[&str]) -> Self {
        let mut command = command();
        command.arg("--demo");
        if !args.contains(&"--listen") {
            command.args(["--listen", "127.0.0.1:0"]);
        }
        let mut child = command
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Printed once it listens: `curl -H 'Authorization: Bearer TOKEN' http://ADDR/verify`.
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let token = line
            .split("Bearer ")
            .nth(1)
            .and_then(|rest| rest.split('\'').next())
            .unwrap_or_else(|| panic!("no token in {line:?}"));
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.trim().strip_suffix("/verify"))
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        Self {
            token: token.to_owned(),
            addr: addr.to_owned(),
            child,
            amazon: None,
        }
    }

    /// The binary with `--demo` on `listen`, for a site at `public_url`, once it listens.
    pub(crate) fn start(listen: SocketAddr, public_url: &str) -> Self {
        Self::demo(&["--listen", &listen.to_string(), "--public-url", public_url])
    }

    /// `path` on the auth server itself.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The binary configured as in production (a client id, a client secret, an endpoint, an
    /// authorize URL) against a stand-in for Amazon this test controls, with `extra` flags, on
    /// `listen`, for a site at `public_url`, once it listens. The demo user can sign in, and
    /// [`Self::token`] is one of theirs.
    pub(crate) async fn against(listen: SocketAddr, public_url: &str, extra: &[&str]) -> Self {
        let amazon = MockAmazon::start().await.unwrap();
        let user = MockUser::new(DEMO_USER)
            .email("demo@example.com")
            .name("Demo User")
            .scope(MockScope::Profile)
            .exp(3600);
        let token = mock_access_token("amazon-auth-proxy test");
        amazon.register(&token, user.clone());
        amazon.add_sign_in_user(user);
        amazon.allow_redirect_uri(format!("{public_url}/oauth2/callback"));
        // The consent page on `localhost`, the site on `127.0.0.1`: two sites, as with amazon.com.
        let authorize = format!("http://localhost:{}/ap/oa", amazon.addr().port());
        let mut child = command()
            .args(["--listen", &listen.to_string(), "--public-url", public_url])
            .args([
                "--client-id",
                MOCK_CLIENT_ID,
                "--client-secret",
                MOCK_CLIENT_SECRET,
            ])
            .args(["--endpoint", amazon.base_url(), "--authorize-url", &authorize])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(listen).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("amazon-auth-proxy exited at start: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "amazon-auth-proxy did not listen on {listen}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self {
            child,
            addr: listen.to_string(),
            token,
            amazon: Some(amazon),
        }
    }

    /// The stand-in for Amazon of [`Self::against`].
    pub(crate) fn amazon(&self) -> &MockAmazon {
        self.amazon
            .as_ref()
            .expect("an auth server started with `against`")
    }

    /// Stops the binary, as a crash would.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        self.kill();
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

/// How a [`Rig`]'s auth server runs.
pub(crate) enum Auth<'a> {
    /// `--demo`.
    Demo,
    /// Against a stand-in for Amazon the test controls, with these extra flags
    /// ([`AuthServer::against`]).
    Against(&'a [&'a str]),
}

impl Rig {
    /// Everything started, the auth server with `--demo`, or `None` when the proxy is not
    /// installed (skipped; a failure with `CI` set).
    pub(crate) async fn start(kind: Kind, test: &str, site: axum::Router) -> Option<Self> {
        Self::start_with(kind, test, site, Auth::Demo).await
    }

    /// Everything started, the auth server as `auth` says, or `None` when the proxy is not
    /// installed (skipped; a failure with `CI` set).
    pub(crate) async fn start_with(
        kind: Kind,
        test: &str,
        site: axum::Router,
        auth: Auth<'_>,
    ) -> Option<Self> {
        let program = match kind {
            Kind::Nginx => external::require("nginx", "nginx", test)?,
            Kind::Caddy => external::require("caddy", "caddy", test)?,
        };
        let port = external::free_port();
        let origin = format!("http://127.0.0.1:{port}");
        let auth_addr = SocketAddr::from(([127, 0, 0, 1], external::free_port()));
        let auth = match auth {
            Auth::Demo => AuthServer::start(auth_addr, &origin),
            Auth::Against(extra) => AuthServer::against(auth_addr, &origin, extra).await,
        };
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
    proxies::nginx(
        program,
        port,
        &render(NGINX_TEMPLATE, &format!("127.0.0.1:{port}"), auth, site),
    )
}

fn start_caddy(program: &Path, port: u16, auth: &str, site: &str) -> std::io::Result<External> {
    proxies::caddy(
        program,
        port,
        &render(CADDY_TEMPLATE, &format!("http://127.0.0.1:{port}"), auth, site),
    )
}
