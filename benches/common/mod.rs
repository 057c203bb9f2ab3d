//! Helpers shared by the bench binaries: a mock Amazon on its own runtime, a layer pointed at
//! it, realistic users and tokens, requests for each token source, and cache warming.
#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use http::header::{HeaderValue, AUTHORIZATION};
use http::{Request, Response, Uri};
use http_body_util::Full;
use tower::ServiceExt;
use tower_amazon_auth::token::AMZ_ACCESS_TOKEN;
use tower_amazon_auth::{AmazonAuthLayer, IdentityCache, IdentityCacheBuilder, StatsSnapshot};
use tower_amazon_auth_mock::{mock_access_token, MockAmazon, MockScope, MockUser, MOCK_CLIENT_ID};

pub mod paired;
pub mod process;
pub mod sign_in;
pub mod stores;
pub mod wrk;

/// The request body every bench sends.
pub type Body = Full<Bytes>;

/// The trivial inner service: a small fixed response, ready at once.
pub fn inner() -> impl tower::Service<
    Request<Body>,
    Response = Response<Body>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Body>, Infallible>> + Send + 'static,
> + Clone
       + Send
       + 'static {
    tower::service_fn(|_request: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"{\"ok\":true}"))))
    })
}

/// A MockAmazon running on a runtime of its own (one worker thread), so benches can drive
/// the layer from any thread or executor while the mock keeps answering.
pub struct Upstream {
    pub rt: tokio::runtime::Runtime,
    pub mock: MockAmazon,
}

impl Upstream {
    pub fn start() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let mock = rt.block_on(MockAmazon::start()).expect("mock amazon");
        Self { rt, mock }
    }

    /// A cache builder aimed at the mock, with TTLs long enough that nothing expires during
    /// a bench run.
    pub fn builder(&self) -> IdentityCacheBuilder {
        IdentityCache::builder()
            .client_id(MOCK_CLIENT_ID)
            .base_url(self.mock.base_url())
            .max_ttl(Duration::from_secs(3 * 3600))
            .negative_ttl(Duration::from_secs(3600))
    }

    /// Registers a realistic user (email, name, postal code) for `token`.
    pub fn register_user(&self, token: &str, n: usize) {
        self.mock.register(token, user(n));
    }
}

/// A layer with default layer settings on the cache `cache` builds.
pub fn layer(cache: IdentityCacheBuilder) -> AmazonAuthLayer {
    AmazonAuthLayer::builder(cache.build().expect("cache"))
        .build()
        .expect("layer")
}

/// A realistic profile: the fields a `profile postal_code` scope returns.
pub fn user(n: usize) -> MockUser {
    MockUser::new(format!("amzn1.account.AF{n:06}XKQ7EXAMPLEUSER"))
        .email(format!("user{n:06}@example.com"))
        .name(format!("Pat Example {n}"))
        .postal_code("98109")
        .exp(4 * 3600)
        .scope(MockScope::ProfileAndPostalCode)
}

/// `n` distinct realistic 410-byte `Atza|…` tokens.
pub fn tokens(prefix: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| mock_access_token(format!("{prefix}-{i}")))
        .collect()
}

/// Where a bench request carries its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `?access_token=Atza|…` with the `|` raw.
    QueryRaw,
    /// `?access_token=Atza%7C…`.
    QueryEncoded,
    /// `Authorization: Bearer Atza|…`.
    Bearer,
    /// `x-amz-access-token: Atza|…`.
    AmzHeader,
}

impl Source {
    pub const ALL: [Source; 4] = [
        Source::QueryRaw,
        Source::QueryEncoded,
        Source::Bearer,
        Source::AmzHeader,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Source::QueryRaw => "query_raw",
            Source::QueryEncoded => "query_pct7C",
            Source::Bearer => "bearer",
            Source::AmzHeader => "x-amz-access-token",
        }
    }
}

