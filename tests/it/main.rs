//! The one integration-test binary: real sockets, real kubectl.

// These tests drive real processes (sluice, kubectl, an apiserver) that run on real time,
// which tokio's paused clock cannot reach: std's Instant is the right clock here.
#![allow(clippy::disallowed_types)]

mod approvals;
mod crash;
mod deploy;
mod double;
mod faults;
mod flows;
mod hardening;
mod onboarding;
mod proxy;
mod real;
mod support;
