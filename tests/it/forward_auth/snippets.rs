//! The README's nginx and Caddy snippets are the configurations the proxy tests run: each is
//! byte-identical to its template rendered with the addresses the README documents.

use super::*;

/// The addresses the README's snippets use: the proxy on port 80, the example's default
/// `LISTEN_ADDR`, and an upstream on 8080.
const README_AUTH: &str = "127.0.0.1:4180";
const README_BACKEND: &str = "127.0.0.1:8080";

/// The fenced block that follows `marker` in `readme`, without its fences.
fn block_after<'a>(readme: &'a str, marker: &str) -> &'a str {
    let at = readme
        .find(marker)
        .unwrap_or_else(|| panic!("README.md has no `{marker}`"));
    let rest = &readme[at + marker.len()..];
    let open = rest.find("```").expect("a fenced block after the marker");
    let body = &rest[open..];
    let start = body.find('\n').unwrap() + 1;
    let end = body[start..].find("\n```").unwrap() + start + 1;
    &body[start..end]
}

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap()
}

#[test]
fn the_readme_nginx_snippet_is_the_tested_template() {
    let expected = render(
        NGINX_TEMPLATE,
        &Addresses {
            listen: "80",
            auth: README_AUTH,
            backend: README_BACKEND,
        },
    );
    let readme = readme();
    let shown = block_after(
        &readme,
        "<!-- forward-auth nginx: tests/it/forward_auth/nginx.conf -->",
    );
    assert_eq!(
        shown, expected,
        "render tests/it/forward_auth/nginx.conf into README.md again"
    );
}

#[test]
fn the_readme_caddy_snippet_is_the_tested_template() {
    let expected = render(
        CADDY_TEMPLATE,
        &Addresses {
            listen: ":80",
            auth: README_AUTH,
            backend: README_BACKEND,
        },
    );
    let readme = readme();
    let shown = block_after(
        &readme,
        "<!-- forward-auth caddy: tests/it/forward_auth/Caddyfile -->",
    );
    assert_eq!(
        shown, expected,
        "render tests/it/forward_auth/Caddyfile into README.md again"
    );
}

#[test]
fn templates_have_no_placeholder_left_once_rendered() {
    for template in [NGINX_TEMPLATE, CADDY_TEMPLATE] {
        let rendered = render(
            template,
            &Addresses {
                listen: "L",
                auth: "A",
                backend: "B",
            },
        );
        assert!(template.contains("@AUTH@") && template.contains("@BACKEND@"));
        let left = rendered
            .split('@')
            .skip(1)
            .step_by(2)
            .find(|name| !name.is_empty() && name.bytes().all(|b| b.is_ascii_uppercase()));
        assert_eq!(left, None, "a placeholder is left in:\n{rendered}");
    }
}
