//! Where Amazon's endpoints live: [`Region`]s, the Appstore, or any base URL.

use crate::error::{BuildError, UnknownRegion};

/// A Login with Amazon region. More may be added (hence `#[non_exhaustive]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Region {
    /// `https://api.amazon.com`.
    NorthAmerica,
    /// `https://api.amazon.co.uk`.
    Europe,
    /// `https://api.amazon.co.jp`.
    FarEast,
}

impl Region {
    /// The region's base URL.
    pub fn base_url(self) -> &'static str {
        match self {
            Self::NorthAmerica => "https://api.amazon.com",
            Self::Europe => "https://api.amazon.co.uk",
            Self::FarEast => "https://api.amazon.co.jp",
        }
    }

    /// Where a browser signs in (website sign-in's authorize request):
    /// `https://www.amazon.com/ap/oa`, `https://eu.account.amazon.com/ap/oa`,
    /// `https://apac.account.amazon.com/ap/oa`. The Europe and Far East hosts come from Amazon
    /// Ads pages: override them with [`Endpoints::with_authorize_url`] if Amazon tells you
    /// otherwise.
    pub fn authorize_url(self) -> &'static str {
        match self {
            Self::NorthAmerica => "https://www.amazon.com/ap/oa",
            Self::Europe => "https://eu.account.amazon.com/ap/oa",
            Self::FarEast => "https://apac.account.amazon.com/ap/oa",
        }
    }
}

/// Reads a region from configuration text: `na` / `us` / `north-america`, `eu` / `europe`,
/// `fe` / `jp` / `far-east` (any case).
///
/// ```
/// use tower_amazon_auth::endpoint::Region;
/// assert_eq!("EU".parse::<Region>(), Ok(Region::Europe));
/// assert!("mars".parse::<Region>().is_err());
/// ```
impl std::str::FromStr for Region {
    type Err = UnknownRegion;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "na" | "us" | "north-america" | "northamerica" => Ok(Self::NorthAmerica),
            "eu" | "europe" => Ok(Self::Europe),
            "fe" | "jp" | "far-east" | "fareast" => Ok(Self::FarEast),
            _ => Err(UnknownRegion),
        }
    }
}

/// The Amazon Appstore user-profile API's base URL. It offers `/auth/o2/token` and
/// `/user/profile` but no `tokeninfo`.
pub const APPSTORE_BASE_URL: &str = "https://appstore-sdk.amazon.com/version/1.0";

/// The URLs the crate calls.
///
/// ```
/// use tower_amazon_auth::endpoint::{Endpoints, Region};
/// let eu = Endpoints::from(Region::Europe);
/// assert_eq!(eu.tokeninfo_url(), Some("https://api.amazon.co.uk/auth/o2/tokeninfo"));
/// let mock = Endpoints::base_url("http://127.0.0.1:8080/").unwrap();
/// assert_eq!(mock.profile_url(), "http://127.0.0.1:8080/user/profile");
/// assert_eq!(Endpoints::appstore().tokeninfo_url(), None);
/// assert_eq!(mock.authorize_url(), "http://127.0.0.1:8080/ap/oa");
/// assert_eq!(eu.authorize_url(), "https://eu.account.amazon.com/ap/oa");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    tokeninfo: Option<String>,
    profile: String,
    token: String,
    authorize: String,
    /// `http://` to a host other than loopback: tokens and secrets would cross the network in
    /// clear.
    cleartext_remote: bool,
    /// [`Endpoints::allow_cleartext`] was called.
    cleartext_allowed: bool,
}

impl Endpoints {
    /// Endpoints under any base URL (`http` or `https`, no query or fragment), as Login with
    /// Amazon lays them out: `/auth/o2/tokeninfo`, `/user/profile`, `/auth/o2/token`. For
    /// mocks, proxies and tests.
    ///
    /// An `http://` URL is for loopback (`127.0.0.1`, `[::1]`, `localhost`): to any other host,
    /// tokens and client secrets would cross the network in clear, and
    /// [`AmazonClient`](crate::client::AmazonClient) (so also
    /// [`IdentityCacheBuilder::build`](crate::IdentityCacheBuilder::build)) refuses these endpoints
    /// with [`BuildError::CleartextBaseUrl`] unless [`allow_cleartext`](Self::allow_cleartext)
    /// says otherwise.
    pub fn base_url(base: &str) -> Result<Self, BuildError> {
        let (base, cleartext_remote) = checked_base(base)?;
        Ok(Self {
            cleartext_remote,
            ..Self::under(&base, true)
        })
    }

