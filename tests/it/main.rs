//! The one integration-test binary: real sockets, real kubectl.

mod approvals;
mod double;
mod flows;
mod onboarding;
mod proxy;
mod support;
