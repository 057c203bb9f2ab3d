//! The HTML of the authorization endpoint: the consent page (the app, the scopes it asks for, a
//! choice of user, Allow and Cancel in one form) and the error page, every value HTML-escaped.
//! Plain HTML with a little inline CSS: no script, nothing loaded from anywhere.

use std::fmt::Write as _;

use tower_amazon_auth::sign_in::escape_html;

use crate::reply::MockUser;

/// The stylesheet of both pages.
const STYLE: &str = "body{font-family:Arial,Helvetica,sans-serif;background:#f3f3f3;margin:0;padding:2em}\
main{max-width:32em;margin:0 auto;background:#fff;border:1px solid #ddd;border-radius:8px;padding:1.5em 2em}\
h1{font-size:1.4em;margin-top:0}code{word-break:break-all}fieldset{border:1px solid #ddd;border-radius:4px}\
label{display:block;margin:.4em 0}.id{color:#555;font-size:.85em}\
.buttons{margin-top:1.2em;display:flex;gap:1em}\
button{font-size:1em;padding:.5em 1.5em;border-radius:4px;border:1px solid #888;cursor:pointer}\
#allow{background:#ffd814;border-color:#fcd200}.error{color:#b12704}";

/// What a scope lets the app see, for the consent page.
fn scope_description(scope: &str) -> &'static str {
    match scope {
        "profile" => "your name, email address and Amazon account id",
        "profile:user_id" => "your Amazon account id",
        "postal_code" => "the postal code of your Amazon account",
        _ => "something this mock does not know",
    }
}

/// The start of both pages, up to and including `<main>`.
fn head(title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n",
        escape_html(title)
    )
}

const FOOT: &str = "</main>\n</body>\n</html>\n";

/// What the consent page shows and sends back.
pub(crate) struct ConsentPage<'a> {
    /// The app asking (its client id).
    pub(crate) client_id: &'a str,
    /// The scopes it asks for, each once.
    pub(crate) scopes: &'a [&'a str],
    /// The users one can sign in as; the first is selected.
    pub(crate) users: &'a [MockUser],
    /// The authorization request's parameters, sent back as hidden inputs.
    pub(crate) hidden: &'a [(&'a str, &'a str)],
}

impl ConsentPage<'_> {
    /// The page: one form that posts to `/ap/oa` with the hidden parameters, the chosen user
    /// (`user_id`, radio inputs `id="user-<i>"`) and the button pressed (`action`, `allow` or
    /// `cancel`; the buttons are `id="allow"` and `id="cancel"`).
    pub(crate) fn render(&self) -> String {
        let mut html = head("Amazon Sign-In (mock)");
        html.push_str("<h1>Login with Amazon <small>(mock)</small></h1>\n");
        let _ = writeln!(
            html,
            "<p>The app <code id=\"client-id\">{}</code> would like to:</p>\n<ul id=\"scopes\">",
            escape_html(self.client_id)
        );
        for scope in self.scopes {
            let _ = writeln!(
                html,
                "<li><code>{}</code>: see {}</li>",
                escape_html(scope),
                escape_html(scope_description(scope))
            );
        }
        html.push_str("</ul>\n<form method=\"post\" action=\"/ap/oa\">\n");
        html.push_str("<fieldset id=\"users\">\n<legend>Sign in as</legend>\n");
        for (i, user) in self.users.iter().enumerate() {
            let checked = if i == 0 { " checked" } else { "" };
            let shown = user.name.as_deref().unwrap_or(&user.user_id);
            let _ = writeln!(
                html,
                "<label><input type=\"radio\" name=\"user_id\" id=\"user-{i}\" value=\"{}\"{checked}> \
                 <span class=\"name\">{}</span> <span class=\"id\">{}</span></label>",
                escape_html(&user.user_id),
                escape_html(shown),
                escape_html(&user.user_id),
            );
        }
        html.push_str("</fieldset>\n");
        for (name, value) in self.hidden {
            let _ = writeln!(
                html,
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                escape_html(name),
                escape_html(value)
            );
        }
        html.push_str(
            "<div class=\"buttons\">\n\
             <button type=\"submit\" id=\"allow\" name=\"action\" value=\"allow\">Allow</button>\n\
             <button type=\"submit\" id=\"cancel\" name=\"action\" value=\"cancel\">Cancel</button>\n\
             </div>\n</form>\n",
        );
        html.push_str(FOOT);
        html
    }
}

/// The page of a request the mock refuses without redirecting anywhere: `message` says why.
pub(crate) fn error_page(message: &str) -> String {
    let mut html = head("Amazon Sign-In (mock): error");
    html.push_str("<h1>We cannot sign you in</h1>\n");
    let _ = writeln!(
        html,
        "<p class=\"error\" id=\"error\">{}</p>",
        escape_html(message)
    );
    html.push_str(FOOT);
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_it_writes() {
        let users = [MockUser::new("amzn1.account.\"X\"").name("<img src=x onerror=alert(1)>")];
        let page = ConsentPage {
            client_id: "<client>",
            scopes: &["profile"],
            users: &users,
            hidden: &[("state", "\"><script>alert(1)</script>")],
        }
        .render();
        assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;"), "{page}");
        assert!(!page.contains("<img"), "{page}");
        assert!(!page.contains("<script"), "{page}");
        assert!(!page.contains("<client>"), "{page}");
        assert!(page.contains("value=\"amzn1.account.&quot;X&quot;\""), "{page}");
        assert!(!error_page("<b>").contains("<b>"));
    }
}
