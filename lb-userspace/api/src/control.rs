//! The control protocol between `lbctl` and `lbd`: one JSON request per line on a Unix
//! socket, one JSON response line back. The socket is created mode 0600 (root only).

use std::{net::SocketAddr, path::Path, time::Duration};

use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream},
    sync::{mpsc, oneshot},
};

use crate::listen::{Accepted, Gate};
use crate::view::{
    BgpView, ConnView, ExplainView, HealthView, ServiceView, StatusView, SyncView, VrrpView,
};

/// A request from lbctl.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
pub enum Request {
    /// Daemon status and outcome counters.
    Status,
    /// Services and backends with counters.
    List,
    /// Tracked connections.
    Conns {
        /// At most this many.
        limit: usize,
    },
    /// Where a flow would go.
    Explain {
        /// Client address.
        src: SocketAddr,
        /// VIP address.
        dst: SocketAddr,
        /// "tcp" or "udp".
        protocol: String,
        /// Treat as a new connection (TCP SYN).
        syn: bool,
    },
    /// Health-check state of every backend.
    Health,
    /// Re-read the config file.
    Reload,
    /// VRRP instances: state, priority, master, counters.
    Vrrp,
    /// The flow sync: peers, entries sent and received, drops, resyncs.
    Sync,
    /// BGP announcement: each VIP, announced or not and why; the speaker and its
    /// sessions.
    Bgp,
    /// Drain this node: withdraw every VIP, keep forwarding what still arrives until
    /// it stops arriving or `timeout_secs` (default `[bgp] drain_timeout`), then exit.
    Drain {
        /// Seconds to keep forwarding at most.
        #[serde(default)]
        timeout_secs: Option<u64>,
    },
}

/// A response from lbd.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Response {
    /// Answer to [`Request::Status`].
    Status(StatusView),
    /// Answer to [`Request::List`].
    List {
        /// Services.
        services: Vec<ServiceView>,
    },
    /// Answer to [`Request::Conns`].
    Conns {
        /// Connections.
        conns: Vec<ConnView>,
    },
    /// Answer to [`Request::Explain`].
    Explain(ExplainView),
    /// Answer to [`Request::Health`].
    Health {
        /// Backends.
        backends: Vec<HealthView>,
    },
    /// Answer to [`Request::Vrrp`].
    Vrrp {
        /// Instances (empty: no VRRP configured; the node forwards per `[global]`).
        instances: Vec<VrrpView>,
    },
    /// Answer to [`Request::Sync`].
    Sync(SyncView),
    /// Answer to [`Request::Bgp`].
    Bgp(BgpView),
    /// The request was carried out.
    Done {
        /// What happened.
        message: String,
    },
    /// The request failed.
    Error {
        /// Why.
        message: String,
    },
}

/// Errors talking to lbd.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Connecting or reading failed.
    #[error("control socket {path}: {source}")]
    Io {
        /// Socket path.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The peer sent something that is not a response.
    #[error("bad response from lbd: {0}")]
    Protocol(#[from] serde_json::Error),
}

/// Send one request to lbd at `socket` and wait for the response.
pub async fn call(socket: &Path, request: &Request) -> Result<Response, ControlError> {
    let io = |source| ControlError::Io {
        path: socket.display().to_string(),
        source,
    };
    let stream = UnixStream::connect(socket).await.map_err(io)?;
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_string(request)?;
    line.push('\n');
    write.write_all(line.as_bytes()).await.map_err(io)?;
    let mut reader = BufReader::new(read);
    let mut answer = String::new();
    reader.read_line(&mut answer).await.map_err(io)?;
    Ok(serde_json::from_str(&answer)?)
}

/// How the socket server (and the metrics endpoint) hand requests to lbd's main loop,
/// which owns the data plane and answers on the oneshot.
pub type RequestTx = mpsc::Sender<(Request, oneshot::Sender<Response>)>;

/// Ask lbd's main loop directly (metrics uses this; lbctl goes through the socket).
pub async fn ask(tx: &RequestTx, request: Request) -> Response {
    let (reply, answer) = oneshot::channel();
    if tx.send((request, reply)).await.is_err() {
        return Response::Error {
            message: "lbd is shutting down".into(),
        };
    }
    answer.await.unwrap_or(Response::Error {
        message: "lbd dropped the request".into(),
    })
}

/// Create the control socket at `path` (replacing a stale one), mode 0600.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt as _;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Serve lbctl connections forever: each line is a request, answered by the main loop.
pub async fn serve(listener: UnixListener, tx: RequestTx) {
    serve_with(listener, move |request| {
        let tx = tx.clone();
        async move { ask(&tx, request).await }
    })
    .await
}

/// Requests longer than this (bytes, newline included) get an error and the
/// connection is closed; the line is never buffered whole.
pub const MAX_REQUEST: usize = 64 * 1024;

/// lbctl connections served at once; more are answered "busy" and closed.
pub const MAX_CONNECTIONS: usize = 64;

/// A connection must send each whole request line within this time (lbctl sends at
/// once); an idle or trickling one is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// A response must be written within this time (a client that stops reading is closed).
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Serve lbctl connections forever: each line is a request, answered by `answer`
/// (lbd routes reads to its observers and writes to its main loop). Connections are
/// served concurrently, at most [`MAX_CONNECTIONS`] at once; requests on one
/// connection in order, each at most [`MAX_REQUEST`] bytes and sent within
/// [`IDLE_TIMEOUT`].
pub async fn serve_with<F, Fut>(listener: UnixListener, answer: F)
where
    F: Fn(Request) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Response> + Send,
{
    let mut gate = Gate::new(listener, "control socket", MAX_CONNECTIONS);
    loop {
        match gate.next().await {
            Accepted::Serve(stream, permit) => {
                let answer = answer.clone();
                tokio::spawn(async move {
                    serve_connection(stream, answer).await;
                    drop(permit);
                });
            }
            Accepted::Refuse(stream) => gate.refuse(stream, busy_line()),
        }
    }
}

/// The answer over the connection cap, one JSON line (built once).
fn busy_line() -> &'static [u8] {
    static LINE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    LINE.get_or_init(|| {
        let busy = Response::Error {
            message: format!(
                "lbd is serving {MAX_CONNECTIONS} control connections, the most it takes; try again"
            ),
        };
        let mut line = serde_json::to_vec(&busy).unwrap_or_default();
        line.push(b'\n');
        line
    })
}