/// A prebuilt request template: cloning its parts is cheap (the header value and the URI are
/// reference-counted `Bytes`), so building a request per iteration costs the same with and
/// without the layer.
#[derive(Clone)]
pub struct Template {
    uri: Uri,
    header: Option<(http::HeaderName, HeaderValue)>,
    /// A second header (a forward-auth subrequest's `X-Original-Method`, say).
    extra: Option<(http::HeaderName, HeaderValue)>,
}

impl Template {
    pub fn new(token: &str, source: Source) -> Self {
        let (uri, header) = match source {
            Source::QueryRaw => (format!("/me?access_token={token}"), None),
            Source::QueryEncoded => (format!("/me?access_token={}", token.replace('|', "%7C")), None),
            Source::Bearer => ("/me".to_owned(), Some((AUTHORIZATION, format!("Bearer {token}")))),
            Source::AmzHeader => ("/me".to_owned(), Some((AMZ_ACCESS_TOKEN, token.to_owned()))),
        };
        let header = header.map(|(name, value)| {
            let value = HeaderValue::from_str(&value).expect("header value");
            // Make the value shared now, so the clone per request is a reference count.
            let _ = value.clone();
            (name, value)
        });
        Self {
            uri: uri.parse().expect("uri"),
            header,
            extra: None,
        }
    }

    /// A raw header value template (for junk that is not a valid token).
    pub fn with_header(uri: &str, name: http::HeaderName, value: &[u8]) -> Self {
        Self {
            uri: uri.parse().expect("uri"),
            header: Some((name, HeaderValue::from_bytes(value).expect("header value"))),
            extra: None,
        }
    }

    /// This template at another URI (a token's request sent to `/verify`, say).
    pub fn at(mut self, uri: &str) -> Self {
        self.uri = uri.parse().expect("uri");
        self
    }

    /// This template with a second header.
    pub fn and_header(mut self, name: &'static str, value: &'static str) -> Self {
        self.extra = Some((
            http::HeaderName::from_static(name),
            HeaderValue::from_static(value),
        ));
        self
    }

    #[inline]
    pub fn request(&self) -> Request<Body> {
        let mut request = Request::new(Full::default());
        *request.uri_mut() = self.uri.clone();
        if let Some((name, value)) = &self.header {
            request.headers_mut().insert(name.clone(), value.clone());
        }
        if let Some((name, value)) = &self.extra {
            request.headers_mut().insert(name.clone(), value.clone());
        }
        request
    }
}

/// Sends each template once through `svc`, `concurrency` at a time, on `rt`; returns how many
/// answered 200.
pub fn warm<S, B>(rt: &tokio::runtime::Runtime, svc: &S, templates: &[Template], concurrency: usize) -> usize
where
    S: tower::Service<Request<Body>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug,
{
    rt.block_on(async {
        stream::iter(templates.iter().map(|t| {
            let svc = svc.clone();
            let request = t.request();
            async move { svc.oneshot(request).await.expect("service").status() == 200 }
        }))
        .buffer_unordered(concurrency)
        .filter(|ok| std::future::ready(*ok))
        .count()
        .await
    })
}

/// Drives `request` through `svc` by polling once: the hit path and every refusal complete on
/// their first poll, as they never wait on anything.
#[inline]
pub fn poll_once<S, B>(svc: &mut S, request: http::Request<Body>) -> http::Response<B>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<B>>,
    S::Error: std::fmt::Debug,
{
    use futures_util::FutureExt;
    use tower::ServiceExt;
    svc.ready().now_or_never().expect("ready at once").expect("ready");
    svc.call(request)
        .now_or_never()
        .expect("completes on the first poll")
        .expect("response")
}

/// Prints what the measured requests did to the layer's counters (from `before` to `after`)
/// and checks that every one of them was a cache hit.
pub fn assert_only_hits(before: &StatsSnapshot, after: &StatsSnapshot) {
    println!(
        "after: hits +{}, misses +{}, upstream calls +{}",
        after.hits - before.hits,
        after.misses - before.misses,
        after.upstream_calls - before.upstream_calls
    );
    assert_eq!(
        after.misses, before.misses,
        "every measured request was a cache hit"
    );
}
