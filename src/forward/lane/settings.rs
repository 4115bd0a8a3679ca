//! The upstream's stream limit, read from the SETTINGS frame that opens its side of an
//! HTTP/2 connection (RFC 9113 §3.4): hyper keeps it to itself, and a lane must know it to
//! dial another connection before a request would wait for a stream.
//!
//! [`Sniffed`] wraps the connection's transport and looks at the bytes the server sends
//! until that first frame is whole; after that it only passes bytes through.

use std::io;
use std::pin::Pin;
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

/// A transport that tells the server's stream limit once its first frame has passed by.
pub(crate) struct Sniffed<T> {
    inner: T,
    /// The first frame's bytes so far (at most a header and [`MAX_SETTINGS_LEN`]), and where
    /// to tell what it says; `None` once told.
    first_frame: Option<(Vec<u8>, oneshot::Sender<usize>)>,
}

impl<T> Sniffed<T> {
    /// The transport, and the stream limit it will tell: the server's, or
    /// [`DEFAULT_MAX_STREAMS`] when its first frame does not say (the receiver fails if the
    /// connection ends before that frame is whole).
    pub(crate) fn new(inner: T) -> (Sniffed<T>, oneshot::Receiver<usize>) {
        let (tell, limit) = oneshot::channel();
        let sniffed = Sniffed {
            inner,
            first_frame: Some((Vec::with_capacity(64), tell)),
        };
        (sniffed, limit)
    }

    fn look_at(&mut self, bytes: &[u8]) {
        let Some((frame, _)) = &mut self.first_frame else {
            return;
        };
        let wanted = (FRAME_HEADER_LEN + MAX_SETTINGS_LEN).saturating_sub(frame.len());
        frame.extend_from_slice(&bytes[..bytes.len().min(wanted)]);
        let limit = match read_first_frame(frame) {
            FirstFrame::Incomplete => return,
            // A limit of 0 would mean "no new streams now"; a lane needs at least one.
            FirstFrame::Limit(limit) => limit.max(1),
            FirstFrame::NoLimit => DEFAULT_MAX_STREAMS,
        };
        if let Some((_, tell)) = self.first_frame.take() {
            let _ = tell.send(limit);
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
        let (mut sniffed, limit) = Sniffed::new(client);
        let expected = sent.clone();
        let writer =
            tokio::spawn(
                async move { tokio::io::AsyncWriteExt::write_all(&mut server, &sent).await },
            );
        let mut got = Vec::new();
        sniffed.read_to_end(&mut got).await.unwrap();
        writer.await.unwrap().unwrap();
        assert_eq!(got, expected);
        assert_eq!(limit.await, Ok(42));
    }

    /// A first read that brings far more than the frame (the server's next frames too)
    /// keeps only what the frame needs, and passes everything on.
    #[tokio::test]
    async fn a_large_first_read_is_read_for_the_limit_and_passed_whole() {
        let mut sent = settings(&[(0x4, 1 << 20), (0x3, 250)]);
        sent.extend(std::iter::repeat_n(0xab, 64 << 10));
        let (mut server, client) = tokio::io::duplex(256 << 10);
        tokio::io::AsyncWriteExt::write_all(&mut server, &sent)
            .await
            .unwrap();
        drop(server);
        let (mut sniffed, limit) = Sniffed::new(client);
        let mut got = Vec::new();
        sniffed.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, sent);
        assert_eq!(limit.await, Ok(250));
    }
}
