//! The one integration-test binary: real sockets, real kubectl.

mod approvals;
mod double;
mod proxy;
mod support;
