//! Signed-in users for the benches that compare a session cookie with a bearer token
//! (`session`, `forward_auth_session`): sessions made by the real flow (`GET /login` and the
//! callback through `SignIn` as a service, the consent through `MockAmazon`'s `/ap/oa` over
//! HTTP), and as many bearer tokens the mock knows.
#![allow(dead_code, unreachable_pub)]

use criterion::Criterion;
use futures_util::stream::{self, StreamExt};
use http::header::{COOKIE, LOCATION, SET_COOKIE};
use http::{Request, Response};
use tower::ServiceExt;
use tower_amazon_auth::sign_in::SignIn;
use tower_amazon_auth::{AmazonAuthLayer, IdentityCache};
use tower_amazon_auth_mock::MOCK_CLIENT_SECRET;

use super::paired::{self, Paired, Path};
use super::{inner, tokens, warm, Body, Template, Upstream};

/// The site's origin (nothing listens there: the routes are called as a service).
pub const ORIGIN: &str = "http://127.0.0.1:9";

/// `n` live sessions and `n` bearer tokens, on one cache.
pub struct SignedIn {
    pub cache: IdentityCache,
    pub sign_in: SignIn,
    /// The session cookies, `taa_session=…`.
    pub cookies: Vec<String>,
    /// Bearer tokens the mock knows (not yet in the cache).
    pub tokens: Vec<String>,
}

impl SignedIn {
    /// Signs in `n` times (one user) and registers `n` tokens named after `name`.
    pub fn new(upstream: &Upstream, name: &str, n: usize) -> Self {
        let cache = upstream.builder().capacity(4 * n as u64 + 1000).build().unwrap();
        let sign_in = SignIn::builder(cache.clone())
            .client_secret(MOCK_CLIENT_SECRET)
            .public_origin(ORIGIN)
            .max_sessions(2 * n as u64 + 10)
            .max_sessions_per_user(2 * n + 10)
            .build()
            .unwrap();
        upstream.mock.allow_redirect_uri(sign_in.redirect_uri());
        let user = super::user(0);
        let user_id = user.user_id().to_owned();
        upstream.mock.add_sign_in_user(user);
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let cookies: Vec<String> = upstream.rt.block_on(
            stream::iter(0..n)
                .map(|_| sign_in_once(&sign_in, &http, &user_id))
                .buffer_unordered(32)
                .collect(),
        );
        assert_eq!(sign_in.session_count(), n as u64, "every session is live");
        let tokens = tokens(name, n);
        for (i, token) in tokens.iter().enumerate() {
            upstream.register_user(token, i);
        }
        Self {
            cache,
            sign_in,
            cookies,
            tokens,
        }
    }
}

/// Signs in once, as the browser would: answers the session cookie (`name=value`).
pub async fn sign_in_once(sign_in: &SignIn, http: &reqwest::Client, user_id: &str) -> String {
    let login = sign_in
        .clone()
        .oneshot(Request::get("/login").body(Body::default()).unwrap())
        .await
        .unwrap();
    let authorize = login.headers()[LOCATION].to_str().unwrap().to_owned();
    let pending = login.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let (page, _) = authorize.split_once('?').unwrap();
    let url = reqwest::Url::parse(&authorize).unwrap();
    let mut form: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    form.push(("user_id".into(), user_id.into()));
    form.push(("action".into(), "allow".into()));
    let consent = http.post(page).form(&form).send().await.unwrap();
    let callback = consent.headers()[LOCATION].to_str().unwrap().to_owned();
    let path = callback.strip_prefix(ORIGIN).unwrap().to_owned();
    let landed = sign_in
        .clone()
        .oneshot(
            Request::get(path)
                .header(COOKIE, pending)
                .body(Body::default())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(landed.status(), 303, "signed in");
    landed
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .find(|c| c.starts_with("taa_session="))
        .expect("a session cookie")
}

impl SignedIn {
    /// Compares, in group `name`, the session path against the bearer path of the service
    /// `service` makes of a layer with this sign-in, and the trivial inner service (given the
    /// bearer requests) as the baseline: `ids` are the bare, cookie and bearer paths' ids. The
    /// requests are `cookie(cookie)` and `bearer(token)`; all are warmed first, and every
    /// measured one must be a cache hit.
    #[allow(clippy::too_many_arguments)]
    pub fn compare<S, R>(
        self,
        c: &mut Criterion,
        upstream: &Upstream,
        name: &'static str,
        ids: [&'static str; 3],
        cookie: &impl Fn(&str) -> Template,
        bearer: &impl Fn(&str) -> Template,
        service: &impl Fn(&AmazonAuthLayer) -> S,
    ) -> Paired
    where
        S: tower::Service<Request<Body>, Response = Response<R>> + Clone + Send + 'static,
        S::Future: Send,
        S::Error: std::fmt::Debug,
    {
        let n = self.cookies.len();
        let cookies: Vec<Template> = self.cookies.iter().map(|c| cookie(c)).collect();
        let bearers: Vec<Template> = self.tokens.iter().map(|t| bearer(t)).collect();
        let layer = AmazonAuthLayer::builder(self.cache)
            .sign_in(&self.sign_in)
            .build()
            .unwrap();
        let svc = service(&layer);
        assert_eq!(warm(&upstream.rt, &svc, &bearers, 64), n, "bearer tokens warmed");
        assert_eq!(warm(&upstream.rt, &svc, &cookies, 64), n, "sessions warmed");
        layer.cache().entry_count(); // applies moka's pending maintenance

        let sequence: Vec<u32> = (0..SEQUENCE).map(|i| (i % n) as u32).collect();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let before = layer.stats();
        // In the order of the paired table: bare, cookie, bearer (its ratio: cookie ÷ bearer).
        let paired = paired::three_way(
            c,
            &rt,
            name,
            &sequence,
            Path {
                id: ids[0],
                svc: inner(),
                templates: &bearers,
            },
            Path {
                id: ids[1],
                svc: svc.clone(),
                templates: &cookies,
            },
            Path {
                id: ids[2],
                svc,
                templates: &bearers,
            },
        );
        super::assert_only_hits(&before, &layer.stats());
        paired
    }
}

/// Requests measured per scenario before the sequence repeats.
const SEQUENCE: usize = 1 << 18;

/// A bench's `main`: the comparison of `SignedIn::compare` at 1 and at 10 000 sessions (groups
/// `names`), then the tables; or, with `--profile`, the one scenario `--sessions` names.
pub fn main<S, R>(
    names: [&'static str; 2],
    ids: [&'static str; 3],
    cookie: impl Fn(&str) -> Template,
    bearer: impl Fn(&str) -> Template,
    service: impl Fn(&AmazonAuthLayer) -> S,
) where
    S: tower::Service<Request<Body>, Response = Response<R>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug,
{
    let upstream = Upstream::start();
    let scenario = |c: &mut Criterion, n: usize| {
        let name = if n == 1 { names[0] } else { names[1] };
        SignedIn::new(&upstream, name, n).compare(c, &upstream, name, ids, &cookie, &bearer, &service)
    };
    if paired::profile_target(1_000_000).is_some() {
        scenario(&mut Criterion::default(), paired::sessions_arg());
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    let paired: Vec<Paired> = [1, 10_000].into_iter().map(|n| scenario(&mut c, n)).collect();
    c.final_summary();
    paired::print_tables(ids, &paired);
}
