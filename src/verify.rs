//! [`Verifier`]: the verification policy. Asks Amazon's `tokeninfo` and `user/profile`
//! concurrently, checks that `aud` is one of our client ids, and combines the two answers into
//! one identity or one refusal, within a deadline and behind the [`Breaker`]. It knows nothing
//! of caching, so it can be tested on its own.
//!
//! # One verdict for the same answers
//!
//! The two calls run concurrently, and the verdict never depends on which answers first:
//!
//! | tokeninfo | profile | verdict |
//! | --- | --- | --- |
//! | invalid, expired, or `aud` not ours | anything | `401 invalid_token` (remembered as a rejection) |
//! | `insufficient_scope` (not documented for tokeninfo) | anything | `403 insufficient_scope` |
//! | valid, ours | the same user | the identity |
//! | valid, ours | another user | `401 invalid_token` (remembered: asking again would cost two calls for the same contradiction) |
//! | valid, ours | `invalid_token` | `401 invalid_token` |
//! | valid, ours | `insufficient_scope` | `403 insufficient_scope` |
//! | valid, ours | 5xx, timeout, unreadable | `503` (not remembered) |
//! | 5xx, timeout, unreadable | `invalid_token` | `401 invalid_token`: a definite answer beats a transient one |
//! | 5xx, timeout, unreadable | anything else | `503` |
//!
//! A definite answer from tokeninfo settles the verdict as soon as it arrives (the profile call
//! is dropped); any other needs both answers. Each call has the verification's deadline, and a
//! call that runs past it counts as a timeout in the table, so a quick `invalid_token` from the
//! profile still decides when tokeninfo hangs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::{select, Either};

use crate::access_token::AccessToken;
use crate::breaker::{Breaker, Outcome};
use crate::client::{AmazonClient, TokenInfoReply};
use crate::error::{AmazonError, AuthError, Rejection, Unavailable};
use crate::identity::{Identity, Profile, MAX_EXP};
use crate::stats::Stats;

/// How tokens are judged; set by the layer builder.
#[derive(Debug)]
pub(crate) struct Verifier {
    pub(crate) client: AmazonClient,
    /// Accepted `aud` values; empty only when the audience check is off.
    pub(crate) client_ids: Box<[Arc<str>]>,
    /// Whether `tokeninfo` is asked at all (off only for endpoint families without it).
    pub(crate) check_audience: bool,
    pub(crate) fetch_profile: bool,
    /// Deadline for one verification, both calls and their retries included.
    pub(crate) deadline: Duration,
    /// A token with no more than this left (the cache's clock skew) is refused as expired: it
    /// could not be cached, and the skew is the margin it must keep.
    pub(crate) min_life: Duration,
    pub(crate) breaker: Breaker,
}

/// What tokeninfo said: the answer and the client id that matched `aud` (`None`: not asked).
type TokenInfoVerdict = Result<Option<(TokenInfoReply, Arc<str>)>, AuthError>;
/// What the profile endpoint said (`None`: not asked).
type ProfileAnswer = Result<Option<Profile>, AuthError>;

impl Verifier {
    /// Verifies `token` with Amazon within the deadline, unless the breaker says to back off.
    /// Returns the identity and when the `exp` clock started.
    pub(crate) async fn verify(
        &self,
        token: &AccessToken,
        stats: &Stats,
    ) -> Result<(Identity, Instant), AuthError> {
        let admission = self.breaker.admit().map_err(|wait| {
            AuthError::Unavailable(Unavailable::BackingOff {
                retry_after: (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1),
            })
        })?;
        let (verdict, outcome) = self.ask_amazon(token, stats).await;
        admission.record(outcome);
        verdict
    }

    /// tokeninfo and profile, concurrently, each within the deadline, combined as the module
    /// docs' table says; and what the answers tell the breaker.
    async fn ask_amazon(
        &self,
        token: &AccessToken,
        stats: &Stats,
    ) -> (Result<(Identity, Instant), AuthError>, Outcome) {
        // One deadline for both calls: a call that runs past it is a timeout of its own, so
        // the other's definite answer still decides (the table's "timeout + invalid_token").
        let until = tokio::time::Instant::now() + self.deadline;
        let tokeninfo = std::pin::pin!(within(until, self.tokeninfo(token, stats)));
        let profile = std::pin::pin!(within(until, self.profile(token, stats)));
        let (tokeninfo, profile) = match select(tokeninfo, profile).await {
            Either::Left((tokeninfo, profile)) => match tokeninfo {
                // Settled whatever the profile says.
                Err(error) if error.is_definite() => return (Err(error), Outcome::Answered),
                tokeninfo => (tokeninfo, profile.await),
            },
            Either::Right((profile, tokeninfo)) => (tokeninfo.await, profile),
        };
        let outcome = outcome(tokeninfo.as_ref().err(), profile.as_ref().err());
        (combine(tokeninfo, profile), outcome)
    }

