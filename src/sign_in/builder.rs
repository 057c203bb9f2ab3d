//! [`SignInBuilder`]: the settings of website sign-in (the client secret, the site's public
//! origin, the scopes, the routes' paths, the sessions' limits), their defaults, and their
//! validation, once, at [`build`](SignInBuilder::build).

use std::sync::{Arc, Weak};
use std::time::Duration;

use zeroize::Zeroizing;

use super::cookies::CookieRules;
use super::pending::PendingLogins;
use super::session::{Limits, Sessions};
use super::shared_store::SharedStore;
use super::{Paths, SignIn, SignInShared};
use crate::cache::IdentityCache;
use crate::client::ClientCredentials;
use crate::endpoint::is_loopback;
use crate::error::BuildError;
use crate::second_level::{LocalSessions, SessionEvents};

/// The scopes Login with Amazon knows.
const SCOPES: [&str; 3] = ["profile", "profile:user_id", "postal_code"];
/// Most logins under way at once (each is a few hundred bytes, for 10 minutes at most).
const MAX_PENDING: u64 = 100_000;

/// Configures [`SignIn`]. Every setter documents its default; [`build`](Self::build) checks the
/// whole configuration once and returns a typed [`BuildError`].
///
/// | setter | default |
/// | --- | --- |
/// | [`client_secret`](Self::client_secret) | none: required |
/// | [`public_origin`](Self::public_origin) | none: required |
/// | [`client_id`](Self::client_id) | the cache's client id (required when it accepts several) |
/// | [`scopes`](Self::scopes) | `profile` |
/// | [`authorize_url`](Self::authorize_url) | the cache's endpoints' ([`Endpoints::authorize_url`](crate::endpoint::Endpoints::authorize_url)) |
/// | [`login_path`](Self::login_path), [`callback_path`](Self::callback_path), [`logout_path`](Self::logout_path) | `/login`, `/login/callback`, `/logout` |
/// | [`max_sessions`](Self::max_sessions) | 100 000 |
/// | [`max_sessions_per_user`](Self::max_sessions_per_user) | 10 |
/// | [`idle_timeout`](Self::idle_timeout) | 24 h |
/// | [`max_session_life`](Self::max_session_life) | 7 days |
/// | [`secure_cookies`](Self::secure_cookies) | on exactly when the public origin is `https` |
#[must_use]
pub struct SignInBuilder {
    cache: IdentityCache,
    client_id: Option<String>,
    /// Wiped on drop.
    client_secret: Option<Zeroizing<String>>,
    public_origin: Option<String>,
    scopes: Vec<String>,
    authorize_url: Option<String>,
    paths: Paths,
    limits: Limits,
    secure_cookies: Option<bool>,
}

impl std::fmt::Debug for SignInBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret is a secret: only whether one is set.
        f.debug_struct("SignInBuilder")
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("public_origin", &self.public_origin)
            .field("scopes", &self.scopes)
            .field("authorize_url", &self.authorize_url)
            .field("paths", &self.paths)
            .field("limits", &self.limits)
            .field("secure_cookies", &self.secure_cookies)
            .finish_non_exhaustive()
    }
}

impl SignInBuilder {
    pub(super) fn new(cache: IdentityCache) -> Self {
        Self {
            cache,
            client_id: None,
            client_secret: None,
            public_origin: None,
            scopes: vec!["profile".to_owned()],
            authorize_url: None,
            paths: Paths::default(),
            limits: Limits {
                max_sessions: 100_000,
                max_per_user: 10,
                idle: Duration::from_secs(24 * 3600),
                absolute: Duration::from_secs(7 * 24 * 3600),
            },
            secure_cookies: None,
        }
    }

    /// The client secret from the Amazon developer console's security profile (required). It
    /// never appears in a log line, a `Debug` string or an error, and this crate's copies are
    /// wiped from memory when dropped (the builder's, and the [`ClientCredentials`] it becomes).
    pub fn client_secret(mut self, secret: impl Into<String>) -> Self {
        self.client_secret = Some(Zeroizing::new(secret.into()));
        self
    }

    /// The site's origin as browsers see it, `https://shop.example` (`http` only on loopback):
    /// the redirect URI is `{origin}{callback_path}` (register it in the console as an Allowed
    /// Return URL), and cookie-authenticated unsafe requests must come from it (CSRF). Required.
    pub fn public_origin(mut self, origin: impl Into<String>) -> Self {
        self.public_origin = Some(origin.into());
        self
    }

