//! [`BoxingExecutor`]: how hyper spawns its per-connection and per-stream tasks.

use std::future::Future;

/// Spawns each future on tokio after moving it into a box of its own.
///
/// hyper's HTTP/2 client spawns one enum type for every task it runs: the connection (its
/// TLS session and frame buffers, kilobytes) and, for each request with a body, a small
/// pipe. Spawned as it is, every pipe is a copy of that whole enum, several times over on
/// its way into the task (a request cost ~2,000 more instructions, nearly all `memcpy`).
/// Boxed first, it is copied once and the task holds a pointer, as with hyper-util's
/// pooled client, which boxes too.
#[derive(Clone, Copy, Debug, Default)]
pub struct BoxingExecutor;

impl<F> hyper::rt::Executor<F> for BoxingExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, future: F) {
        tokio::spawn(Box::pin(future));
    }
}
