//! The one integration-test binary: real sockets, real kubectl.

mod double;
mod proxy;
mod support;