    /// The client id sign-in asks Amazon for tokens of. Default: the cache's client id; required
    /// when the cache accepts several.
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// The scopes asked for: `profile` (user id, name, e-mail), `profile:user_id` (the user id
    /// only), `postal_code`. Default: `profile`.
    pub fn scopes<I, T>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Where browsers sign in. Default: the cache's endpoints' authorize URL (Amazon's for a
    /// region, `{base}/ap/oa` under a base URL such as `MockAmazon`'s).
    pub fn authorize_url(mut self, url: impl Into<String>) -> Self {
        self.authorize_url = Some(url.into());
        self
    }

    /// The path that starts a sign-in. Default: `/login`.
    pub fn login_path(mut self, path: impl Into<String>) -> Self {
        self.paths.login = path.into();
        self
    }

    /// The path Amazon sends the browser back to. Default: `/login/callback`.
    pub fn callback_path(mut self, path: impl Into<String>) -> Self {
        self.paths.callback = path.into();
        self
    }

    /// The query parameter of the login path naming where to go once signed in: `return_to`
    /// by default, `rd` for oauth2-proxy's routes. Its value is a path on this site, or an
    /// absolute URL on the public origin. Default: `return_to`.
    pub fn return_param(mut self, name: impl Into<String>) -> Self {
        self.paths.return_param = name.into();
        self
    }

    /// The path that signs out (`POST`). Default: `/logout`.
    pub fn logout_path(mut self, path: impl Into<String>) -> Self {
        self.paths.logout = path.into();
        self
    }

    /// The most live sessions; beyond it the least recently used session ends (a new sign-in is
    /// never turned away). Each takes about a kilobyte. Default: 100 000.
    pub fn max_sessions(mut self, max: u64) -> Self {
        self.limits.max_sessions = max;
        self
    }

    /// The most live sessions of one user; a new sign-in beyond it ends that user's oldest
    /// session. Default: 10.
    pub fn max_sessions_per_user(mut self, max: usize) -> Self {
        self.limits.max_per_user = max;
        self
    }

    /// A session unused this long ends. At most 400 days. Default: 24 h.
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.limits.idle = idle;
        self
    }

    /// A session ends this long after sign-in, however active. At most 400 days (what browsers
    /// keep a cookie for). Default: 7 days.
    pub fn max_session_life(mut self, life: Duration) -> Self {
        self.limits.absolute = life;
        self
    }

    /// Marks the cookies `Secure` with the `__Host-` prefix (browsers then accept them only
    /// over https, or on loopback). Default: exactly when the public origin is `https`; turn it
    /// on to try the production cookies on `http://127.0.0.1`.
    pub fn secure_cookies(mut self, secure: bool) -> Self {
        self.secure_cookies = Some(secure);
        self
    }

