//! What users call on an [`IdentityCache`]: [`invalidate`](IdentityCache::invalidate),
//! [`revoke`](IdentityCache::revoke), [`invalidate_all`](IdentityCache::invalidate_all), the
//! count of cached verdicts and the counters.

#[cfg(feature = "redis")]
use std::sync::atomic::Ordering::Relaxed;

use super::IdentityCache;
use crate::access_token::AccessToken;
use crate::error::CacheError;
use crate::stats::StatsSnapshot;

impl IdentityCache {
    /// Forgets what is cached about `token`: the next request verifies it with Amazon again
    /// (for a token Amazon may have changed its mind about). A request that starts after this
    /// returns never gets a verdict computed before it; a request already under way may still
    /// get the one it was about to. It does not undo a [`revoke`](Self::revoke).
    ///
    /// This does **not** log the user out: Login with Amazon has no server-side logout, and
    /// Amazon keeps calling the token valid until it expires. Use [`revoke`](Self::revoke) for
    /// that.
    ///
    /// With the fleet level, the token's verdict is also deleted from Redis and every instance
    /// is told to forget it.
    ///
    /// # Errors
    ///
    /// [`CacheError::Fleet`] when the fleet level could not reach Redis: the token was
    /// forgotten on this instance only.
    ///
    /// ```
    /// # async fn demo(layer: tower_amazon_auth::AmazonAuthLayer) -> Result<(), tower_amazon_auth::CacheError> {
    /// use tower_amazon_auth::AccessToken;
    /// layer.cache().invalidate(&AccessToken::new("Atza|…")).await?;
    /// # Ok(()) }
    /// ```
    pub async fn invalidate(&self, token: &AccessToken) -> Result<(), CacheError> {
        let key = self.key(token.expose().as_bytes());
        self.inner.forget(key);
        #[cfg(feature = "redis")]
        if let Some(fleet) = &self.inner.fleet {
            fleet
                .forget(key, Some(token.expose()), None)
                .await
                .map_err(|()| CacheError::Fleet)?;
        }
        Ok(())
    }

    /// Refuses `token` on this cache until it expires (logout): from now on every request
    /// carrying it gets `401 invalid_token` without any upstream call, although Amazon still
    /// calls it valid. The revocation outlives every cached copy and every verification in
    /// flight: a request that was waiting for Amazon's answer is refused too. It lasts for the
    /// token's remaining life by its cached `exp` (an hour when unknown). Revocations are never
    /// evicted: at most [`max_revocations`](crate::IdentityCacheBuilder::max_revocations) are in
    /// force at once, and one more is refused with an error rather than lost.
    ///
    /// A handler, which never sees the token, revokes its caller's with
    /// [`AmazonUser::revoke`](crate::AmazonUser::revoke).
    ///
    /// # Errors
    ///
    /// [`CacheError::TooManyRevocations`] when `max_revocations` are in force (the logout did
    /// not happen: answer it with a 5xx). With the fleet level, [`CacheError::Fleet`] when the
    /// tombstone could not be written to Redis: the token is refused on this instance, and
    /// the instance keeps trying to write the tombstone in the background (every second while
    /// its subscriber is connected, until the token expires), but until then other instances
    /// may still accept it: answer 503, so the client knows the logout is not complete.
    ///
    /// With the fleet level, the tombstone is also written to Redis for the token's remaining
    /// life (under the previous secret too, during a rotation), the token's verdicts there are
    /// deleted, and every instance is told: each refuses the token from its next request on, or,
    /// if it missed the message, from its next miss, which reads the tombstone.
    ///
    /// ```
    /// # async fn demo(layer: tower_amazon_auth::AmazonAuthLayer) -> Result<(), tower_amazon_auth::CacheError> {
    /// use tower_amazon_auth::AccessToken;
    /// layer.cache().revoke(&AccessToken::new("Atza|…")).await?;
    /// # Ok(()) }
    /// ```
    pub async fn revoke(&self, token: &AccessToken) -> Result<(), CacheError> {
        let key = self.key(token.expose().as_bytes());
        let _until = self.inner.revoke_key(key)?;
        #[cfg(feature = "redis")]
        self.inner.revoke_fleet(key, Some(token.expose()), _until).await?;
        Ok(())
    }

    /// Forgets every cached verdict (revocations stay), on this instance: with the fleet
    /// level, Redis and the other instances keep theirs. A request that starts after this
    /// returns is verified again.
    ///
    /// ```
    /// # fn demo(cache: &tower_amazon_auth::IdentityCache) {
    /// cache.invalidate_all();
    /// assert_eq!(cache.entry_count(), 0);
    /// # }
    /// ```
    pub fn invalidate_all(&self) {
        self.inner.flush();
    }

    /// The number of cached verdicts (identities and remembered rejections, not revocations).
    /// Applies the cache's pending maintenance first (`moka` applies writes and evictions
    /// lazily), so the count is current; that costs a pass over the pending writes, so do not
    /// call it per request.
    pub fn entry_count(&self) -> u64 {
        let inner = &*self.inner;
        inner.store.run_pending_tasks();
        inner.rejected.run_pending_tasks();
        inner.store.entry_count() + inner.rejected.entry_count()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> StatsSnapshot {
        #[allow(unused_mut)]
        let mut snapshot = self.inner.stats.snapshot();
        #[cfg(feature = "redis")]
        if let Some(fleet) = &self.inner.fleet {
            fleet.counters.fill(&mut snapshot);
            snapshot.fleet_subscribed = fleet.subscribed.load(Relaxed);
            snapshot.fleet_breaker_open = fleet.breaker_open();
        }
        snapshot
    }

    /// (feature `metrics`) Publishes every counter of [`stats`](Self::stats) through the
    /// `metrics` facade (absolute values; names in the `metrics` module docs:
    /// `tower_amazon_auth_hits_total`, …). Call it where your exporter is scraped, or from a
    /// periodic task; the latency histograms of Amazon and Redis calls are recorded as they
    /// happen without it.
    ///
    /// ```no_run
    /// # async fn demo(layer: tower_amazon_auth::AmazonAuthLayer) {
    /// let cache = layer.cache().clone();
    /// tokio::spawn(async move {
    ///     let mut every = tokio::time::interval(std::time::Duration::from_secs(10));
    ///     loop {
    ///         every.tick().await;
    ///         cache.export_metrics();
    ///     }
    /// });
    /// # }
    /// ```
    #[cfg(feature = "metrics")]
    pub fn export_metrics(&self) {
        crate::metrics::export(&self.stats());
    }
}
