//! 1 000 concurrent first requests for one token, through the layer in process (no server
//! socket: `tower::ServiceExt::oneshot` on clones of the service), against `MockAmazon`: a valid
//! token costs exactly one tokeninfo and one profile call, an invalid one at most two calls.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use tower::{Layer, ServiceExt};
use tower_amazon_auth::{AmazonAuthLayer, IdentityCache};
use tower_amazon_auth_mock::{mock_access_token, MockAmazon, MockReply, MockScope, MockUser, MOCK_CLIENT_ID};

const HERD: usize = 1000;

async fn herd(layer: &AmazonAuthLayer, token: &str) -> Vec<StatusCode> {
    let svc = layer.layer(tower::service_fn(|_request: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
    }));
    let tasks: Vec<_> = (0..HERD)
        .map(|_| {
            let request = Request::get("/me")
                .header("authorization", format!("Bearer {token}"))
                .body(Full::<Bytes>::default())
                .unwrap();
            let svc = svc.clone();
            tokio::spawn(async move { svc.oneshot(request).await.unwrap().status() })
        })
        .collect();
    let mut statuses = Vec::with_capacity(HERD);
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    statuses
}

async fn setup() -> (MockAmazon, AmazonAuthLayer) {
    let mock = MockAmazon::start().await.unwrap();
    // Long enough that every request joins the flight before Amazon answers.
    mock.set_latency(Duration::from_millis(200));
    let cache = IdentityCache::builder()
        .client_id(MOCK_CLIENT_ID)
        .base_url(mock.base_url())
        .build()
        .unwrap();
    let layer = AmazonAuthLayer::builder(cache).build().unwrap();
    (mock, layer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_first_requests_for_one_token_cost_one_tokeninfo_and_one_profile() {
    let (mock, layer) = setup().await;
    let token = mock_access_token("herd-1000");
    mock.register(
        &token,
        MockUser::new("amzn1.account.HERD")
            .email("herd@example.com")
            .name("Pat Example")
            .postal_code("98109")
            .scope(MockScope::ProfileAndPostalCode),
    );
    let statuses = herd(&layer, &token).await;
    assert!(statuses.iter().all(|s| *s == StatusCode::OK), "{statuses:?}");
    let calls = mock.calls_for(&token);
    assert_eq!((calls.tokeninfo, calls.profile), (1, 1), "{calls:?}");
    assert_eq!(mock.calls().total(), 2);
    let stats = layer.stats();
    assert_eq!(stats.upstream_calls, 2);
    assert_eq!(stats.hits + stats.misses, HERD as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_first_requests_for_one_invalid_token_cost_at_most_two_calls() {
    let (mock, layer) = setup().await;
    let token = mock_access_token("herd-1000-invalid");
    mock.register(&token, MockReply::invalid_token());
    let statuses = herd(&layer, &token).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
    let calls = mock.calls_for(&token);
    assert!(calls.total() <= 2, "{calls:?}");
    assert_eq!(calls.tokeninfo, 1, "{calls:?}");
}
