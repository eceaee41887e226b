//! The integration tests, as one test binary: it is linked once, not once per
//! concern. Each concern is a module of `suite/` (`cargo test --test all
//! serve::` runs one); the helpers they share are in `common/`.

// A panic is how a test reports its failure.
#![allow(clippy::unwrap_used)]

mod common;
mod suite;
