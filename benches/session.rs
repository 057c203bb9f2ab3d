//! Website sign-in's hit path against the bearer token's, in one run: a request signed in by
//! its session cookie (one session-store read, then the identity cache) against one carrying a
//! bearer token (the token's digest, then the identity cache), both answered from the cache,
//! with 1 and with 10 000 live sessions (and as many tokens). The target: the session path's
//! overhead over the bare service at most 1.3 × the bearer path's.
//!
//! ```sh
//! cargo bench --features axum --bench session -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! For a profiler: `-- --sessions 10000 --profile session 200000` runs one path's loop alone.
//!
//! The sessions are made by the real flow: `GET /login` and the callback through `SignIn` as a
//! service, the consent through `MockAmazon`'s `/ap/oa` over HTTP (`benches/common/sign_in.rs`).
//! After criterion, a paired table (rounds running bare, session and bearer back to back).

mod common;

use common::sign_in;
use common::{inner, Source, Template};
use http::header::COOKIE;
use tower::Layer;

fn main() {
    sign_in::main(
        ["session-1", "session-10000"],
        ["bare", "session", "bearer"],
        |cookie| Template::with_header("/me", COOKIE, cookie.as_bytes()),
        |token| Template::new(token, Source::Bearer),
        |layer| layer.layer(inner()),
    );
}
