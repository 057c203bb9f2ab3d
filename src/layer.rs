//! [`AmazonAuthLayer`]: the [`Layer`] that wraps a service in [`AmazonAuth`]. Built by
//! [`AmazonAuthBuilder`](crate::AmazonAuthBuilder) (see [`AmazonAuthLayer::builder`]).

use std::sync::Arc;

use tower_layer::Layer;

use crate::cache::IdentityCache;
use crate::service::{AmazonAuth, Shared};
use crate::stats::StatsSnapshot;

/// A [`Layer`] that authenticates requests carrying Amazon access tokens.
///
/// Build one with [`AmazonAuthLayer::builder`] (or [`AmazonAuthLayer::new`] for the
/// defaults), then wrap a service or an axum `Router` with it. Clones share the cache.
///
/// Use a layer within one tokio runtime, as a server does: its connections to Amazon belong to
/// the runtime that opened them, and a layer moved to a second runtime while the first is not
/// running waits on them until the deadline (then answers 503).
///
/// ```
/// use tower_amazon_auth::{AmazonAuthLayer, IdentityCache};
/// use tower_amazon_auth::endpoint::Region;
///
/// let cache = IdentityCache::builder()
///     .client_id("amzn1.application-oa2-client.0123456789abcdef")
///     .region(Region::Europe)
///     .build()
///     .expect("valid cache configuration");
/// let layer = AmazonAuthLayer::builder(cache)
///     .realm("shop")
///     .build()
///     .expect("valid layer configuration");
/// # let _ = layer;
/// ```
#[derive(Debug, Clone)]
pub struct AmazonAuthLayer {
    shared: Arc<Shared>,
}

impl AmazonAuthLayer {
    /// The layer around the state [`AmazonAuthBuilder::build`](crate::AmazonAuthBuilder::build)
    /// made.
    pub(crate) fn from_shared(shared: Shared) -> Self {
        Self {
            shared: Arc::new(shared),
        }
    }

    /// The state the layer's services share (cache, settings), for
    /// [`ForwardAuth`](crate::forward_auth::ForwardAuth).
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The identity cache, to invalidate a token on logout or to build another layer on the
    /// same cache ([`AmazonAuthLayer::builder`]).
    pub fn cache(&self) -> &IdentityCache {
        &self.shared.cache
    }

    /// The rules this layer applies to a token before any network call (its prefix rule,
    /// whether the query may carry it): pass them to [`extract_token`](crate::token::extract_token)
    /// and it answers as the layer does.
    ///
    /// ```
    /// # fn main() -> Result<(), tower_amazon_auth::BuildError> {
    /// let cache = tower_amazon_auth::IdentityCache::new("amzn1.application-oa2-client.x")?;
    /// let layer = tower_amazon_auth::AmazonAuthLayer::builder(cache)
    ///     .allow_query_token(false)
    ///     .build()?;
    /// assert!(!layer.token_rules().allows_query_token());
    /// # Ok(())
    /// # }
    /// ```
    pub fn token_rules(&self) -> crate::token::TokenRules {
        self.shared.settings.rules
    }

    /// A snapshot of the counters (hits, misses, upstream calls, refusals…).
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.cache.stats()
    }
}

impl<S> Layer<S> for AmazonAuthLayer {
    type Service = AmazonAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AmazonAuth::new(inner, Arc::clone(&self.shared))
    }
}
