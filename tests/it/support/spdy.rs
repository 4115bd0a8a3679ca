//! The server side of SPDY/3.1 as Kubernetes uses it (moby/spdystream under
//! k8s.io/apimachinery/pkg/util/httpstream/spdy): the client opens streams with
//! SYN_STREAM (headers such as `streamtype`, `port`, `requestid` in a zlib block
//! compressed against the SPDY/3 dictionary, one zlib stream per direction for the
//! whole connection), we answer each with SYN_REPLY, and data flows in DATA frames
//! until a FIN flag half-closes a stream. PING is echoed; SETTINGS and
//! WINDOW_UPDATE are ignored (no flow control is needed at test sizes).

use std::collections::HashMap;
use std::io;

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use super::spdy_dictionary::dictionary;

const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const HEADERS: u16 = 8;
const FLAG_FIN: u8 = 1;
const MAX_DATA: usize = (1 << 24) - 1;

/// A stream the client opened.
pub struct Stream {
    pub id: u32,
    pub headers: Vec<(String, String)>,
    /// Data the client sends; ends when it half-closes (FIN) or resets the stream.
    pub incoming: mpsc::UnboundedReceiver<Bytes>,
    pub out: StreamWriter,
}

/// Writes DATA frames on one stream.
#[derive(Clone)]
pub struct StreamWriter {
    id: u32,
    frames: mpsc::UnboundedSender<Vec<u8>>,
}

impl Stream {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl StreamWriter {
    pub fn write(&self, data: &[u8]) {
        for chunk in data.chunks(MAX_DATA) {
            let _ = self.frames.send(data_frame(self.id, 0, chunk));
        }
    }

    /// Half-closes the stream (an empty DATA frame with FIN).
    pub fn close(&self) {
        let _ = self.frames.send(data_frame(self.id, FLAG_FIN, &[]));
    }
}

/// Runs a SPDY/3.1 server session on `io`; yields each stream the client opens,
/// already answered with SYN_REPLY. The connection closes once the client is gone
/// and every [`StreamWriter`] is dropped.
pub fn serve<IO>(io: IO) -> mpsc::UnboundedReceiver<Stream>
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (reader, mut writer) = tokio::io::split(io);
    let (frames_tx, mut frames_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let (streams_tx, streams_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(frame) = frames_rx.recv().await {
            if writer.write_all(&frame).await.is_err() {
                return;
            }
        }
        let _ = writer.shutdown().await;
    });
    tokio::spawn(async move {
        let _ = read_frames(BufReader::new(reader), frames_tx, streams_tx).await;
    });
    streams_rx
}

async fn read_frames<R: AsyncRead + Unpin>(
    mut reader: R,
    frames: mpsc::UnboundedSender<Vec<u8>>,
    new_streams: mpsc::UnboundedSender<Stream>,
) -> io::Result<()> {
    let mut codec = HeaderCodec::new();
    let mut open: HashMap<u32, mpsc::UnboundedSender<Bytes>> = HashMap::new();
    loop {
        let mut head = [0u8; 8];
        reader.read_exact(&mut head).await?;
        let flags = head[4];
        let len = u32::from_be_bytes([0, head[5], head[6], head[7]]) as usize;
        let mut payload = vec![0u8; len];
        reader.read_exact(&mut payload).await?;
        if head[0] & 0x80 == 0 {
            let id = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
            if let Some(tx) = open.get(&id)
                && !payload.is_empty()
            {
                let _ = tx.send(Bytes::from(payload));
            }
            if flags & FLAG_FIN != 0 {
                open.remove(&id);
            }
            continue;
        }
        match u16::from_be_bytes([head[2], head[3]]) {
            SYN_STREAM if payload.len() >= 10 => {
                let id = stream_id(&payload[0..4]);
                let headers = codec.inflate(&payload[10..])?;
                let mut reply = id.to_be_bytes().to_vec();
                reply.extend(codec.deflate(&[])?);
                let _ = frames.send(control_frame(SYN_REPLY, 0, &reply));
                let (tx, incoming) = mpsc::unbounded_channel();
                if flags & FLAG_FIN == 0 {
                    open.insert(id, tx);
                }
                let out = StreamWriter {
                    id,
                    frames: frames.clone(),
                };
                let _ = new_streams.send(Stream {
                    id,
                    headers,
                    incoming,
                    out,
                });
            }
            // Their header blocks still advance the shared zlib stream.
            SYN_REPLY | HEADERS if payload.len() >= 4 => {
                codec.inflate(&payload[4..])?;
            }
            RST_STREAM if payload.len() >= 4 => {
                open.remove(&stream_id(&payload[0..4]));
            }
            PING => {
                let _ = frames.send([&head[..], &payload].concat());
            }
            GOAWAY => return Ok(()),
            _ => {}
        }
    }
}

