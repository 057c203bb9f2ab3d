//! [`Verifier`]: the verification policy. Asks Amazon's `tokeninfo` and `user/profile`
//! concurrently, checks that `aud` is one of our client ids, and combines the two answers into
//! one identity or one refusal, within a deadline. It knows nothing of caching, so it can be
//! tested on its own.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::client::AmazonClient;
use crate::error::{AmazonError, AuthError, Rejection, Unavailable};
use crate::identity::Identity;
use crate::stats::Stats;
use crate::token::AccessToken;

/// The longest `exp` believed, whatever Amazon says (tokens live one hour).
const MAX_EXP: Duration = Duration::from_secs(24 * 3600);

/// How tokens are judged; set by the layer builder.
#[derive(Debug)]
pub(crate) struct Verifier {
    pub(crate) client: AmazonClient,
    /// Accepted `aud` values; empty only when the audience check is off.
    pub(crate) client_ids: Box<[Arc<str>]>,
    /// Whether `tokeninfo` is asked at all (off only for endpoint families without it).
    pub(crate) check_audience: bool,
    pub(crate) fetch_profile: bool,
    /// How long an identity proven by the profile alone is believed: Amazon gave no `exp`.
    pub(crate) profile_only_lifetime: Duration,
    /// Deadline for one verification, both calls and their retries included.
    pub(crate) deadline: Duration,
}

impl Verifier {
    /// Verifies `token` with Amazon within the deadline. Returns the identity and when the
    /// `exp` clock started.
    pub(crate) async fn verify(
        &self,
        token: &AccessToken,
        stats: &Stats,
    ) -> Result<(Identity, Instant), AuthError> {
        tokio::time::timeout(self.deadline, self.ask_amazon(token, stats))
            .await
            .unwrap_or(Err(AuthError::Unavailable(Unavailable::Timeout)))
    }

    /// tokeninfo and profile, concurrently; the audience is checked before the profile is
    /// trusted.
    async fn ask_amazon(&self, token: &AccessToken, stats: &Stats) -> Result<(Identity, Instant), AuthError> {
        let client = &self.client;
        let tokeninfo = async {
            if !self.check_audience {
                return Ok(None);
            }
            stats.upstream_calls.fetch_add(1, Relaxed);
            let verified = client.tokeninfo_received(token).await.map_err(upstream)?;
            let aud = self
                .client_ids
                .iter()
                .find(|id| ***id == *verified.info.aud)
                .cloned()
                .ok_or(AuthError::InvalidToken(Rejection::WrongAudience))?;
            if verified.info.exp <= 0 {
                return Err(AuthError::InvalidToken(Rejection::Expired));
            }
            Ok(Some((verified, aud)))
        };
        let profile = async {
            if !self.fetch_profile {
                return Ok(None);
            }
            stats.upstream_calls.fetch_add(1, Relaxed);
            client.profile(token).await.map(Some).map_err(upstream)
        };
        let (verified, profile) = futures_util::future::try_join(tokeninfo, profile).await?;
        let received = Instant::now();
        match (verified, profile) {
            (Some((verified, aud)), profile) => {
                if profile
                    .as_ref()
                    .is_some_and(|p| p.user_id != verified.info.user_id)
                {
                    tracing::warn!("tokeninfo and profile disagree on the user");
                    return Err(AuthError::Unavailable(Unavailable::Unreadable));
                }
                let received = verified.received;
                let wall = verified.received_wall;
                Ok((
                    Identity::new(verified.info, aud, profile, received, wall, MAX_EXP),
                    received,
                ))
            }
            // No tokeninfo (audience check off): the profile is the only proof.
            (None, Some(profile)) => {
                let identity = Identity::from_profile(profile, self.profile_only_lifetime, received);
                Ok((identity, received))
            }
            (None, None) => Err(AuthError::Unavailable(Unavailable::Unreadable)),
        }
    }
}

/// Maps a client error to the outward error.
fn upstream(error: AmazonError) -> AuthError {
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
