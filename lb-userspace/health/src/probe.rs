//! The I/O half of health checking: one probe of one backend, bounded by a
//! timeout, reduced to an [`Outcome`].
//!
//! Probe kinds mirror keepalived's checkers: TCP connect (`TCP_CHECK`), HTTP and
//! HTTPS GET with an expected status (`HTTP_GET`/`SSL_GET`) and an external
//! script (`MISC_CHECK`). Probes always connect to the backend's IP address;
//! names (Host header, TLS SNI and certificate name) come only from the
//! explicit `host` override, never from DNS.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hyper::header::{HeaderValue, CONNECTION, HOST, USER_AGENT};
use hyper::Request;
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::Instant;
use tracing::warn;

use super::state::Outcome;

/// What to do to decide whether a backend is healthy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Probe {
    /// Pass when a TCP connection to the target can be established.
    Tcp,
    /// Plain HTTP/1.1 `GET path`; pass when the status is in `expect_status`
    /// (an empty list accepts any 2xx).
    Http {
        /// Request path (origin form, e.g. `/healthz`); empty means `/`.
        path: String,
        /// Accepted status codes.
        expect_status: Vec<u16>,
        /// Host header override; defaults to the target `ip:port`.
        host: Option<String>,
    },
    /// HTTP/1.1 over TLS; as [`Probe::Http`] plus certificate handling.
    Https {
        /// Request path (origin form, e.g. `/healthz`); empty means `/`.
        path: String,
        /// Accepted status codes (an empty list accepts any 2xx).
        expect_status: Vec<u16>,
        /// Host header and TLS server name (SNI and the name the certificate
        /// is verified against). Without it no SNI is sent and the
        /// certificate must be valid for the target IP address.
        host: Option<String>,
        /// How the server certificate is verified.
        tls: TlsMode,
    },
    /// Run an external program with arguments `<address> <port>` and
    /// environment `LBD_BACKEND_ADDRESS`/`LBD_BACKEND_PORT`; pass on exit 0.
    /// It is killed (with its whole process group) at the timeout.
    Exec {
        /// Path of the executable.
        script: PathBuf,
    },
}

impl Probe {
    /// Short name of the probe kind, for logs: `tcp`, `http`, `https`, `exec`.
    pub fn kind(&self) -> &'static str {
        match self {
            Probe::Tcp => "tcp",
            Probe::Http { .. } => "http",
            Probe::Https { .. } => "https",
            Probe::Exec { .. } => "exec",
        }
    }
}

/// Server certificate verification for [`Probe::Https`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TlsMode {
    /// No verification at all (like keepalived's `SSL_GET`): any certificate
    /// is accepted, only the TLS handshake itself must succeed.
    Insecure,
    /// Verify against the CA certificate(s) in this PEM file (read on every
    /// probe, so a replaced file takes effect without a reload).
    VerifyWithCa(PathBuf),
    /// Verify against the operating system's trust store (loaded once).
    VerifySystemRoots,
}

/// Why a probe failed; its `Display` is the [`Outcome::Fail`] reason.
#[derive(Debug, thiserror::Error)]
enum ProbeError {
    #[error("connection refused")]
    Refused,
    #[error("timeout after {0:?}")]
    Timeout(Duration),
    #[error("connect error: {0}")]
    Connect(io::Error),
    #[error("HTTP status {0}")]
    HttpStatus(u16),
    #[error("HTTP error: {0}")]
    Http(String),
    #[error("TLS error: {0}")]
    Tls(String),
    #[error("exit status {0}")]
    ExitStatus(i32),
    #[error("killed by signal {0}")]
    Signal(i32),
    #[error("script ended abnormally: {0}")]
    ExitOther(ExitStatus),
    #[error("script timed out after {0:?}")]
    ScriptTimeout(Duration),
    #[error("cannot run {path}: {source}", path = .0.display(), source = .1)]
    Spawn(PathBuf, io::Error),
    #[error("waiting for script: {0}")]
    Wait(io::Error),
    /// The probe could not be made on this host (see [`is_local`]).
    #[error("{0}: {1}")]
    Local(&'static str, io::Error),
}

/// Whether `e` says this host is out of something (descriptors, buffers, memory,
/// local ports, processes) rather than anything about the backend: a probe failing
/// this way was never made, and must not count against the backend.
pub fn is_local(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::EMFILE
                | libc::ENFILE
                | libc::ENOBUFS
                | libc::ENOMEM
                | libc::EAGAIN
                | libc::EADDRNOTAVAIL
        )
    )
}

