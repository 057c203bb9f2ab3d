//! Properties of token extraction and of the layer, checked with proptest: extraction never
//! panics and only ever yields a token that passes `AccessToken::check`; every such token
//! round-trips through the three sources; and (with the `mock` feature) a request is forwarded
//! to the inner service if and only if it carries exactly one token that Amazon (here
//! `MockAmazon`) accepts.

use http::header::{HeaderName, HeaderValue, AUTHORIZATION};
use http::{HeaderMap, Uri};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError};
use tower_amazon_auth::token::{extract_token, TokenRules, TokenSource, AMZ_ACCESS_TOKEN};
use tower_amazon_auth::AccessToken;

/// The bytes a token may hold: visible ASCII without quotes or backslash.
fn token_chars() -> Vec<char> {
    (0x21u8..=0x7e)
        .filter(|b| !matches!(b, b'"' | b'\'' | b'\\'))
        .map(char::from)
        .collect()
}

/// Strings of token characters: mostly short, sometimes up to the 2048-byte limit.
fn token_body(max: usize) -> impl Strategy<Value = String> {
    let chars = token_chars();
    prop_oneof![
        3 => prop::collection::vec(prop::sample::select(chars.clone()), 0..48),
        1 => prop::collection::vec(prop::sample::select(chars), 300..=max),
    ]
    .prop_map(|chars| chars.into_iter().collect())
}

/// Tokens `AccessToken::check` accepts, with the flag they were checked with.
fn valid_token() -> impl Strategy<Value = (String, bool)> {
    prop_oneof![
        token_body(2048 - 5).prop_map(|body| (format!("Atza|{body}"), true)),
        token_body(2048)
            .prop_filter("non-empty, not a refresh token", |t| {
                !t.is_empty() && !t.starts_with("Atzr|")
            })
            .prop_map(|t| (t, false)),
    ]
}

fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// The invariants of any extraction result, as in the `extract` fuzz target.
fn check_extraction(uri: &Uri, headers: &HeaderMap, require_prefix: bool) -> Result<(), TestCaseError> {
    let rules = TokenRules::default().require_access_token_prefix(require_prefix);
    let first = extract_token(uri, headers, rules);
    prop_assert_eq!(&first, &extract_token(uri, headers, rules));
    match first {
        Ok(None) => {}
        Ok(Some((token, source))) => {
            let t = token.expose();
            prop_assert!(!t.is_empty() && t.len() <= 2048);
            prop_assert!(t
                .bytes()
                .all(|b| (0x21..=0x7e).contains(&b) && !matches!(b, b'"' | b'\'' | b'\\')));
            prop_assert!(!t.starts_with("Atzr|"));
            prop_assert!(!require_prefix || t.starts_with("Atza|"));
            prop_assert!(AccessToken::check(t, rules).is_ok());
            match source {
                TokenSource::Query => prop_assert!(uri.query().is_some()),
                TokenSource::Bearer => prop_assert_eq!(headers.get_all(AUTHORIZATION).iter().count(), 1),
                TokenSource::AmzHeader => {
                    prop_assert_eq!(headers.get_all(AMZ_ACCESS_TOKEN).iter().count(), 1)
                }
                _ => {}
            }
        }
        Err(error) => {
            prop_assert!(matches!(error.status().as_u16(), 400 | 401));
            prop_assert!(error.challenge("api").is_some());
        }
    }
    Ok(())
}

