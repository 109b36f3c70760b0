//! The control protocol between `lbctl` and `lbd`: one JSON request per line on a Unix
//! socket, one JSON response line back. The socket is created mode 0600 (root only).

use std::{net::SocketAddr, path::Path};

use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream},
    sync::{mpsc, oneshot},
};

use crate::view::{ConnView, ExplainView, HealthView, ServiceView, StatusView, VrrpView};

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

/// Serve lbctl connections forever: each line is a request, answered by `answer`
/// (lbd routes reads to its observers and writes to its main loop). Connections are
/// served concurrently; requests on one connection in order.
pub async fn serve_with<F, Fut>(listener: UnixListener, answer: F)
where
    F: Fn(Request) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Response> + Send,
{
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "control socket accept failed");
                continue;
            }
        };
        let answer = answer.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut lines = BufReader::new(read).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let response = match serde_json::from_str::<Request>(&line) {
                    Ok(request) => answer(request).await,
                    Err(e) => Response::Error {
                        message: format!("bad request: {e}"),
                    },
                };
                let Ok(mut out) = serde_json::to_string(&response) else {
                    break;
                };
                out.push('\n');
                if write.write_all(out.as_bytes()).await.is_err() {
                    break;
                }
            }
        });
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
}
