//! Where a browser goes after signing in: [`checked_return_to`] keeps a `return_to` only when it
//! is a path on this site, so the sign-in routes are never an open redirect.

/// The longest `return_to` kept.
const MAX_LEN: usize = 1024;

/// `return_to` when it is a same-site path, otherwise `/`. Kept only if it has one leading `/`
/// and not `//` (a scheme-relative URL), no `\` (browsers read it as `/`), no control character
/// or whitespace anywhere, raw or percent-encoded (browsers strip tab and newline from URLs, so
/// `/%09/evil.example` would become `//evil.example`), at most 1 KiB, and does not lead back
/// into a sign-in route (`routes`). Its query string is kept; a fragment never reaches the
/// server.
pub(crate) fn checked_return_to<'a>(return_to: Option<&'a str>, routes: &[&str]) -> &'a str {
    let Some(path) = return_to else { return "/" };
    let acceptable = path.len() <= MAX_LEN
        && path.starts_with('/')
        && !path.starts_with("//")
        && !path.contains('\\')
        && !path.chars().any(|c| c.is_control() || c.is_whitespace())
        && !has_encoded_hazard(path)
        && !routes.iter().any(|route| on_route(path, route));
    if acceptable {
        path
    } else {
        "/"
    }
}

/// Whether `path` percent-encodes a byte a browser would drop or turn into a separator: a
/// control character, a space, or a backslash (`%5C`), or a `/` right after the leading one.
fn has_encoded_hazard(path: &str) -> bool {
    let bytes = path.as_bytes();
    bytes.windows(3).enumerate().any(|(at, window)| {
        let [b'%', high, low] = window else { return false };
        let Some(byte) = hex(*high).zip(hex(*low)).map(|(h, l)| h << 4 | l) else {
            return false;
        };
        byte < 0x20 || byte == 0x7f || byte == b' ' || byte == b'\\' || (byte == b'/' && at == 1)
    })
}

fn hex(digit: u8) -> Option<u8> {
    (digit as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// Whether `path` is `route` itself (with or without a query).
fn on_route(path: &str, route: &str) -> bool {
    let bare = path.split(['?', '#']).next().unwrap_or(path);
    bare == route || bare.strip_prefix(route) == Some("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTES: &[&str] = &["/login", "/login/callback", "/logout"];

    #[test]
    fn same_site_paths_are_kept_with_their_query() {
        for path in ["/", "/orders", "/orders?page=2&sort=asc", "/a/b/c", "/caf%C3%A9"] {
            assert_eq!(checked_return_to(Some(path), ROUTES), path);
        }
    }

    #[test]
    fn anything_that_could_leave_the_site_becomes_the_root() {
        for hostile in [
            "//evil.example",
            "https://evil.example",
            "/\\evil.example",
            "\\/evil.example",
            "/%09/evil.example",
            "/%0a/evil.example",
            "/%2F/evil.example",
            "/%5Cevil.example",
            "/\t/evil.example",
            "/ /evil.example",
            "evil.example",
            "",
            "javascript:alert(1)",
        ] {
            assert_eq!(checked_return_to(Some(hostile), ROUTES), "/", "{hostile:?}");
        }
        assert_eq!(checked_return_to(None, ROUTES), "/");
        assert_eq!(
            checked_return_to(Some(&format!("/{}", "a".repeat(1024))), ROUTES),
            "/"
        );
    }

    #[test]
    fn a_sign_in_route_is_not_a_destination() {
        for route in [
            "/login",
            "/login?return_to=/x",
            "/login/callback?code=1",
            "/logout",
            "/logout/",
        ] {
            assert_eq!(checked_return_to(Some(route), ROUTES), "/", "{route}");
        }
        assert_eq!(checked_return_to(Some("/loginhelp"), ROUTES), "/loginhelp");
    }
}
