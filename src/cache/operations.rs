//! What users call on an [`IdentityCache`]: [`invalidate`](IdentityCache::invalidate),
//! [`revoke`](IdentityCache::revoke), [`invalidate_all`](IdentityCache::invalidate_all), the
//! count of cached verdicts and the counters.

use super::revocation::Budget;
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
    /// With a [second level](crate::second_level), the token's verdict is also deleted there
    /// and every instance is told to forget it.
    ///
    /// # Errors
    ///
    /// [`CacheError::SecondLevel`] when the second level could not be reached: the token was
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
        self.inner.forget_in_second_level(key, Some(token), None).await
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
    /// not happen: answer it with a 5xx). With a second level, [`CacheError::SecondLevel`]
    /// when the tombstone could not be written there: the token is refused on this instance,
    /// and the level keeps trying to write the tombstone in the background (the Redis level:
    /// every second while its subscriber is connected, until the token expires), but until then
    /// other instances may still accept it: answer 503, so the client knows the logout is not
    /// complete.
    ///
    /// With a second level, the tombstone is also written there for the token's remaining life,
    /// the token's verdicts there are deleted, and every instance is told: each refuses the
    /// token from its next request on, or, if it missed the message, from its next miss, which
    /// reads the tombstone.
    ///
    /// ```
    /// # async fn demo(layer: tower_amazon_auth::AmazonAuthLayer) -> Result<(), tower_amazon_auth::CacheError> {
    /// use tower_amazon_auth::AccessToken;
    /// layer.cache().revoke(&AccessToken::new("Atza|…")).await?;
    /// # Ok(()) }
    /// ```
    pub async fn revoke(&self, token: &AccessToken) -> Result<(), CacheError> {
        self.revoke_within(token, Budget::User).await
    }

    /// [`revoke`](Self::revoke), counting against `budget` (a website session's token at logout
    /// counts against nobody's share).
    pub(crate) async fn revoke_within(&self, token: &AccessToken, budget: Budget) -> Result<(), CacheError> {
        let key = self.key(token.expose().as_bytes());
        let revoked_for = self.inner.revoke_key(key, budget)?;
        self.inner
            .forget_in_second_level(key, Some(token), Some(revoked_for))
            .await
    }

    /// Forgets every cached verdict (revocations stay), on this instance: with a second level,
    /// the level and the other instances keep theirs. A request that starts after this
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

    /// A snapshot of the counters (a second level counts its own: see its crate).
    pub fn stats(&self) -> StatsSnapshot {
        self.inner.stats.snapshot()
    }

    /// The [second level](crate::second_level), if it is an `L`: for the level's crate to reach
    /// its own state (its statistics, say) from a cache.
    ///
    /// ```
    /// # fn main() -> Result<(), tower_amazon_auth::BuildError> {
    /// let cache = tower_amazon_auth::IdentityCache::new("amzn1.application-oa2-client.0123456789abcdef")?;
    /// assert!(cache.second_level::<()>().is_none(), "no second level");
    /// # Ok(()) }
    /// ```
    pub fn second_level<L: 'static>(&self) -> Option<&L> {
        self.inner.second_level.as_deref()?.as_any().downcast_ref()
    }

    /// (feature `metrics`) Publishes every counter of [`stats`](Self::stats) through the
    /// `metrics` facade (absolute values; names in the `metrics` module docs:
    /// `tower_amazon_auth_hits_total`, …), and the second level's own (see
    /// [`SecondLevel::export_metrics`](crate::second_level::SecondLevel::export_metrics)). Call
    /// it where your exporter is scraped, or from a periodic task; the latency histograms of
    /// Amazon calls are recorded as they happen without it.
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
        if let Some(level) = &self.inner.second_level {
            level.export_metrics();
        }
    }
}
