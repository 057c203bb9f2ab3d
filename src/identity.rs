//! What Amazon says about a token ([`TokenInfo`], [`Profile`]) and what handlers receive
//! ([`AmazonUser`]).

use std::fmt;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

use futures_util::future::BoxFuture;

use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};

use crate::error::CacheError;
use crate::token::TokenSource;
use crate::token_key::TokenKey;

/// Amazon's `tokeninfo` answer: who the token belongs to and which application it was issued to.
///
/// `exp` is the number of **seconds remaining** at the moment Amazon answered, not an epoch time.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct TokenInfo {
    /// The issuer, `https://www.amazon.com`.
    #[serde(default)]
    pub iss: Option<String>,
    /// The Amazon account id, `amzn1.account.…`.
    pub user_id: String,
    /// The client id the token was issued to. Must be one of ours.
    pub aud: String,
    /// The application id, `amzn1.application.…`.
    #[serde(default)]
    pub app_id: Option<String>,
    /// Seconds the token remains valid, counted from when Amazon answered.
    pub exp: i64,
    /// When the token was issued, in seconds since the Unix epoch.
    #[serde(default)]
    pub iat: Option<i64>,
}

/// Amazon's `user/profile` answer. Which fields appear depends on the scope the user granted:
/// `profile:user_id` gives `user_id` alone, `profile` adds `email` and `name`, `postal_code`
/// adds `postal_code`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Profile {
    /// The Amazon account id, `amzn1.account.…`.
    pub user_id: String,
    /// The user's e-mail address, with scope `profile`.
    #[serde(default)]
    pub email: Option<String>,
    /// The user's name, with scope `profile`.
    #[serde(default)]
    pub name: Option<String>,
    /// The user's postal code, with scope `postal_code`.
    #[serde(default)]
    pub postal_code: Option<String>,
}

/// The longest `exp` believed, whatever Amazon says (tokens live one hour).
pub(crate) const MAX_EXP: Duration = Duration::from_secs(24 * 3600);

/// A verified identity, shared by every request that presents the same token.
#[derive(Clone)]
pub(crate) struct Identity {
    /// User id, e-mail, name, postal code and app id.
    fields: Fields,
    /// The configured client id that matched `aud` (shared, not copied per entry).
    aud: Arc<str>,
    /// When the token expires, by Amazon's `exp`: on the monotonic clock, and on the wall
    /// clock in whole seconds since the Unix epoch. `None` when Amazon said nothing about it
    /// (profile-only mode).
    expires: Option<(Instant, u64)>,
    /// The cache this identity was verified into: what [`AmazonUser::revoke`] needs, with the
    /// token's key the request brings. `None` for a user made in a test.
    pub(crate) origin: Option<Weak<dyn Origin>>,
}

/// The positions of the text fields in [`Fields`].
const USER_ID: usize = 0;
const EMAIL: usize = 1;
const NAME: usize = 2;
const POSTAL_CODE: usize = 3;
const APP_ID: usize = 4;

/// An identity's text fields, in one allocation rather than one each (a cache holds many).
#[derive(Clone)]
struct Fields {
    /// The fields one after another.
    text: Box<str>,
    /// Where each field ends in `text`; each starts where the one before ends.
    ends: [u32; 5],
    /// Bit `i` set when field `i` is present (an empty field is not a missing one).
    present: u8,
}

impl Fields {
    fn new(values: [Option<String>; 5]) -> Self {
        let mut text = String::with_capacity(values.iter().flatten().map(String::len).sum());
        let mut ends = [0; 5];
        let mut present = 0;
        for (i, value) in values.iter().enumerate() {
            if let Some(value) = value {
                text.push_str(value);
                present |= 1 << i;
            }
            // Amazon's answers are read under a size limit far below 4 GiB.
            ends[i] = u32::try_from(text.len()).unwrap_or(u32::MAX);
        }
        Self {
            text: text.into_boxed_str(),
            ends,
            present,
        }
    }

    fn get(&self, field: usize) -> Option<&str> {
        if self.present & (1 << field) == 0 {
            return None;
        }
        let start = if field == 0 { 0 } else { self.ends[field - 1] };
        self.text.get(start as usize..self.ends[field] as usize)
    }
}

