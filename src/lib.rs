//! breakglass: custody of cloud root credentials behind a TOTP quorum.
//!
//! Dependencies point one way: `http` and `cli` call `app` (use cases), which
//! uses `domain` (pure rules) and the ports `store`, `keys` and `secrets`;
//! no two rooms import each other, even through a third (`layers.rs`).
#![forbid(unsafe_code)]

pub mod app;
pub mod auth;
pub mod aws;
pub mod cli;
pub mod clock;
pub mod config;
pub mod context;
pub mod crypto;
pub mod datadir;
pub mod domain;
pub mod http;
pub mod keys;
#[cfg(test)]
mod layers;
pub mod limits;
pub mod metrics;
pub mod ocsf;
pub mod oidc;
pub mod org;
pub mod secrets;
pub mod server;
pub mod store;
pub mod tls;
pub mod trail;
pub mod wiring;
