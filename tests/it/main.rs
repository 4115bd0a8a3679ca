//! The one integration-test binary: real sockets, real kubectl.

mod crash;
mod double;
mod faults;
mod hardening;
mod proxy;
mod support;
