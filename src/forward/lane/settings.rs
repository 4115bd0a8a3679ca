//! The upstream's stream limit, read from the SETTINGS frame that opens its side of an
//! HTTP/2 connection (RFC 9113 §3.4): hyper keeps it to itself, and a lane must know it to
//! dial another connection before a request would wait for a stream.
//!
//! [`Sniffed`] wraps the connection's transport and looks at the bytes the server sends
//! until that first frame is whole; after that it only passes bytes through.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;

/// Streams assumed when the server's first frame does not say: kube-apiserver's default
/// since Kubernetes 1.29 (and what Go's HTTP/2 client assumes before it hears).
pub(crate) const DEFAULT_MAX_STREAMS: usize = 100;

/// A SETTINGS frame longer than this is not read for the limit (the default stands): real
/// ones hold a handful of 6-byte settings.
const MAX_SETTINGS_LEN: usize = 256;

const FRAME_HEADER_LEN: usize = 9;
const SETTINGS: u8 = 0x4;
const MAX_CONCURRENT_STREAMS: u16 = 0x3;

/// A transport that reads the server's stream limit into `limit` as it passes by.
pub(crate) struct Sniffed<T> {
    inner: T,
    /// The first frame's bytes so far; `None` once it has been read (or given up on).
    first_frame: Option<Vec<u8>>,
    limit: Arc<AtomicUsize>,
    /// Told once the first frame has been read.
    heard: Option<oneshot::Sender<()>>,
}

/// What the server's first frame will tell: its stream limit, which starts at
/// [`DEFAULT_MAX_STREAMS`] and takes the server's value when it comes, and when it came
/// (`heard` fails if the connection ended before).
pub(crate) struct StreamLimit {
    pub(crate) limit: Arc<AtomicUsize>,
    pub(crate) heard: oneshot::Receiver<()>,
}

impl<T> Sniffed<T> {
    pub(crate) fn new(inner: T) -> (Sniffed<T>, StreamLimit) {
        let limit = Arc::new(AtomicUsize::new(DEFAULT_MAX_STREAMS));
        let (tell, heard) = oneshot::channel();
        let sniffed = Sniffed {
            inner,
            first_frame: Some(Vec::with_capacity(64)),
            limit: limit.clone(),
            heard: Some(tell),
        };
        (sniffed, StreamLimit { limit, heard })
    }

    fn look_at(&mut self, bytes: &[u8]) {
        let Some(frame) = &mut self.first_frame else {
            return;
        };
        frame.extend_from_slice(bytes);
        match read_first_frame(frame) {
            FirstFrame::Incomplete => {}
            FirstFrame::Limit(limit) => {
                // A limit of 0 would mean "no new streams now"; a lane needs at least one.
                self.limit.store(limit.max(1), Ordering::Relaxed);
                self.first_frame = None;
            }
            FirstFrame::NoLimit => self.first_frame = None,
        }
        if self.first_frame.is_none()
            && let Some(tell) = self.heard.take()
        {
            let _ = tell.send(());
        }
    }
}

/// What the bytes of the connection's first server frame say so far.
#[derive(Debug, PartialEq, Eq)]
enum FirstFrame {
    Incomplete,
    Limit(usize),
    /// No stream limit in it, or not a SETTINGS frame we read: the default stands.
    NoLimit,
}

fn read_first_frame(bytes: &[u8]) -> FirstFrame {
    let Some(header) = bytes.first_chunk::<FRAME_HEADER_LEN>() else {
        return FirstFrame::Incomplete;
    };
    let len = usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
    if header[3] != SETTINGS || len > MAX_SETTINGS_LEN || len % 6 != 0 {
        return FirstFrame::NoLimit;
    }
    let Some(payload) = bytes.get(FRAME_HEADER_LEN..FRAME_HEADER_LEN + len) else {
        return FirstFrame::Incomplete;
    };
    // The last value given for a setting is the one in force.
    let limit = payload
        .chunks_exact(6)
        .rev()
        .find(|s| u16::from_be_bytes([s[0], s[1]]) == MAX_CONCURRENT_STREAMS)
        .map(|s| u32::from_be_bytes([s[2], s[3], s[4], s[5]]));
    match limit {
        Some(limit) => FirstFrame::Limit(usize::try_from(limit).unwrap_or(usize::MAX)),
        None => FirstFrame::NoLimit,
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Sniffed<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if self.first_frame.is_some() {
            let this = &mut *self;
            this.look_at(&buf.filled()[before..]);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Sniffed<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn settings(pairs: &[(u16, u32)]) -> Vec<u8> {
        let len = pairs.len() * 6;
        let mut frame = vec![0, 0, len as u8, SETTINGS, 0, 0, 0, 0, 0];
        for (id, value) in pairs {
            frame.extend_from_slice(&id.to_be_bytes());
            frame.extend_from_slice(&value.to_be_bytes());
        }
        frame
    }

    #[test]
    fn reads_the_limit_from_a_whole_first_settings_frame_only() {
        let frame = settings(&[(0x4, 65_535), (0x3, 250), (0x5, 16_384)]);
        for cut in 0..frame.len() {
            assert_eq!(
                read_first_frame(&frame[..cut]),
                FirstFrame::Incomplete,
                "{cut}"
            );
        }
        assert_eq!(read_first_frame(&frame), FirstFrame::Limit(250));
        // Given twice, the last counts.
        let twice = settings(&[(0x3, 250), (0x3, 7)]);
        assert_eq!(read_first_frame(&twice), FirstFrame::Limit(7));
        assert_eq!(
            read_first_frame(&settings(&[(0x4, 1)])),
            FirstFrame::NoLimit
        );
        assert_eq!(read_first_frame(&settings(&[])), FirstFrame::NoLimit);
        // A first frame that is not SETTINGS, or is malformed, is not read.
        let mut ping = settings(&[(0x3, 9)]);
        ping[3] = 0x6;
        assert_eq!(read_first_frame(&ping), FirstFrame::NoLimit);
        let mut ragged = settings(&[(0x3, 9)]);
        ragged[2] = 5;
        assert_eq!(read_first_frame(&ragged), FirstFrame::NoLimit);
    }

    #[tokio::test]
    async fn a_transport_passes_every_byte_and_learns_the_limit_across_reads() {
        let mut sent = settings(&[(0x3, 42)]);
        sent.extend_from_slice(b"and the rest of the connection");
        let (mut server, client) = tokio::io::duplex(4);
        let (mut sniffed, StreamLimit { limit, heard }) = Sniffed::new(client);
        assert_eq!(limit.load(Ordering::Relaxed), DEFAULT_MAX_STREAMS);
        let expected = sent.clone();
        let writer =
            tokio::spawn(
                async move { tokio::io::AsyncWriteExt::write_all(&mut server, &sent).await },
            );
        let mut got = Vec::new();
        sniffed.read_to_end(&mut got).await.unwrap();
        writer.await.unwrap().unwrap();
        assert_eq!(got, expected);
        assert_eq!(limit.load(Ordering::Relaxed), 42);
        heard.await.expect("told when the first frame was read");
    }
}