    /// Checks the settings and builds the sign-in routes.
    ///
    /// # Errors
    ///
    /// [`BuildError::SignIn`] naming the setting that is missing or invalid.
    pub fn build(self) -> Result<SignIn, BuildError> {
        let invalid = BuildError::SignIn;
        let secret = self
            .client_secret
            .filter(|s| !s.trim().is_empty())
            .ok_or(invalid("client_secret"))?;
        let origin = self
            .public_origin
            .as_deref()
            .and_then(checked_origin)
            .ok_or(invalid("public_origin"))?;
        let client_id = match (self.client_id, self.cache.client_ids()) {
            (Some(id), _) if !id.trim().is_empty() => id,
            (None, [only]) => only.to_string(),
            _ => return Err(invalid("client_id")),
        };
        if self.scopes.is_empty() || self.scopes.iter().any(|s| !SCOPES.contains(&s.as_str())) {
            return Err(invalid("scopes"));
        }
        let paths = self.paths;
        for path in [&paths.login, &paths.callback, &paths.logout] {
            if !path.starts_with('/') || path.contains(['?', '#']) || path.chars().any(char::is_whitespace) {
                return Err(invalid("path"));
            }
        }
        if paths.login == paths.callback || paths.login == paths.logout || paths.callback == paths.logout {
            return Err(invalid("path"));
        }
        let limits = self.limits;
        let longest = Duration::from_secs(400 * 24 * 3600);
        let lives_ok = [limits.idle, limits.absolute]
            .iter()
            .all(|life| !life.is_zero() && *life <= longest);
        if limits.max_sessions == 0 || limits.max_per_user == 0 || !lives_ok {
            return Err(invalid("sessions"));
        }
        let endpoints = self.cache.amazon_client().endpoints();
        let authorize_url = match self.authorize_url {
            Some(url) => endpoints
                .clone()
                .with_authorize_url(&url)
                .map_err(|_| invalid("authorize_url"))?
                .authorize_url()
                .to_owned(),
            None => endpoints.authorize_url().to_owned(),
        };
        let secure = self.secure_cookies.unwrap_or(origin.starts_with("https://"));
        let randomness = |e: getrandom::Error| BuildError::Randomness(e.to_string());
        // With a second level that offers one, the fleet's store; copies live as long as the
        // cache keeps a verdict.
        let store = self.cache.session_store();
        let shared_store = store
            .clone()
            .map(|store| SharedStore::new(store, self.cache.max_ttl(), self.cache.deadline()));
        let shared = Arc::new(SignInShared {
            redirect_uri: format!("{origin}{}", paths.callback),
            credentials: ClientCredentials::new(client_id, secret.as_str()),
            scope: self.scopes.join(" "),
            authorize_url,
            public_origin: origin,
            paths,
            cookies: CookieRules::new(secure),
            pending: PendingLogins::new(MAX_PENDING, store.clone()).map_err(randomness)?,
            sessions: Sessions::with_store(limits, shared_store).map_err(randomness)?,
            absolute: limits.absolute,
            cache: self.cache,
        });
        if let Some(store) = store {
            let local = Arc::downgrade(&shared) as Weak<dyn LocalSessions>;
            store.watch(SessionEvents::new(local));
        }
        Ok(SignIn { shared })
    }
}

/// `scheme://host[:port]` of an absolute `https` URL (or `http` on loopback) with nothing after
/// the host but an optional `/`.
fn checked_origin(origin: &str) -> Option<String> {
    let url = reqwest::Url::parse(origin).ok()?;
    let host = url.host_str()?;
    let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && is_loopback(host));
    let bare =
        url.path() == "/" && url.query().is_none() && url.fragment().is_none() && url.username().is_empty();
    (scheme_ok && bare).then(|| url.origin().ascii_serialization())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builder_holds_the_secret_wiped_on_drop() {
        fn wiped<T: zeroize::ZeroizeOnDrop>(_: &T) {}
        let cache = crate::IdentityCache::new("amzn1.application-oa2-client.x").unwrap();
        let builder = crate::sign_in::SignIn::builder(cache).client_secret("s3cr3t");
        wiped(builder.client_secret.as_ref().unwrap());
        let built = builder.public_origin("https://shop.example").build().unwrap();
        wiped(&built.shared.credentials);
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let cache = crate::IdentityCache::new("amzn1.application-oa2-client.x").unwrap();
        let builder = crate::sign_in::SignIn::builder(cache).client_secret("SUPER-SECRET-VALUE");
        let shown = format!("{builder:?}");
        assert!(!shown.contains("SUPER-SECRET-VALUE"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn absurd_session_lives_are_refused_at_build() {
        let cache = crate::IdentityCache::new("amzn1.application-oa2-client.x").unwrap();
        let built = crate::sign_in::SignIn::builder(cache)
            .client_secret("s")
            .public_origin("https://shop.example")
            .max_session_life(Duration::MAX)
            .build();
        assert_eq!(built.err(), Some(BuildError::SignIn("sessions")));
    }

    #[test]
    fn an_origin_is_https_or_loopback_http_with_nothing_after_the_host() {
        assert_eq!(
            checked_origin("https://shop.example/").as_deref(),
            Some("https://shop.example")
        );
        assert_eq!(
            checked_origin("https://shop.example:8443").as_deref(),
            Some("https://shop.example:8443")
        );
        assert_eq!(
            checked_origin("http://127.0.0.1:3000").as_deref(),
            Some("http://127.0.0.1:3000")
        );
        for refused in [
            "http://shop.example",
            "https://shop.example/app",
            "https://shop.example?x",
            "ftp://x",
            "shop.example",
        ] {
            assert_eq!(checked_origin(refused), None, "{refused}");
        }
    }
}