    async fn tokeninfo(&self, token: &AccessToken, stats: &Stats) -> TokenInfoVerdict {
        if !self.check_audience {
            return Ok(None);
        }
        stats.upstream_calls.incr();
        let reply = self.client.tokeninfo_received(token).await.map_err(upstream)?;
        let aud = self
            .client_ids
            .iter()
            .find(|id| ***id == *reply.info.aud)
            .cloned()
            .ok_or(AuthError::InvalidToken(Rejection::WrongAudience))?;
        let remaining = Duration::from_secs(reply.info.exp.max(0).unsigned_abs());
        if remaining.is_zero() || remaining <= self.min_life {
            return Err(AuthError::InvalidToken(Rejection::Expired));
        }
        Ok(Some((reply, aud)))
    }

    async fn profile(&self, token: &AccessToken, stats: &Stats) -> ProfileAnswer {
        if !self.fetch_profile {
            return Ok(None);
        }
        stats.upstream_calls.incr();
        self.client.profile(token).await.map(Some).map_err(upstream)
    }
}

/// `fut`, or a timeout once `until` has passed.
async fn within<T>(
    until: tokio::time::Instant,
    fut: impl std::future::Future<Output = Result<T, AuthError>>,
) -> Result<T, AuthError> {
    tokio::time::timeout_at(until, fut)
        .await
        .unwrap_or(Err(AuthError::Unavailable(Unavailable::Timeout)))
}

/// What two answers tell the breaker: any `429` is Amazon throttling us (even when the other
/// answer decided the verdict), any other transient failure a failure, and only two usable
/// answers mean Amazon is up.
fn outcome(tokeninfo: Option<&AuthError>, profile: Option<&AuthError>) -> Outcome {
    let failures = [tokeninfo, profile].into_iter().flatten();
    let mut outcome = Outcome::Answered;
    for error in failures {
        match error {
            AuthError::Unavailable(Unavailable::Status {
                status: 429,
                retry_after,
            }) => return Outcome::Throttled(*retry_after),
            AuthError::Unavailable(_) => outcome = Outcome::Failed,
            _ => {}
        }
    }
    outcome
}

/// The one verdict for two answers (see the module docs).
fn combine(tokeninfo: TokenInfoVerdict, profile: ProfileAnswer) -> Result<(Identity, Instant), AuthError> {
    let received = Instant::now();
    match (tokeninfo, profile) {
        (Err(error), _) if error.is_definite() => Err(error),
        // A definite answer beats a transient one; the profile's scope verdict does not, as
        // only tokeninfo can say the token is ours.
        (Err(_), Err(error @ AuthError::InvalidToken(_))) => Err(error),
        (Err(error), _) => Err(error),
        (Ok(_), Err(error)) => Err(error),
        (Ok(Some((reply, aud))), Ok(profile)) => {
            if profile.as_ref().is_some_and(|p| p.user_id != reply.info.user_id) {
                tracing::warn!("tokeninfo and profile name different users: token refused");
                return Err(AuthError::InvalidToken(Rejection::Inconsistent));
            }
            let received = reply.received;
            let wall = reply.received_wall;
            Ok((
                Identity::new(reply.info, aud, profile, received, wall, MAX_EXP),
                received,
            ))
        }
        // No tokeninfo (audience check off): the profile is the only proof.
        (Ok(None), Ok(Some(profile))) => Ok((Identity::from_profile(profile), received)),
        (Ok(None), Ok(None)) => Err(AuthError::Unavailable(Unavailable::Unreadable)),
    }
}

/// Maps a client error to the outward error.
pub(crate) fn upstream(error: AmazonError) -> AuthError {
    match error {
        AmazonError::InvalidToken { .. } => AuthError::InvalidToken(Rejection::Invalid),
        AmazonError::InsufficientScope { .. } => AuthError::InsufficientScope,
        AmazonError::Status {
            status, retry_after, ..
        } => AuthError::Unavailable(Unavailable::Status { status, retry_after }),
        // An error code the verification endpoints do not document: no verdict, fail closed.
        AmazonError::OAuth { status, .. } => AuthError::Unavailable(Unavailable::Status {
            status,
            retry_after: None,
        }),
        AmazonError::Timeout => AuthError::Unavailable(Unavailable::Timeout),
        AmazonError::Connect => AuthError::Unavailable(Unavailable::Connect),
        AmazonError::Unreadable { .. } | AmazonError::NoTokenInfo => {
            AuthError::Unavailable(Unavailable::Unreadable)
        }
    }
}