/// Probe `target` once and report the outcome. Never takes (much) longer than
/// `timeout`: network probes are abandoned at the deadline, scripts killed.
pub async fn probe(probe: &Probe, target: SocketAddr, timeout: Duration) -> Outcome {
    let start = Instant::now();
    let result = match probe {
        Probe::Tcp => deadline(timeout, connect(target)).await.map(drop),
        Probe::Http {
            path,
            expect_status,
            host,
        } => {
            let get = async {
                let stream = connect(target).await?;
                http_get(stream, target, path, host.as_deref()).await
            };
            deadline(timeout, get)
                .await
                .and_then(|status| check_status(status, expect_status))
        }
        Probe::Https {
            path,
            expect_status,
            host,
            tls,
        } => {
            let get = async {
                let config = tls_config(tls)?;
                let server_name = server_name(host.as_deref(), target)?;
                let stream = connect(target).await?;
                let tls_stream = tokio_rustls::TlsConnector::from(config)
                    .connect(server_name, stream)
                    .await
                    .map_err(|e| ProbeError::Tls(e.to_string()))?;
                http_get(tls_stream, target, path, host.as_deref()).await
            };
            deadline(timeout, get)
                .await
                .and_then(|status| check_status(status, expect_status))
        }
        // Owns its deadline: the script must be killed, not just abandoned.
        Probe::Exec { script } => exec(script, target, timeout).await,
    };
    match result {
        Ok(()) => Outcome::Pass {
            latency: start.elapsed(),
        },
        Err(e @ ProbeError::Local(..)) => Outcome::Local {
            reason: e.to_string(),
        },
        Err(e) => Outcome::Fail {
            reason: e.to_string(),
        },
    }
}

/// Run `fut`, abandoning it (dropping the socket) at `timeout`.
async fn deadline<T>(
    timeout: Duration,
    fut: impl Future<Output = Result<T, ProbeError>>,
) -> Result<T, ProbeError> {
    tokio::time::timeout(timeout, fut)
        .await
        .unwrap_or(Err(ProbeError::Timeout(timeout)))
}

async fn connect(target: SocketAddr) -> Result<TcpStream, ProbeError> {
    TcpStream::connect(target).await.map_err(|e| {
        if e.kind() == io::ErrorKind::ConnectionRefused {
            ProbeError::Refused
        } else if is_local(&e) {
            ProbeError::Local("connect", e)
        } else {
            ProbeError::Connect(e)
        }
    })
}

fn check_status(status: u16, expect: &[u16]) -> Result<(), ProbeError> {
    let ok = if expect.is_empty() {
        (200..300).contains(&status)
    } else {
        expect.contains(&status)
    };
    if ok {
        Ok(())
    } else {
        Err(ProbeError::HttpStatus(status))
    }
}

/// Send `GET path` over an established stream and return the response status.
/// The body is not read: the connection is dropped once the head arrived.
async fn http_get<S>(
    stream: S,
    target: SocketAddr,
    path: &str,
    host: Option<&str>,
) -> Result<u16, ProbeError>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let path = if path.is_empty() { "/" } else { path };
    let host = match host {
        Some(h) => HeaderValue::from_str(h),
        None => HeaderValue::from_str(&target.to_string()),
    }
    .map_err(|e| ProbeError::Http(format!("invalid Host header: {e}")))?;
    let request = Request::get(path)
        .header(HOST, host)
        .header(USER_AGENT, "lbd-health-check")
        .header(CONNECTION, "close")
        .body(String::new())
        .map_err(|e| ProbeError::Http(format!("invalid request: {e}")))?;

    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| ProbeError::Http(e.to_string()))?;
    // Drive the connection in this task (no spawn), so that dropping the
    // probe future (timeout) tears everything down.
    let response = {
        let send = sender.send_request(request);
        tokio::pin!(conn, send);
        tokio::select! {
            biased;
            r = &mut send => r,
            // The connection can finish in the same poll that delivered the
            // response (`Connection: close`); the request future then holds
            // either that response or the connection's error.
            _ = &mut conn => send.await,
        }
        .map_err(|e| ProbeError::Http(e.to_string()))?
    };
    Ok(response.status().as_u16())
}