const URI_PREFIXES: [&str; 5] = ["", "/", "/?", "/me?access_token=", "/me?a=1&access_token=Atza|"];
const HEADER_NAMES: [&str; 5] = [
    "authorization",
    "x-amz-access-token",
    "Authorization",
    "cookie",
    "host",
];
const VALUE_PREFIXES: [&str; 6] = ["", "Bearer ", "bearer\t", "BEARER  ", "Basic ", "Atza|"];

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn extraction_never_panics_on_arbitrary_requests(
        prefix in prop::sample::select(URI_PREFIXES.to_vec()),
        uri_tail in prop::collection::vec(any::<u8>(), 0..200),
        headers in prop::collection::vec(
            (
                prop::sample::select(HEADER_NAMES.to_vec()),
                prop::sample::select(VALUE_PREFIXES.to_vec()),
                prop::collection::vec(any::<u8>(), 0..80),
            ),
            0..5,
        ),
        require_prefix in any::<bool>(),
    ) {
        let uri_bytes = [prefix.as_bytes(), &uri_tail].concat();
        let uri = Uri::try_from(uri_bytes).unwrap_or_else(|_| Uri::from_static("/"));
        let mut map = HeaderMap::new();
        for (name, value_prefix, value) in headers {
            let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
            if let Ok(value) = HeaderValue::from_bytes(&[value_prefix.as_bytes(), &value].concat()) {
                map.append(name, value);
            }
        }
        check_extraction(&uri, &map, require_prefix)?;
    }

    #[test]
    fn extraction_never_panics_on_arbitrary_strings(
        query in ".{0,120}",
        value in ".{0,120}",
        require_prefix in any::<bool>(),
    ) {
        let encoded: String = form_urlencoded::byte_serialize(query.as_bytes()).collect();
        for target in [format!("/?access_token={encoded}"), format!("/?{query}")] {
            let Ok(uri) = Uri::try_from(target) else { continue };
            let mut map = HeaderMap::new();
            if let Ok(value) = HeaderValue::from_str(&value) {
                map.append(AUTHORIZATION, value.clone());
                check_extraction(&uri, &map, require_prefix)?;
                map.clear();
                map.append(AMZ_ACCESS_TOKEN, value);
            }
            check_extraction(&uri, &map, require_prefix)?;
        }
    }

    #[test]
    fn a_valid_token_round_trips_through_every_source((token, require_prefix) in valid_token()) {
        prop_assert!(AccessToken::check(&token, TokenRules::default().require_access_token_prefix(require_prefix)).is_ok());
        let encoded: String = form_urlencoded::byte_serialize(token.as_bytes()).collect();
        let raw_pipe = encoded.replace("%7C", "|");
        let mut requests = vec![
            (format!("/?access_token={encoded}"), None, TokenSource::Query),
            (format!("/me?a=1&access_token={raw_pipe}&b=%20"), None, TokenSource::Query),
        ];
        for (name, value, source) in [
            (AUTHORIZATION, format!("Bearer {token}"), TokenSource::Bearer),
            (AUTHORIZATION, format!("bearer \t {token}"), TokenSource::Bearer),
            (AMZ_ACCESS_TOKEN, token.clone(), TokenSource::AmzHeader),
        ] {
            requests.push(("/me?other=x".to_owned(), Some((name, value)), source));
        }
        for (target, header, source) in requests {
            let uri: Uri = target.parse().map_err(|e| TestCaseError::fail(format!("{target}: {e}")))?;
            let mut headers = HeaderMap::new();
            if let Some((name, value)) = header {
                headers.insert(name, HeaderValue::from_str(&value).unwrap());
            }
            let found = extract_token(&uri, &headers, TokenRules::default().require_access_token_prefix(require_prefix));
            let expected = Ok(Some((AccessToken::new(token.clone()), source)));
            prop_assert_eq!(found, expected, "{}", source);
        }
    }
}

/// The layer end to end, in process: a request reaches the inner service if and only if its
/// one token is accepted.
mod layer {
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use http::header::{HeaderValue, AUTHORIZATION};
    use http::{Request, Response};
    use proptest::prelude::*;
    use proptest::test_runner::TestRunner;
    use tower::{Layer, ServiceExt};
    use tower_amazon_auth::token::{extract_token, AMZ_ACCESS_TOKEN};
    use tower_amazon_auth::{AmazonAuthLayer, AmazonUser, IdentityCache};
    use tower_amazon_auth_mock::{mock_access_token, MockAmazon, MockUser, MOCK_CLIENT_ID};

    use super::config;

    /// How a request carries its token.
    #[derive(Debug, Clone, Copy)]
    enum Placement {
        Query,
        QueryRawPipe,
        Bearer,
        AmzHeader,
        // Refused whatever the token.
        QueryAndBearer,
        TwoBearers,
        TwoParameters,
    }

