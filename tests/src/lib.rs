//! The end-to-end tests' harness lives in `herald-testing`; this re-exports it.

pub use herald_testing::*;
