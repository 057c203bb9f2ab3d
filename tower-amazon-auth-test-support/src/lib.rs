//! What the workspace's tests share (unpublished): [`external`] starts the real servers the
//! tests need (Redis, nginx, Caddy) on a free 127.0.0.1 port and stops them; [`cluster`] a
//! Redis Cluster of six of them; [`browser`] drives
//! a headless Chromium through chromedriver (started the same way); [`cookies`] is a cookie-keeping
//! HTTP client standing in for a browser in sign-in tests; [`at_rest`] finds a secret in a dump in
//! any reversible encoding; [`examples`] builds and runs
//! the example binaries; [`relay`] is a TCP relay that can go silent like a NAT that
//! lost its state; [`fixtures`] holds realistic tokens, a layer on `MockAmazon`, an app
//! behind it served on loopback, and a client. The core's tests and the Redis level's use it
//! alike, so neither keeps a copy.

pub mod at_rest;
pub mod browser;
pub mod cluster;
pub mod cookies;
pub mod examples;
pub mod external;
pub mod fixtures;
pub mod proxies;
pub mod relay;