/// The TLS server name: the `host` override without any `:port`, else the IP.
fn server_name(host: Option<&str>, target: SocketAddr) -> Result<ServerName<'static>, ProbeError> {
    let Some(host) = host else {
        return Ok(ServerName::IpAddress(target.ip().into()));
    };
    let name = strip_port(host);
    ServerName::try_from(name.to_string())
        .map_err(|e| ProbeError::Tls(format!("invalid server name {name:?}: {e}")))
}

/// `example.com:8443` -> `example.com`, `[::1]:443` -> `::1`; anything else unchanged.
fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split_once(']').map_or(host, |(addr, _)| addr);
    }
    match host.rsplit_once(':') {
        Some((name, port))
            if !name.contains(':')
                && !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit()) =>
        {
            name
        }
        _ => host,
    }
}

fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

fn tls_config(mode: &TlsMode) -> Result<Arc<ClientConfig>, ProbeError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ProbeError::Tls(e.to_string()))?;
    let mut config = match mode {
        TlsMode::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
            .with_no_client_auth(),
        TlsMode::VerifyWithCa(path) => builder
            .with_root_certificates(ca_file_roots(path)?)
            .with_no_client_auth(),
        TlsMode::VerifySystemRoots => builder
            .with_root_certificates(system_roots())
            .with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn ca_file_roots(path: &Path) -> Result<RootCertStore, ProbeError> {
    let ca_err = |what: String| ProbeError::Tls(format!("CA file {}: {what}", path.display()));
    let mut roots = RootCertStore::empty();
    let iter = CertificateDer::pem_file_iter(path).map_err(|e| ca_err(e.to_string()))?;
    for cert in iter {
        let cert = cert.map_err(|e| ca_err(e.to_string()))?;
        roots.add(cert).map_err(|e| ca_err(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(ca_err("no certificates found".to_string()));
    }
    Ok(roots)
}

/// The system trust store, loaded once per process (it is read from disk and
/// a few hundred certificates long; not worth doing per probe).
fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let loaded = rustls_native_certs::load_native_certs();
            for e in &loaded.errors {
                warn!(error = %e, "health: problem loading system root certificates");
            }
            let mut roots = RootCertStore::empty();
            let (added, ignored) = roots.add_parsable_certificates(loaded.certs);
            if ignored > 0 || added == 0 {
                warn!(added, ignored, "health: system root certificates loaded");
            }
            Arc::new(roots)
        })
        .clone()
}

/// Accepts any server certificate (still checks handshake signatures, so the
/// TLS session itself is sound). Used only for [`TlsMode::Insecure`].
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A spawned script leading its own process group. Until it has been reaped,
/// dropping this kills the whole group (the unreaped leader keeps the process
/// group id from being reused), so a timed-out or cancelled check leaves no
/// stray processes behind.
struct GroupChild {
    child: Child,
    pgid: Option<i32>,
}

impl GroupChild {
    fn kill_group(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            // SAFETY: kill(2) has no memory-safety preconditions; the group id
            // belongs to our unreaped child, so it cannot name anyone else.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }

    async fn wait(&mut self) -> io::Result<ExitStatus> {
        let status = self.child.wait().await;
        if status.is_ok() {
            // Reaped: the id may be reused from now on.
            self.pgid = None;
        }
        status
    }
}

impl Drop for GroupChild {
    fn drop(&mut self) {
        self.kill_group();
    }
}

async fn exec(script: &Path, target: SocketAddr, timeout: Duration) -> Result<(), ProbeError> {
    let address = target.ip().to_string();
    let port = target.port().to_string();
    let child = Command::new(script)
        .arg(&address)
        .arg(&port)
        .env("LBD_BACKEND_ADDRESS", &address)
        .env("LBD_BACKEND_PORT", &port)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            if is_local(&e) {
                ProbeError::Local("starting the script", e)
            } else {
                ProbeError::Spawn(script.to_path_buf(), e)
            }
        })?;
    let pgid = child.id().and_then(|id| i32::try_from(id).ok());
    let mut child = GroupChild { child, pgid };

    let status = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(status) => status.map_err(ProbeError::Wait)?,
        Err(_) => {
            child.kill_group();
            // Reap the leader; SIGKILL makes this prompt.
            let _ = child.child.wait().await;
            return Err(ProbeError::ScriptTimeout(timeout));
        }
    };
    exit_result(status)
}

