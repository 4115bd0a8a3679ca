//! The one integration-test binary: real sockets, real kubectl.

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
