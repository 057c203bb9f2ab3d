//! A browser as far as tests of sign-in over plain HTTP need one ([`Browser`]: cookies per host,
//! no redirect followed by itself, the mock's consent page filled in), and the bits of a
//! redirect they read.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::header::{COOKIE, LOCATION, ORIGIN, SET_COOKIE};

/// The `Location` of a redirect.
pub fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(LOCATION)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// A query parameter of a URL.
pub fn param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// A browser, as far as these tests need one: it keeps cookies per host (no `Secure` or path
/// subtleties: the site and the mock are on different addresses) and follows no redirect by
/// itself.
pub struct Browser {
    http: reqwest::Client,
    /// Cookies by host, by name.
    pub jar: HashMap<String, HashMap<String, String>>,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    /// A browser with no cookies.
    pub fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            jar: HashMap::new(),
        }
    }

    fn host(url: &str) -> String {
        url.split('/').nth(2).unwrap_or_default().to_owned()
    }

    /// The `Cookie` header this browser sends to `url`.
    pub fn cookie_header(&self, url: &str) -> String {
        self.jar
            .get(&Self::host(url))
            .map(|cookies| {
                cookies
                    .iter()
                    .map(|(name, value)| format!("{name}={value}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default()
    }

    /// Sends `request` to `url` with this browser's cookies, and keeps the ones it sets.
    pub async fn send(&mut self, url: &str, request: reqwest::RequestBuilder) -> reqwest::Response {
        let cookies = self.cookie_header(url);
        let request = if cookies.is_empty() {
            request
        } else {
            request.header(COOKIE, cookies)
        };
        let response = request.send().await.unwrap();
        let jar = self.jar.entry(Self::host(url)).or_default();
        for set in response.headers().get_all(SET_COOKIE) {
            let set = set.to_str().unwrap();
            let (pair, attributes) = set.split_once(';').unwrap_or((set, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if attributes.contains("Max-Age=0") {
                jar.remove(name);
            } else {
                jar.insert(name.to_owned(), value.to_owned());
            }
        }
        response
    }

    /// A `GET` of `url`.
    pub async fn get(&mut self, url: &str) -> reqwest::Response {
        let request = self.http.get(url);
        self.send(url, request).await
    }

    /// A `POST` to `url` as a page of `origin` sends it (`Origin: origin`; none when `None`).
    pub async fn post(&mut self, url: &str, origin: Option<&str>) -> reqwest::Response {
        let mut request = self.http.post(url);
        if let Some(origin) = origin {
            request = request.header(ORIGIN, origin);
        }
        self.send(url, request).await
    }

    /// On the mock's consent page for `authorize` (its URL), signs in as `user_id` with
    /// `action` (`allow` or `cancel`): answers where the mock sends the browser back.
    pub async fn consent(&mut self, authorize: &str, user_id: &str, action: &str) -> String {
        let page = self.get(authorize).await;
        assert_eq!(page.status(), 200, "the consent page");
        let (page_url, query) = authorize.split_once('?').unwrap();
        let mut form: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
        form.push(("user_id".to_owned(), user_id.to_owned()));
        form.push(("action".to_owned(), action.to_owned()));
        let request = self.http.post(page_url).form(&form);
        let answer = self.send(page_url, request).await;
        assert_eq!(answer.status(), 303, "the consent page redirects back");
        location(&answer)
    }

    /// The value of cookie `name` this browser holds for `url`'s host.
    pub fn cookie(&self, url: &str, name: &str) -> Option<String> {
        self.jar.get(&Self::host(url))?.get(name).cloned()
    }
}