    impl Placement {
        fn single(self) -> bool {
            matches!(
                self,
                Self::Query | Self::QueryRawPipe | Self::Bearer | Self::AmzHeader
            )
        }
    }

    /// What a request presents.
    #[derive(Debug, Clone)]
    enum Presented {
        /// One of the tokens registered as a user.
        Good(usize),
        /// A well-formed token Amazon does not know.
        Unknown(u32),
        /// The refresh-token twin of a good token.
        Refresh(usize),
        /// Anything.
        Junk(String),
    }

    const GOOD: usize = 3;

    fn good_token(i: usize) -> String {
        mock_access_token(format!("property-good-{i}"))
    }

    fn request(token: &str, placement: Placement) -> Option<Request<()>> {
        let encoded: String = form_urlencoded::byte_serialize(token.as_bytes()).collect();
        let bearer = format!("Bearer {token}");
        let builder = match placement {
            Placement::Query => Request::get(format!("/p?access_token={encoded}")),
            Placement::QueryRawPipe => {
                Request::get(format!("/p?access_token={}", encoded.replace("%7C", "|")))
            }
            Placement::Bearer => {
                Request::get("/p").header(AUTHORIZATION, HeaderValue::from_str(&bearer).ok()?)
            }
            Placement::AmzHeader => {
                Request::get("/p").header(AMZ_ACCESS_TOKEN, HeaderValue::from_str(token).ok()?)
            }
            Placement::QueryAndBearer => Request::get(format!("/p?access_token={encoded}"))
                .header(AUTHORIZATION, HeaderValue::from_str(&bearer).ok()?),
            Placement::TwoBearers => Request::get("/p")
                .header(AUTHORIZATION, HeaderValue::from_str(&bearer).ok()?)
                .header(AUTHORIZATION, HeaderValue::from_str(&bearer).ok()?),
            Placement::TwoParameters => {
                Request::get(format!("/p?access_token={encoded}&access_token={encoded}"))
            }
        };
        builder.body(()).ok()
    }

    #[test]
    fn a_request_reaches_the_inner_service_if_and_only_if_its_one_token_is_accepted() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mock = runtime.block_on(MockAmazon::start()).unwrap();
        for i in 0..GOOD {
            mock.register(good_token(i), MockUser::new(format!("amzn1.account.P{i}")));
        }
        let cache = IdentityCache::builder()
            .client_id(MOCK_CLIENT_ID)
            .base_url(mock.base_url())
            .build()
            .unwrap();
        let layer = AmazonAuthLayer::builder(cache).build().unwrap();
        let reached = Arc::new(AtomicUsize::new(0));
        let inner = {
            let reached = Arc::clone(&reached);
            tower::service_fn(move |request: Request<()>| {
                reached.fetch_add(1, Ordering::SeqCst);
                let user = request
                    .extensions()
                    .get::<AmazonUser>()
                    .map(|u| u.user_id().to_owned())
                    .unwrap_or_default();
                async move {
                    Ok::<_, Infallible>(
                        Response::builder()
                            .header("x-user", user)
                            .body(String::new())
                            .unwrap(),
                    )
                }
            })
        };
        let service = layer.layer(inner);