fn exit_result(status: ExitStatus) -> Result<(), ProbeError> {
    use std::os::unix::process::ExitStatusExt;
    if status.success() {
        Ok(())
    } else if let Some(code) = status.code() {
        Err(ProbeError::ExitStatus(code))
    } else if let Some(signal) = status.signal() {
        Err(ProbeError::Signal(signal))
    } else {
        Err(ProbeError::ExitOther(status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;

    const TIMEOUT: Duration = Duration::from_secs(2);

    fn reason(o: &Outcome) -> &str {
        match o {
            Outcome::Pass { .. } => "<pass>",
            Outcome::Fail { reason } | Outcome::Local { reason } => reason,
        }
    }

    async fn listener() -> (TcpListener, SocketAddr) {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let a = l.local_addr().expect("local_addr");
        (l, a)
    }

    async fn closed_port() -> SocketAddr {
        let (l, a) = listener().await;
        drop(l);
        a
    }

    /// Read a request head from `s` and return it as text.
    async fn read_head<S: AsyncRead + Unpin>(s: &mut S) -> String {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut chunk).await.expect("read");
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        String::from_utf8_lossy(&buf).into_owned()
    }

    fn response(status: u16) -> String {
        format!("HTTP/1.1 {status} Whatever\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
    }

    /// A server answering every connection with `status`; request heads are
    /// sent to the returned channel.
    async fn http_server(status: u16) -> (SocketAddr, mpsc::UnboundedReceiver<String>) {
        let (l, addr) = listener().await;
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let head = read_head(&mut s).await;
                let _ = tx.send(head);
                let _ = s.write_all(response(status).as_bytes()).await;
                let _ = s.shutdown().await;
            }
        });
        (addr, rx)
    }

    fn http(expect: &[u16], host: Option<&str>) -> Probe {
        Probe::Http {
            path: "/healthz".into(),
            expect_status: expect.to_vec(),
            host: host.map(str::to_string),
        }
    }

    #[tokio::test]
    async fn tcp_pass_and_refused() {
        let (_l, addr) = listener().await;
        let o = probe(&Probe::Tcp, addr, TIMEOUT).await;
        assert!(o.is_pass(), "{o}");

        let o = probe(&Probe::Tcp, closed_port().await, TIMEOUT).await;
        assert_eq!(reason(&o), "connection refused");
    }

    #[tokio::test]
    async fn http_status() {
        let (addr, mut heads) = http_server(200).await;
        let o = probe(&http(&[200], None), addr, TIMEOUT).await;
        assert!(o.is_pass(), "{o}");
        let head = heads.recv().await.expect("request head");
        assert!(head.starts_with("GET /healthz HTTP/1.1\r\n"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains(&format!("host: {addr}\r\n")),
            "{head}"
        );

        let o = probe(&http(&[200], Some("svc.example")), addr, TIMEOUT).await;
        assert!(o.is_pass(), "{o}");
        let head = heads.recv().await.expect("request head");
        assert!(
            head.to_ascii_lowercase().contains("host: svc.example\r\n"),
            "{head}"
        );

        // Empty expectation: any 2xx.
        let o = probe(&http(&[], None), addr, TIMEOUT).await;
        assert!(o.is_pass(), "{o}");

        let (addr, _heads) = http_server(503).await;
        let o = probe(&http(&[200, 204], None), addr, TIMEOUT).await;
        assert_eq!(reason(&o), "HTTP status 503");
        let o = probe(&http(&[503], None), addr, TIMEOUT).await;
        assert!(o.is_pass(), "{o}");
    }

    #[tokio::test]
    async fn http_timeout_and_refused() {
        let (l, addr) = listener().await;
        // Accept and hold connections without ever answering.
        let _server = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                held.push(s);
            }
        });
        let t = Duration::from_millis(200);
        let start = std::time::Instant::now();
        let o = probe(&http(&[200], None), addr, t).await;
        assert_eq!(reason(&o), "timeout after 200ms");
        assert!(start.elapsed() < Duration::from_secs(2));

        let o = probe(&http(&[200], None), closed_port().await, TIMEOUT).await;
        assert_eq!(reason(&o), "connection refused");
    }

    struct TlsServer {
        addr: SocketAddr,
        cert_file: tempfile::NamedTempFile,
    }

    /// An HTTPS server with a fresh self-signed certificate for `backend.test`.
    async fn tls_server() -> TlsServer {
        let ck = rcgen::generate_simple_self_signed(vec!["backend.test".to_string()])
            .expect("generate cert");
        let cert_file = tempfile::NamedTempFile::new().expect("tempfile");
        std::fs::write(cert_file.path(), ck.cert.pem()).expect("write cert");
        let key = rustls::pki_types::PrivateKeyDer::try_from(ck.signing_key.serialize_der())
            .expect("key der");
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![ck.cert.der().clone()], key)
            .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let (l, addr) = listener().await;
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut s) = acceptor.accept(s).await else {
                        return;
                    };
                    let _ = read_head(&mut s).await;
                    let _ = s.write_all(response(200).as_bytes()).await;
                    let _ = s.shutdown().await;
                });
            }
        });
        TlsServer { addr, cert_file }
    }

    fn https(host: Option<&str>, tls: TlsMode) -> Probe {
        Probe::Https {
            path: "/".into(),
            expect_status: vec![200],
            host: host.map(str::to_string),
            tls,
        }
    }

    #[tokio::test]
    async fn https_modes() {
        let srv = tls_server().await;
        let ca = TlsMode::VerifyWithCa(srv.cert_file.path().to_path_buf());

        let o = probe(&https(None, TlsMode::Insecure), srv.addr, TIMEOUT).await;
        assert!(o.is_pass(), "insecure: {o}");

        let o = probe(&https(Some("backend.test"), ca.clone()), srv.addr, TIMEOUT).await;
        assert!(o.is_pass(), "custom CA + matching name: {o}");
        let o = probe(
            &https(Some("backend.test:8443"), ca.clone()),
            srv.addr,
            TIMEOUT,
        )
        .await;
        assert!(o.is_pass(), "custom CA + name with port: {o}");

        let o = probe(&https(Some("other.test"), ca.clone()), srv.addr, TIMEOUT).await;
        assert!(reason(&o).starts_with("TLS error:"), "name mismatch: {o}");
        let o = probe(&https(None, ca), srv.addr, TIMEOUT).await;
        assert!(reason(&o).starts_with("TLS error:"), "IP not in cert: {o}");

        let o = probe(
            &https(Some("backend.test"), TlsMode::VerifySystemRoots),
            srv.addr,
            TIMEOUT,
        )
        .await;
        assert!(reason(&o).starts_with("TLS error:"), "system roots: {o}");

        let missing = TlsMode::VerifyWithCa("/nonexistent/ca.pem".into());
        let o = probe(&https(Some("backend.test"), missing), srv.addr, TIMEOUT).await;
        assert!(
            reason(&o).starts_with("TLS error: CA file /nonexistent/ca.pem"),
            "{o}"
        );

        // A plain-text server answering at once: the handshake fails.
        let (l, addr) = listener().await;
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let _ = s.write_all(response(200).as_bytes()).await;
                let _ = read_head(&mut s).await;
            }
        });
        let o = probe(&https(None, TlsMode::Insecure), addr, TIMEOUT).await;
        assert!(reason(&o).starts_with("TLS error:"), "{o}");
    }

    /// Running out of something on this host is told apart from the backend failing.
    #[test]
    fn local_errors_are_classified() {
        for errno in [
            libc::EMFILE,
            libc::ENFILE,
            libc::ENOBUFS,
            libc::ENOMEM,
            libc::EAGAIN,
            libc::EADDRNOTAVAIL,
        ] {
            assert!(is_local(&io::Error::from_raw_os_error(errno)), "{errno}");
        }
        for errno in [
            libc::ECONNREFUSED,
            libc::EHOSTUNREACH,
            libc::ENETUNREACH,
            libc::ETIMEDOUT,
            libc::ECONNRESET,
            libc::ENOENT,
            libc::EACCES,
        ] {
            assert!(!is_local(&io::Error::from_raw_os_error(errno)), "{errno}");
        }
        assert!(!is_local(&io::Error::other("no errno")));
    }

    /// With no descriptor left, a TCP probe reports a local error, not a failure.
    /// (Runs in a child process: the limit must not starve the other tests.)
    #[test]
    fn probe_without_descriptors_is_local() {
        if std::env::var_os("LB_HEALTH_EMFILE_CHILD").is_none() {
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "probe::tests::probe_without_descriptors_is_local",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("LB_HEALTH_EMFILE_CHILD", "1")
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{text}");
            assert!(
                text.contains("outcome: not checked (local error: connect: "),
                "{text}"
            );
            return;
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (_l, addr) = listener().await;
            // Use up every descriptor below the limit, then probe.
            let mut hog = Vec::new();
            // SAFETY: plain getrlimit/setrlimit on a local struct.
            unsafe {
                let mut lim = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
                lim.rlim_cur = 256.min(lim.rlim_max);
                assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
            }
            while let Ok(f) = std::fs::File::open("/dev/null") {
                hog.push(f);
                assert!(hog.len() < 4096, "the limit did not apply");
            }
            let o = probe(&Probe::Tcp, addr, TIMEOUT).await;
            drop(hog);
            println!("outcome: {o}");
            assert!(o.is_local(), "{o}");
        });
    }

    #[test]
    fn strip_port_cases() {
        assert_eq!(strip_port("a.example"), "a.example");
        assert_eq!(strip_port("a.example:8443"), "a.example");
        assert_eq!(strip_port("[::1]:443"), "::1");
        assert_eq!(strip_port("[::1]"), "::1");
        assert_eq!(strip_port("::1"), "::1");
        assert_eq!(strip_port("a.example:"), "a.example:");
    }

    /// All exec cases in one test: scripts are written before any is run, so
    /// no concurrently forked child can hold a script open for writing
    /// (which would make exec fail with ETXTBSY).
    #[tokio::test]
    async fn exec_scripts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let args_file = dir.path().join("args");
        let write = |name: &str, body: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
            Probe::Exec { script: path }
        };
        let ok = write(
            "ok.sh",
            &format!(
                "echo \"$1 $2 $LBD_BACKEND_ADDRESS $LBD_BACKEND_PORT\" > '{}'\nexit 0",
                args_file.display()
            ),
        );
        let fail = write("fail.sh", "exit 1");
        let pid_file = dir.path().join("pid");
        let slow = write(
            "slow.sh",
            &format!("sleep 30 &\necho $! > '{}'\nwait", pid_file.display()),
        );
        let target: SocketAddr = "127.0.0.2:8080".parse().expect("addr");

        let o = probe(&ok, target, TIMEOUT).await;
        assert!(o.is_pass(), "{o}");
        let args = std::fs::read_to_string(&args_file).expect("args file");
        assert_eq!(args.trim(), "127.0.0.2 8080 127.0.0.2 8080");

        let o = probe(&fail, target, TIMEOUT).await;
        assert_eq!(reason(&o), "exit status 1");

        let start = std::time::Instant::now();
        let o = probe(&slow, target, Duration::from_millis(200)).await;
        assert!(reason(&o).contains("timed out"), "{o}");
        assert!(start.elapsed() < Duration::from_secs(2));
        // The script's own child (same process group) was killed too: within
        // a moment (SIGKILL takes effect when it is next scheduled) it is gone
        // or a zombie awaiting its new parent.
        let pid = std::fs::read_to_string(&pid_file).expect("pid file");
        let stat_path = format!("/proc/{}/stat", pid.trim());
        let mut last = String::new();
        let killed = (0..200).any(|_| {
            let Ok(stat) = std::fs::read_to_string(&stat_path) else {
                return true;
            };
            let state = stat.rsplit(") ").next().and_then(|s| s.chars().next());
            if matches!(state, Some('Z' | 'X')) {
                return true;
            }
            last = stat;
            std::thread::sleep(Duration::from_millis(10));
            false
        });
        assert!(killed, "grandchild still alive: {last}");

        let missing = Probe::Exec {
            script: dir.path().join("missing.sh"),
        };
        let o = probe(&missing, target, TIMEOUT).await;
        assert!(reason(&o).starts_with("cannot run "), "{o}");
    }
}
