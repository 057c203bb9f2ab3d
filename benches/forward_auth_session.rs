//! The forward-auth server's time per subrequest, a session cookie against a bearer token, in
//! one run and in-process (no nginx): `GET /verify` through `ForwardAuth` from a layer with
//! website sign-in, carrying (a) `Authorization: Bearer <token>` (a token the cache knows) or
//! (b) `Cookie: taa_session=<id>`, both with `X-Original-Method: GET` as the proxy sends it;
//! and (c) the trivial inner service alone, the baseline. With 1 and with 10 000 live sessions
//! (and as many tokens). The issue's target: the cookie subrequest at most 1.3 × the bearer's.
//!
//! ```sh
//! cargo bench --features axum --bench forward_auth_session -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! For a profiler: `-- --sessions 10000 --profile cookie 200000` runs one path's loop alone
//! (`bare`, `bearer` or `cookie`).
//!
//! The sessions come from the real flow (`benches/common/sign_in.rs`). Every measured
//! subrequest must answer 200 and be a cache hit. After criterion, a paired table (rounds
//! running bare, cookie and bearer back to back).

mod common;

use common::sign_in;
use common::{Source, Template};
use http::header::COOKIE;

fn main() {
    sign_in::main(
        ["verify-1", "verify-10000"],
        ["bare", "cookie", "bearer"],
        |cookie| {
            Template::with_header("/verify", COOKIE, cookie.as_bytes()).and_header("x-original-method", "GET")
        },
        |token| {
            Template::new(token, Source::Bearer)
                .at("/verify")
                .and_header("x-original-method", "GET")
        },
        |layer| layer.forward_auth(),
    );
}
