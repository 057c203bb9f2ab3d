//! What Amazon says about a token ([`TokenInfo`], [`Profile`]) and what handlers receive
//! ([`AmazonUser`]).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};

use crate::token::TokenSource;

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

/// A verified identity, shared by every request that presents the same token.
#[derive(Clone)]
pub(crate) struct Identity {
    user_id: Box<str>,
    email: Option<Box<str>>,
    name: Option<Box<str>>,
    postal_code: Option<Box<str>>,
    /// The configured client id that matched `aud` (shared, not copied per entry).
    aud: Arc<str>,
    app_id: Option<Box<str>>,
    expires_at: SystemTime,
    /// When the token itself expires, on the monotonic clock.
    pub(crate) token_expires: Instant,
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
        let boxed = |s: Option<String>| s.map(String::into_boxed_str);
        Self {
            user_id: info.user_id.into_boxed_str(),
            email: boxed(email),
            name: boxed(name),
            postal_code: boxed(postal_code),
            aud,
            app_id: boxed(info.app_id),
            expires_at: received_wall + remaining,
            token_expires: received + remaining,
        }
    }

    /// An identity proven by the profile alone (audience check off): no `aud`, and an expiry
    /// of `lifetime` from `received`, as Amazon said nothing about it.
    pub(crate) fn from_profile(profile: Profile, lifetime: Duration, received: Instant) -> Self {
        let boxed = |s: Option<String>| s.map(String::into_boxed_str);
        Self {
            user_id: profile.user_id.into_boxed_str(),
            email: boxed(profile.email),
            name: boxed(profile.name),
            postal_code: boxed(profile.postal_code),
            aud: Arc::from(""),
            app_id: None,
            expires_at: SystemTime::now() + lifetime,
            token_expires: received + lifetime,
        }
    }

    pub(crate) fn user_id(&self) -> &str {
        &self.user_id
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
}

impl AmazonUser {
    pub(crate) fn new(identity: Arc<Identity>, source: TokenSource) -> Self {
        Self { identity, source }
    }

    /// The Amazon account id (`amzn1.account.…`): the stable key for this user.
    pub fn user_id(&self) -> &str {
        self.identity.user_id()
    }

    /// The user's e-mail address, when the granted scope includes `profile`.
    pub fn email(&self) -> Option<&str> {
        self.identity.email.as_deref()
    }

    /// The user's name, when the granted scope includes `profile`.
    pub fn name(&self) -> Option<&str> {
        self.identity.name.as_deref()
    }

    /// The user's postal code, when the granted scope includes `postal_code`.
    pub fn postal_code(&self) -> Option<&str> {
        self.identity.postal_code.as_deref()
    }

    /// The client id the token was issued to (one of the layer's configured client ids); empty
    /// when the layer runs without the audience check.
    pub fn aud(&self) -> &str {
        &self.identity.aud
    }

    /// The application id Amazon reported, if any.
    pub fn app_id(&self) -> Option<&str> {
        self.identity.app_id.as_deref()
    }

    /// When the access token expires (wall clock, from Amazon's `exp` at verification).
    pub fn expires_at(&self) -> SystemTime {
        self.identity.expires_at
    }

    /// Where this request carried its token.
    pub fn source(&self) -> TokenSource {
        self.source
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