        let presented = prop_oneof![
            (0..GOOD).prop_map(Presented::Good),
            any::<u32>().prop_map(Presented::Unknown),
            (0..GOOD).prop_map(Presented::Refresh),
            prop_oneof![
                ".{0,64}",
                "Atza\\|[ -~]{0,64}",
                "[ \t]*(Atza|Atzr)\\|[ -~\t]{0,16}"
            ]
            .prop_map(Presented::Junk),
        ];
        let placement = prop::sample::select(vec![
            Placement::Query,
            Placement::QueryRawPipe,
            Placement::Bearer,
            Placement::AmzHeader,
            Placement::QueryAndBearer,
            Placement::TwoBearers,
            Placement::TwoParameters,
        ]);
        let (accepted_cases, refused_cases) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let mut runner = TestRunner::new(config(192));
        runner
            .run(&(presented, placement), |(presented, placement)| {
                let token = match &presented {
                    Presented::Good(i) => good_token(*i),
                    Presented::Unknown(seed) => mock_access_token(format!("property-unknown-{seed}")),
                    Presented::Refresh(i) => good_token(*i).replacen("Atza|", "Atzr|", 1),
                    Presented::Junk(junk) => junk.clone(),
                };
                let Some(request) = request(&token, placement) else {
                    return Ok(());
                };
                let before = reached.load(Ordering::SeqCst);
                let response = runtime.block_on(service.clone().oneshot(request)).unwrap();
                let forwarded = reached.load(Ordering::SeqCst) - before;
                let status = response.status().as_u16();
                let accepted = matches!(presented, Presented::Good(_)) && placement.single();
                if accepted {
                    prop_assert_eq!(status, 200);
                    let Presented::Good(i) = presented else {
                        unreachable!()
                    };
                    prop_assert_eq!(&response.headers()["x-user"], &format!("amzn1.account.P{i}"));
                } else {
                    prop_assert!(matches!(status, 400 | 401), "status {}", status);
                }
                prop_assert_eq!(forwarded, usize::from(accepted));
                let tally = if accepted { &accepted_cases } else { &refused_cases };
                tally.fetch_add(1, Ordering::Relaxed);
                Ok(())
            })
            .unwrap();
        // Both sides of the property were exercised.
        assert!(accepted_cases.into_inner() > 0);
        assert!(refused_cases.into_inner() > 0);
        // Every good token was verified once at most, whatever the number of requests.
        for i in 0..GOOD {
            assert!(mock.calls_for(&good_token(i)).tokeninfo <= 1);
        }
    }

    /// A malformed token gets exactly the answer `extract_token` gives it (the layer checks
    /// prefixes before its cache and characters only for tokens it does not know: the order
    /// must not change an answer), whatever the cache holds, and no upstream call.
    #[test]
    fn the_layer_refuses_a_malformed_token_as_extract_token_does() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mock = runtime.block_on(MockAmazon::start()).unwrap();
        mock.register(good_token(0), MockUser::new("amzn1.account.P0"));
        let cache = IdentityCache::builder()
            .client_id(MOCK_CLIENT_ID)
            .base_url(mock.base_url())
            .build()
            .unwrap();
        let layer = AmazonAuthLayer::builder(cache).build().unwrap();
        let inner =
            tower::service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(String::new())) });
        let service = layer.layer(inner);
        // A good token in the cache, so the hit path is warm.
        let warm = request(&good_token(0), Placement::Bearer).unwrap();
        assert_eq!(
            runtime.block_on(service.clone().oneshot(warm)).unwrap().status(),
            200
        );
        let malformed = AtomicUsize::new(0);

        let prefix = prop::sample::select(vec!["Atza|", "Atzr|", "Xyzw|", "", "atza|"]);
        let rest = prop_oneof!["[!-~]{0,24}", "[ -~]{0,24}", "[!-~]{0,12}[\"'\\\\ ][!-~]{0,12}"];
        let mut runner = TestRunner::new(config(256));
        runner
            .run(&(prefix, rest), |(prefix, rest)| {
                let token = format!("{prefix}{rest}");
                let Some(request) = request(&token, Placement::Bearer) else {
                    return Ok(());
                };
                let expected = extract_token(request.uri(), request.headers(), layer.token_rules());
                let calls = mock.calls().total();
                let response = runtime.block_on(service.clone().oneshot(request)).unwrap();
                if let Err(error) = expected {
                    malformed.fetch_add(1, Ordering::Relaxed);
                    prop_assert_eq!(response.status(), error.status(), "{:?}", error);
                    let challenge = response.headers()["www-authenticate"].to_str().unwrap();
                    let code = error.rfc6750_code().unwrap();
                    prop_assert!(challenge.contains(code), "{} for {:?}", challenge, error);
                    prop_assert_eq!(mock.calls().total(), calls, "a malformed token reached Amazon");
                }
                Ok(())
            })
            .unwrap();
        assert!(malformed.into_inner() > 64, "too few malformed tokens drawn");
    }
}