/// `at` in whole seconds since the Unix epoch, rounded down (an expiry never moves later);
/// 0 before it.
fn unix_seconds(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// A cache an identity can come from: lets its user revoke the token without holding it.
pub(crate) trait Origin: Send + Sync {
    /// Revokes the token whose key is `key`.
    fn revoke(&self, key: TokenKey) -> BoxFuture<'_, Result<(), CacheError>>;
}

impl Identity {
    /// Builds the identity from Amazon's answers, received at `received` (monotonic) and
    /// `received_wall` (wall clock). `exp` is capped at `max_exp` so absurd values cannot overflow.
    pub(crate) fn new(
        info: TokenInfo,
        aud: Arc<str>,
        profile: Option<Profile>,
        received: Instant,
        received_wall: SystemTime,
        max_exp: Duration,
    ) -> Self {
        let remaining = Duration::from_secs(info.exp.max(0).unsigned_abs()).min(max_exp);
        let (email, name, postal_code) = match profile {
            Some(p) => (p.email, p.name, p.postal_code),
            None => (None, None, None),
        };
        Self {
            fields: Fields::new([Some(info.user_id), email, name, postal_code, info.app_id]),
            aud,
            expires: Some((received + remaining, unix_seconds(received_wall + remaining))),
            origin: None,
        }
    }

    /// An identity proven by the profile alone (audience check off): no `aud`, and no known
    /// expiry, as Amazon said nothing about it.
    pub(crate) fn from_profile(profile: Profile) -> Self {
        Self {
            fields: Fields::new([
                Some(profile.user_id),
                profile.email,
                profile.name,
                profile.postal_code,
                None,
            ]),
            aud: Arc::from(""),
            expires: None,
            origin: None,
        }
    }

    /// When the token expires on the monotonic clock, if Amazon said.
    pub(crate) fn token_expires(&self) -> Option<Instant> {
        self.expires.map(|(at, _)| at)
    }

    /// When the token expires on the wall clock, to the second, if Amazon said.
    fn token_expires_wall(&self) -> Option<SystemTime> {
        self.expires
            .map(|(_, seconds)| SystemTime::UNIX_EPOCH + Duration::from_secs(seconds))
    }

    pub(crate) fn user_id(&self) -> &str {
        self.fields.get(USER_ID).unwrap_or_default()
    }

    pub(crate) fn email(&self) -> Option<&str> {
        self.fields.get(EMAIL)
    }

    pub(crate) fn name(&self) -> Option<&str> {
        self.fields.get(NAME)
    }

    pub(crate) fn postal_code(&self) -> Option<&str> {
        self.fields.get(POSTAL_CODE)
    }

    pub(crate) fn app_id(&self) -> Option<&str> {
        self.fields.get(APP_ID)
    }
}

/// An [`Identity`] as a second level keeps it (in the cache's payload; the Redis level seals it
/// in an AEAD box, never in clear): its fields, and its expiry on the wall clock (the monotonic
/// one means nothing to another process).
#[derive(Serialize, Deserialize)]
pub(crate) struct IdentityRecord {
    user_id: Box<str>,
    email: Option<Box<str>>,
    name: Option<Box<str>>,
    postal_code: Option<Box<str>>,
    pub(crate) aud: Box<str>,
    app_id: Option<Box<str>>,
    /// Milliseconds since the Unix epoch; `None` in profile-only mode.
    expires_ms: Option<u64>,
}

impl Identity {
    /// This identity as a second level stores it (in the cache's payload).
    pub(crate) fn record(&self) -> IdentityRecord {
        IdentityRecord {
            user_id: Box::from(self.user_id()),
            email: self.email().map(Box::from),
            name: self.name().map(Box::from),
            postal_code: self.postal_code().map(Box::from),
            aud: Box::from(&*self.aud),
            app_id: self.app_id().map(Box::from),
            expires_ms: self.expires.map(|(_, seconds)| seconds.saturating_mul(1000)),
        }
    }

    /// The identity a record stands for, its audience being `aud` (the caller matched the
    /// record's against its own client ids); `None` when the token has expired by now.
    pub(crate) fn from_record(record: IdentityRecord, aud: Arc<str>) -> Option<Self> {
        let expires = match record.expires_ms {
            None => None,
            Some(ms) => {
                let wall = SystemTime::UNIX_EPOCH.checked_add(Duration::from_millis(ms))?;
                let remaining = wall.duration_since(SystemTime::now()).ok()?;
                Some((Instant::now().checked_add(remaining)?, unix_seconds(wall)))
            }
        };
        let text = |value: Option<Box<str>>| value.map(String::from);
        Some(Self {
            fields: Fields::new([
                Some(String::from(record.user_id)),
                text(record.email),
                text(record.name),
                text(record.postal_code),
                text(record.app_id),
            ]),
            aud,
            expires,
            origin: None,
        })
    }
}

/// The authenticated Amazon user, inserted as a request extension by the layer.
///
/// Cheap to clone (one reference count). It never holds the token.
///
/// ```
/// # #[cfg(feature = "axum")] {
/// use tower_amazon_auth::AmazonUser;
///
/// async fn me(user: AmazonUser) -> String {
///     format!("hello {}", user.name().unwrap_or(user.user_id()))
/// }
/// # }
/// ```
#[derive(Clone)]
pub struct AmazonUser {
    identity: Arc<Identity>,
    source: TokenSource,
    /// The token's key in the cache the identity came from (see [`Identity::origin`]), for
    /// [`revoke`](Self::revoke); for a session's user, the session's key. `None` for a user
    /// made in a test.
    key: Option<TokenKey>,
    /// The sessions the user's session is one of (website sign-in): what
    /// [`revoke`](Self::revoke) ends.
    session: Option<Arc<dyn SessionEnd>>,
}

/// What ends the session a user came from (website sign-in implements it).
pub(crate) trait SessionEnd: Send + Sync {
    /// Ends the session of `key` everywhere.
    fn end(&self, key: TokenKey) -> BoxFuture<'_, Result<(), CacheError>>;
}

impl AmazonUser {
    /// The user of a request whose token, of key `key`, was verified as `identity`.
    pub(crate) fn new(identity: Arc<Identity>, source: TokenSource, key: Option<TokenKey>) -> Self {
        Self {
            identity,
            source,
            key,
            session: None,
        }
    }

    /// The user of a request the session of key `session_key` authenticated, among
    /// `sessions`.
    pub(crate) fn of_session(
        identity: Arc<Identity>,
        session_key: TokenKey,
        sessions: Arc<dyn SessionEnd>,
    ) -> Self {
        Self {
            identity,
            source: TokenSource::Session,
            key: Some(session_key),
            session: Some(sessions),
        }
    }

    /// An identity built from `tokeninfo` and `profile` answers your own code obtained (or made
    /// up), as if they had just arrived: `aud` is `info.aud`, the expiry `info.exp` seconds from
    /// now (capped at a day, as the layer caps it), and the profile's fields are those it has.
    ///
    /// No layer or cache verified it, so its [`revoke`](Self::revoke) answers
    /// [`CacheError::NoCache`]. It is for unit tests of handlers, without a layer or a server;
    /// the `MockUser::amazon_user` of the tower-amazon-auth-mock crate builds one.
    ///
    /// ```
    /// use tower_amazon_auth::client::{Profile, TokenInfo};
    /// use tower_amazon_auth::{AmazonUser, CacheError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), serde_json::Error> {
    /// let info: TokenInfo = serde_json::from_str(
    ///     r#"{"user_id":"amzn1.account.TEST","aud":"amzn1.application-oa2-client.test","exp":3600}"#,
    /// )?;
    /// let profile: Profile =
    ///     serde_json::from_str(r#"{"user_id":"amzn1.account.TEST","email":"test@example.com"}"#)?;
    /// let user = AmazonUser::from_answers(info, Some(profile));
    /// assert_eq!(user.user_id(), "amzn1.account.TEST");
    /// assert_eq!(user.aud(), "amzn1.application-oa2-client.test");
    /// assert_eq!(user.email(), Some("test@example.com"));
    /// assert!(user.expires_at().is_some());
    /// assert!(matches!(user.revoke().await, Err(CacheError::NoCache)));
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn from_answers(info: TokenInfo, profile: Option<Profile>) -> AmazonUser {
        let aud = Arc::from(info.aud.as_str());
        let identity = Identity::new(info, aud, profile, Instant::now(), SystemTime::now(), MAX_EXP);
        AmazonUser::new(Arc::new(identity), TokenSource::Bearer, None)
    }

    /// The Amazon account id (`amzn1.account.…`): the stable key for this user.
    pub fn user_id(&self) -> &str {
        self.identity.user_id()
    }

    /// The user's e-mail address, when the granted scope includes `profile`.
    pub fn email(&self) -> Option<&str> {
        self.identity.email()
    }

    /// The user's name, when the granted scope includes `profile`.
    pub fn name(&self) -> Option<&str> {
        self.identity.name()
    }

    /// The user's postal code, when the granted scope includes `postal_code`.
    pub fn postal_code(&self) -> Option<&str> {
        self.identity.postal_code()
    }

    /// The client id the token was issued to (one of the layer's configured client ids); empty
    /// when the layer runs without the audience check.
    pub fn aud(&self) -> &str {
        &self.identity.aud
    }

    /// The application id Amazon reported, if any.
    pub fn app_id(&self) -> Option<&str> {
        self.identity.app_id()
    }

    /// When the access token expires (wall clock, from Amazon's `exp` at verification), to the
    /// second (rounded down).
    ///
    /// `None` when Amazon did not say: in profile-only mode
    /// ([`skip_audience_check`](crate::IdentityCacheBuilder::skip_audience_check)), where no
    /// `tokeninfo` is asked. Such an identity is cached for
    /// [`max_ttl`](crate::IdentityCacheBuilder::max_ttl) less
    /// [`clock_skew`](crate::IdentityCacheBuilder::clock_skew).
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.identity.token_expires_wall()
    }

    /// Revokes the token this request carried (logout), in the cache of the layer that
    /// verified it: from now on the token is refused with `401 invalid_token` until it expires,
    /// although Amazon still calls it valid. See
    /// [`IdentityCache::revoke`](crate::IdentityCache::revoke).
    ///
    /// Handlers never see the token (the layer strips it); this is how they log its bearer out.
    /// For a user signed in through a website session ([`TokenSource::Session`]), this ends
    /// the session instead (its record is deleted; its cookie then names nothing).
    ///
    /// # Errors
    ///
    /// [`CacheError::NoCache`] for a user no layer verified (made in a test) or whose layer
    /// and cache are gone.
    ///
    /// ```
    /// # #[cfg(feature = "axum")] {
    /// use axum::http::StatusCode;
    /// use tower_amazon_auth::AmazonUser;
    ///
    /// async fn logout(user: AmazonUser) -> StatusCode {
    ///     match user.revoke().await {
    ///         Ok(()) => StatusCode::NO_CONTENT,
    ///         Err(_) => StatusCode::SERVICE_UNAVAILABLE,
    ///     }
    /// }
    /// # }
    /// ```
    pub async fn revoke(&self) -> Result<(), CacheError> {
        if let (Some(session), Some(key)) = (&self.session, self.key) {
            return session.end(key).await;
        }
        let (Some(key), Some(origin)) = (self.key, &self.identity.origin) else {
            return Err(CacheError::NoCache);
        };
        let origin = origin.upgrade().ok_or(CacheError::NoCache)?;
        origin.revoke(key).await
    }

    /// Where this request carried its token.
    pub fn source(&self) -> TokenSource {
        self.source
    }

    /// The key of the session this user came from (website sign-in), else `None`.
    pub(crate) fn session_key(&self) -> Option<TokenKey> {
        self.session.as_ref().and(self.key)
    }
}