    /// Accepts an `http://` base URL to a host other than loopback: for a proxy on a network
    /// you trust end to end, since tokens (and, for the token endpoint, the client secret)
    /// travel in clear. Without it such endpoints are refused.
    ///
    /// ```
    /// use tower_amazon_auth::BuildError;
    /// use tower_amazon_auth::client::AmazonClient;
    /// use tower_amazon_auth::endpoint::Endpoints;
    /// let proxy = Endpoints::base_url("http://lwa-proxy.internal").unwrap();
    /// assert!(matches!(AmazonClient::new(proxy.clone()), Err(BuildError::CleartextBaseUrl(_))));
    /// assert!(AmazonClient::new(proxy.allow_cleartext()).is_ok());
    /// ```
    #[must_use]
    pub fn allow_cleartext(mut self) -> Self {
        self.cleartext_allowed = true;
        self
    }

    /// Whether these endpoints would send tokens in clear to another host without having been
    /// allowed to.
    pub(crate) fn refused_cleartext(&self) -> Option<&str> {
        (self.cleartext_remote && !self.cleartext_allowed).then_some(self.profile.as_str())
    }

    /// The Amazon Appstore endpoints ([`APPSTORE_BASE_URL`]): no `tokeninfo`, so a layer using
    /// them must opt out of the audience check.
    pub fn appstore() -> Self {
        Self::under(APPSTORE_BASE_URL, false)
    }

    /// Appstore-shaped endpoints (no `tokeninfo`) under another base URL, e.g. a mock.
    /// As for [`base_url`](Self::base_url), `http://` is for loopback unless
    /// [`allow_cleartext`](Self::allow_cleartext) is called.
    pub fn appstore_at(base: &str) -> Result<Self, BuildError> {
        let (base, cleartext_remote) = checked_base(base)?;
        Ok(Self {
            cleartext_remote,
            ..Self::under(&base, false)
        })
    }

    fn under(base: &str, has_tokeninfo: bool) -> Self {
        Self {
            tokeninfo: has_tokeninfo.then(|| format!("{base}/auth/o2/tokeninfo")),
            profile: format!("{base}/user/profile"),
            token: format!("{base}/auth/o2/token"),
            authorize: format!("{base}/ap/oa"),
            cleartext_remote: false,
            cleartext_allowed: false,
        }
    }

    /// The `tokeninfo` URL, if this endpoint family has one.
    pub fn tokeninfo_url(&self) -> Option<&str> {
        self.tokeninfo.as_deref()
    }

    /// The `user/profile` URL.
    pub fn profile_url(&self) -> &str {
        &self.profile
    }

    /// The `auth/o2/token` URL (code exchange and refresh).
    pub fn token_url(&self) -> &str {
        &self.token
    }

    /// Where a browser signs in: the region's [`Region::authorize_url`], or `{base}/ap/oa`
    /// under a base URL (as a mock serves it).
    pub fn authorize_url(&self) -> &str {
        &self.authorize
    }

    /// These endpoints with another authorize URL (an absolute `https` URL, or `http` on
    /// loopback), for a region whose sign-in host differs from the default.
    ///
    /// # Errors
    ///
    /// [`BuildError::InvalidBaseUrl`] for anything else.
    pub fn with_authorize_url(mut self, url: &str) -> Result<Self, BuildError> {
        let (checked, cleartext_remote) = checked_url(url, true)?;
        if cleartext_remote {
            return Err(BuildError::CleartextBaseUrl(url.to_owned()));
        }
        self.authorize = checked;
        Ok(self)
    }
}

impl Default for Endpoints {
    /// North America.
    fn default() -> Self {
        Region::NorthAmerica.into()
    }
}

impl From<Region> for Endpoints {
    fn from(region: Region) -> Self {
        Self {
            authorize: region.authorize_url().to_owned(),
            ..Self::under(region.base_url(), true)
        }
    }
}

/// The base URL without its trailing `/`, and whether it is `http://` to a host other than
/// loopback.
fn checked_base(base: &str) -> Result<(String, bool), BuildError> {
    checked_url(base, false)
}

/// An absolute `http(s)` URL without query or fragment (without its trailing `/` unless
/// `keep_path`), and whether it is `http://` to a host other than loopback.
fn checked_url(base: &str, keep_path: bool) -> Result<(String, bool), BuildError> {
    let invalid = || BuildError::InvalidBaseUrl(base.to_owned());
    let url = reqwest::Url::parse(base).map_err(|_| invalid())?;
    let Some(host) = url.host_str() else {
        return Err(invalid());
    };
    if !matches!(url.scheme(), "http" | "https") || url.query().is_some() || url.fragment().is_some() {
        return Err(invalid());
    }
    let cleartext_remote = url.scheme() == "http" && !is_loopback(host);
    let text = match keep_path {
        true => url.as_str(),
        false => url.as_str().trim_end_matches('/'),
    };
    Ok((text.to_owned(), cleartext_remote))
}

/// Whether `host` (as a URL has it: a name, an IPv4 address, or an IPv6 one in brackets) is
/// this machine: `localhost` or a loopback address.
pub(crate) fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