fn stream_id(bytes: &[u8]) -> u32 {
    u32::from_be_bytes([bytes[0] & 0x7f, bytes[1], bytes[2], bytes[3]])
}

fn control_frame(kind: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0x80, 3];
    frame.extend(kind.to_be_bytes());
    frame.push(flags);
    frame.extend(&(payload.len() as u32).to_be_bytes()[1..]);
    frame.extend(payload);
    frame
}

fn data_frame(id: u32, flags: u8, data: &[u8]) -> Vec<u8> {
    let mut frame = (id & 0x7fff_ffff).to_be_bytes().to_vec();
    frame.push(flags);
    frame.extend(&(data.len() as u32).to_be_bytes()[1..]);
    frame.extend(data);
    frame
}

/// The connection's two header-compression contexts.
struct HeaderCodec {
    inflater: Decompress,
    deflater: Compress,
}

impl HeaderCodec {
    fn new() -> HeaderCodec {
        let mut deflater = Compress::new(Compression::best(), true);
        deflater.set_dictionary(&dictionary()).unwrap();
        HeaderCodec {
            inflater: Decompress::new(true),
            deflater,
        }
    }

    /// Decodes one header block: a count, then (name, value) pairs, each
    /// 4-byte-length-prefixed; a value may hold several NUL-separated values.
    fn inflate(&mut self, mut input: &[u8]) -> io::Result<Vec<(String, String)>> {
        let mut block = Vec::with_capacity(4096);
        loop {
            if block.capacity() - block.len() < 1024 {
                block.reserve(4096);
            }
            let (before_in, before_out) = (self.inflater.total_in(), self.inflater.total_out());
            match self
                .inflater
                .decompress_vec(input, &mut block, FlushDecompress::Sync)
            {
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.inflater
                        .set_dictionary(&dictionary())
                        .map_err(io::Error::other)?;
                }
                Err(e) => return Err(io::Error::other(e)),
            }
            let consumed = (self.inflater.total_in() - before_in) as usize;
            input = &input[consumed..];
            let produced = self.inflater.total_out() - before_out;
            if produced == 0 && block.capacity() > block.len() {
                if input.is_empty() {
                    break;
                }
                if consumed == 0 {
                    return Err(io::Error::other("SPDY header block makes no progress"));
                }
            }
        }
        parse_header_block(&block).ok_or_else(|| io::Error::other("malformed SPDY header block"))
    }

    fn deflate(&mut self, headers: &[(&str, &str)]) -> io::Result<Vec<u8>> {
        let mut block = (headers.len() as u32).to_be_bytes().to_vec();
        for (name, value) in headers {
            for s in [name, value] {
                block.extend((s.len() as u32).to_be_bytes());
                block.extend(s.as_bytes());
            }
        }
        let mut out = Vec::with_capacity(block.len() + 64);
        self.deflater
            .compress_vec(&block, &mut out, FlushCompress::Sync)
            .map_err(io::Error::other)?;
        Ok(out)
    }
}

fn parse_header_block(mut block: &[u8]) -> Option<Vec<(String, String)>> {
    let mut take = |n: usize| -> Option<&[u8]> {
        let (head, rest) = (block.get(..n)?, block.get(n..)?);
        block = rest;
        Some(head)
    };
    let count = u32::from_be_bytes(take(4)?.try_into().ok()?);
    let mut headers = Vec::new();
    for _ in 0..count {
        let name_len = u32::from_be_bytes(take(4)?.try_into().ok()?) as usize;
        let name = String::from_utf8_lossy(take(name_len)?).into_owned();
        let value_len = u32::from_be_bytes(take(4)?.try_into().ok()?) as usize;
        let value = String::from_utf8_lossy(take(value_len)?).into_owned();
        for v in value.split('\0') {
            headers.push((name.clone(), v.to_owned()));
        }
    }
    Some(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionary_is_the_spdy3_one() {
        let dict = dictionary();
        assert_eq!(dict.len(), 1423);
    }

    #[test]
    fn header_blocks_round_trip_through_the_shared_zlib_streams() {
        let mut client = HeaderCodec::new();
        let mut server = HeaderCodec::new();
        for i in 0..3 {
            let port = i.to_string();
            let block = client
                .deflate(&[("streamtype", "data"), ("port", &port)])
                .unwrap();
            let headers = server.inflate(&block).unwrap();
            assert_eq!(
                headers,
                vec![("streamtype".into(), "data".into()), ("port".into(), port)]
            );
        }
    }
}