/// Serializes the profile in Amazon's own shape, `{"user_id","email","name","postal_code"}`,
/// leaving out the fields the granted scope did not include: ready to answer a `/me` route.
///
/// ```
/// # #[cfg(feature = "axum")] {
/// use axum::Json;
/// use tower_amazon_auth::AmazonUser;
///
/// async fn me(user: AmazonUser) -> Json<AmazonUser> {
///     Json(user)
/// }
/// # }
/// ```
impl Serialize for AmazonUser {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let fields = [
            ("email", self.email()),
            ("name", self.name()),
            ("postal_code", self.postal_code()),
        ];
        let present = fields.iter().filter(|(_, v)| v.is_some()).count();
        let mut out = serializer.serialize_struct("AmazonUser", 1 + present)?;
        out.serialize_field("user_id", self.user_id())?;
        for (name, value) in fields {
            match value {
                Some(value) => out.serialize_field(name, value)?,
                None => out.skip_field(name)?,
            }
        }
        out.end()
    }
}

impl fmt::Debug for AmazonUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Personal data beyond the account id stays out of Debug output (and so out of logs).
        f.debug_struct("AmazonUser")
            .field("user_id", &self.user_id())
            .field("aud", &self.aud())
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::{Fields, APP_ID, EMAIL, NAME, POSTAL_CODE, USER_ID};

    #[test]
    fn fields_keep_each_value_and_tell_empty_from_missing() {
        let fields = Fields::new([
            Some("amzn1.account.X".to_owned()),
            Some(String::new()),
            None,
            Some("98109".to_owned()),
            Some("amzn1.application.Y".to_owned()),
        ]);
        assert_eq!(fields.get(USER_ID), Some("amzn1.account.X"));
        assert_eq!(fields.get(EMAIL), Some(""));
        assert_eq!(fields.get(NAME), None);
        assert_eq!(fields.get(POSTAL_CODE), Some("98109"));
        assert_eq!(fields.get(APP_ID), Some("amzn1.application.Y"));
        let none = Fields::new([Some("u".to_owned()), None, None, None, None]);
        assert_eq!((none.get(USER_ID), none.get(APP_ID)), (Some("u"), None));
    }
}