/// One request line as [`read_request`] found it.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// A request (without its newline).
    Request(Vec<u8>),
    /// The peer closed the connection.
    Eof,
    /// More than [`MAX_REQUEST`] bytes without a newline.
    TooLong,
}

/// Read one line of at most `max` bytes: never buffers more than `max + 1` bytes.
async fn read_request<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    max: usize,
) -> std::io::Result<Line> {
    let mut buf = Vec::new();
    let n = (&mut *reader)
        .take(max as u64 + 1)
        .read_until(b'\n', &mut buf)
        .await?;
    if n == 0 {
        return Ok(Line::Eof);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        return Ok(Line::Request(buf));
    }
    if buf.len() > max {
        return Ok(Line::TooLong);
    }
    // The last line, without a newline, before the peer closed.
    Ok(Line::Request(buf))
}

async fn serve_connection<F, Fut>(stream: UnixStream, answer: F)
where
    F: Fn(Request) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let line = match tokio::time::timeout(IDLE_TIMEOUT, read_request(&mut reader, MAX_REQUEST))
            .await
        {
            Ok(Ok(line)) => line,
            // Idle too long, or the connection failed.
            Err(_) | Ok(Err(_)) => break,
        };
        let (response, last) = match line {
            Line::Eof => break,
            Line::TooLong => (
                Response::Error {
                    message: format!(
                        "request longer than {MAX_REQUEST} bytes; closing the connection"
                    ),
                },
                true,
            ),
            Line::Request(bytes) => {
                let response = match serde_json::from_slice::<Request>(&bytes) {
                    Ok(request) => answer(request).await,
                    Err(e) => Response::Error {
                        message: format!("bad request: {e}"),
                    },
                };
                (response, false)
            }
        };
        let Ok(mut out) = serde_json::to_string(&response) else {
            break;
        };
        out.push('\n');
        match tokio::time::timeout(WRITE_TIMEOUT, write.write_all(out.as_bytes())).await {
            Ok(Ok(())) if !last => {}
            _ => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_as_json_lines() {
        let r = Request::Explain {
            src: "192.0.2.1:4000".parse().unwrap(),
            dst: "198.51.100.10:80".parse().unwrap(),
            protocol: "tcp".into(),
            syn: true,
        };
        let s = serde_json::to_string(&r).unwrap();
        assert!(s.starts_with(r#"{"cmd":"explain""#), "{s}");
        assert_eq!(serde_json::from_str::<Request>(&s).unwrap(), r);
        let s = serde_json::to_string(&Request::Conns { limit: 5 }).unwrap();
        assert_eq!(s, r#"{"cmd":"conns","limit":5}"#);
    }

    #[tokio::test]
    async fn read_request_bounds_the_line() {
        let mut input: &[u8] = b"{\"cmd\":\"status\"}\nlast";
        assert_eq!(
            read_request(&mut input, 64).await.unwrap(),
            Line::Request(br#"{"cmd":"status"}"#.to_vec())
        );
        assert_eq!(
            read_request(&mut input, 64).await.unwrap(),
            Line::Request(b"last".to_vec())
        );
        assert_eq!(read_request(&mut input, 64).await.unwrap(), Line::Eof);
        // Exactly at the limit (newline included) is fine; one byte more is not.
        let mut line = vec![b'x'; 63];
        line.push(b'\n');
        assert_eq!(
            read_request(&mut line.as_slice(), 64).await.unwrap(),
            Line::Request(vec![b'x'; 63])
        );
        let long = vec![b'x'; 10_000];
        assert_eq!(
            read_request(&mut long.as_slice(), 64).await.unwrap(),
            Line::TooLong
        );
    }

    fn socket_path(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("lb-api-control-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir.join("lbd.sock")
    }

    async fn serve_status(path: &Path) {
        let listener = bind(path).unwrap();
        tokio::spawn(serve_with(listener, |_request| async {
            Response::Done {
                message: "ok".into(),
            }
        }));
    }

    async fn read_response(stream: UnixStream) -> Option<Response> {
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).await.ok()?;
        serde_json::from_str(&line).ok()
    }

    /// A huge line gets an error and the connection is closed, while lbd has read at
    /// most the limit (the rest is never buffered: the writer finds the socket closed).
    #[tokio::test]
    async fn oversized_request_is_refused() {
        let path = socket_path("long");
        serve_status(&path).await;
        let stream = UnixStream::connect(&path).await.unwrap();
        let (read, mut write) = stream.into_split();
        let writer = tokio::spawn(async move {
            let chunk = vec![b'a'; 1 << 16];
            let mut sent = 0usize;
            // Bounded: 64 MiB at most; lbd closes long before.
            while sent < 64 << 20 {
                if write.write_all(&chunk).await.is_err() {
                    break;
                }
                sent += chunk.len();
            }
            sent
        });
        let mut line = String::new();
        BufReader::new(read).read_line(&mut line).await.unwrap();
        let response: Response = serde_json::from_str(&line).unwrap();
        assert_eq!(
            response,
            Response::Error {
                message: format!("request longer than {MAX_REQUEST} bytes; closing the connection")
            }
        );
        let sent = writer.await.unwrap();
        assert!(sent < 64 << 20, "lbd kept reading: {sent} bytes");
        // A fresh connection is served normally.
        let r = call(&path, &Request::Status).await.unwrap();
        assert_eq!(
            r,
            Response::Done {
                message: "ok".into()
            }
        );
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    /// Over the cap a connection is told so and closed; idle connections are closed
    /// after the idle timeout, making room again.
    #[tokio::test(start_paused = true)]
    async fn connection_cap_and_idle_timeout() {
        let path = socket_path("cap");
        serve_status(&path).await;
        let mut held = Vec::new();
        for _ in 0..MAX_CONNECTIONS {
            held.push(UnixStream::connect(&path).await.unwrap());
        }
        // The served ones answer.
        let first = held.pop().unwrap();
        let (read, mut write) = first.into_split();
        write.write_all(b"{\"cmd\":\"status\"}\n").await.unwrap();
        let mut line = String::new();
        let mut read = BufReader::new(read);
        read.read_line(&mut line).await.unwrap();
        assert!(line.contains("\"done\""), "{line}");
        held.push(read.into_inner().reunite(write).unwrap());
        // One more: busy.
        let extra = UnixStream::connect(&path).await.unwrap();
        match read_response(extra).await {
            Some(Response::Error { message }) => {
                assert!(message.contains("the most it takes"), "{message}")
            }
            other => panic!("expected busy, got {other:?}"),
        }
        // lbctl over the cap: its request is read and dropped, the refusal arrives.
        match call(&path, &Request::Status).await {
            Ok(Response::Error { message }) => {
                assert!(message.contains("the most it takes"), "{message}")
            }
            other => panic!("expected busy, got {other:?}"),
        }
        // Idle: every held connection is closed by lbd (EOF) once the timeout passed.
        tokio::time::sleep(IDLE_TIMEOUT * 2).await;
        for s in held.drain(..) {
            let mut rest = Vec::new();
            let mut s = s;
            let n = tokio::time::timeout(Duration::from_secs(1), s.read_to_end(&mut rest))
                .await
                .expect("closed by lbd")
                .unwrap();
            assert_eq!(n, 0);
        }
        let r = call(&path, &Request::Status).await.unwrap();
        assert_eq!(
            r,
            Response::Done {
                message: "ok".into()
            }
        );
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }
}
