//! The one integration-test binary: real sockets, real kubectl.

mod double;
mod hardening;
mod proxy;
mod support;
