//! Port-forward over SPDY/3.1 (directly, or tunnelled in WebSocket): for each
//! forwarded connection the client opens an `error` stream and a `data` stream
//! sharing a `requestid`. Every port of the double's pod is an echo server: the
//! data stream's bytes come straight back. When the client half-closes the data
//! stream we close both, which is what tells kubectl the connection is done.

use std::collections::HashMap;

use tokio::io::{AsyncRead, AsyncWrite};

use super::spdy::{self, Stream};

pub async fn serve<IO>(io: IO)
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let mut streams = spdy::serve(io);
    // The half of a pair that arrived first, by requestid.
    let mut waiting: HashMap<String, Stream> = HashMap::new();
    while let Some(stream) = streams.recv().await {
        let request = stream.header("requestid").unwrap_or("").to_owned();
        let Some(other) = waiting.remove(&request) else {
            waiting.insert(request, stream);
            continue;
        };
        let (data, error) = if stream.header("streamtype") == Some("data") {
            (stream, other)
        } else {
            (other, stream)
        };
        tokio::spawn(echo(data, error));
    }
}

async fn echo(mut data: Stream, error: Stream) {
    while let Some(chunk) = data.incoming.recv().await {
        data.out.write(&chunk);
    }
    data.out.close();
    error.out.close();
}
