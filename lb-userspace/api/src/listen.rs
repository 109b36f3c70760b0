//! What every lbd listener (the control socket here, the metrics endpoint in
//! `lb_userspace::metrics`) does about connections it cannot afford:
//!
//! - at most `max` connections are served at once (a [`Semaphore`] permit per
//!   connection); one more is accepted and handed back as [`Accepted::Refuse`], so the
//!   server can say "busy" and close it at once, instead of holding a descriptor per
//!   client until health checks and netlink find none left;
//! - accept errors (`EMFILE`, `ENFILE`, `ENOBUFS`...) back off, 5 ms doubling up to 1 s,
//!   instead of retrying in a tight loop;
//! - both are logged once, then summarised at most once a minute ([`RateLog`]), so a
//!   flood cannot fill the disk with log lines.
//!
//! Idle timeouts are the servers' own (they know what a request looks like).

use std::{
    future::Future,
    io,
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    sync::{OwnedSemaphorePermit, Semaphore},
};

/// First pause after a failed accept; doubled per further failure.
const BACKOFF_MIN: Duration = Duration::from_millis(5);
/// Longest pause after a failed accept.
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// A repeated warning is summarised at most this often.
const LOG_EVERY: Duration = Duration::from_secs(60);
/// Refused connections being told so at once (each holds its descriptor for at most
/// [`REFUSE_TIME`]); beyond this, a refused connection is closed without a word.
const REFUSING: usize = 8;
/// How long a refused connection is kept to deliver the refusal: the client's request
/// is read and discarded meanwhile, so closing does not reset the connection (a TCP
/// close with unread data sends RST, which can destroy the refusal in flight).
const REFUSE_TIME: Duration = Duration::from_secs(1);
/// At most this much of a refused client's request is read and discarded.
const REFUSE_DRAIN: usize = 64 * 1024;

/// A listening socket [`Gate`] accepts from.
pub trait Listener: Send + 'static {
    /// An accepted connection.
    type Stream: std::os::fd::AsFd + Send + 'static;
    /// Accept one connection.
    fn accept_one(&self) -> impl Future<Output = io::Result<Self::Stream>> + Send;
}

impl Listener for tokio::net::UnixListener {
    type Stream = tokio::net::UnixStream;
    async fn accept_one(&self) -> io::Result<Self::Stream> {
        self.accept().await.map(|(s, _)| s)
    }
}

impl Listener for tokio::net::TcpListener {
    type Stream = tokio::net::TcpStream;
    async fn accept_one(&self) -> io::Result<Self::Stream> {
        self.accept().await.map(|(s, _)| s)
    }
}

/// What [`Gate::next`] hands back.
#[derive(Debug)]
pub enum Accepted<S> {
    /// Serve it; the connection counts against the cap until the permit is dropped.
    Serve(S, OwnedSemaphorePermit),
    /// Over the cap: hand it to [`Gate::refuse`].
    Refuse(S),
}

/// Decides when a repeated warning is worth a log line: the first time, then at most
/// once per `every`, with the number of occurrences not logged in between.
#[derive(Debug)]
pub struct RateLog {
    every: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLog {
    /// Log at most once per `every`.
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            last: None,
            suppressed: 0,
        }
    }

    /// One more occurrence at `now`: `Some(n)` when it should be logged (`n` = how
    /// many were not logged since the last line), else `None`.
    pub fn hit(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < self.every => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

/// The next pause after a failed accept, given the last one (zero after a success).
pub fn next_backoff(last: Duration) -> Duration {
    if last.is_zero() {
        BACKOFF_MIN
    } else {
        (last * 2).min(BACKOFF_MAX)
    }
}

/// A listener with a connection cap and accept-error backoff (see the module docs).
pub struct Gate<L> {
    listener: L,
    what: &'static str,
    max: usize,
    permits: Arc<Semaphore>,
    refusing: Arc<Semaphore>,
    backoff: Duration,
    errors: RateLog,
    refusals: RateLog,
}

impl<L: Listener> Gate<L> {
    /// Serve at most `max` (at least 1) connections of `listener` at once; `what`
    /// names it in logs ("control socket", "metrics").
    pub fn new(listener: L, what: &'static str, max: usize) -> Self {
        let max = max.max(1);
        Self {
            listener,
            what,
            max,
            permits: Arc::new(Semaphore::new(max)),
            refusing: Arc::new(Semaphore::new(REFUSING)),
            backoff: Duration::ZERO,
            errors: RateLog::new(LOG_EVERY),
            refusals: RateLog::new(LOG_EVERY),
        }
    }

    /// The cap.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Connections being served now.
    pub fn open(&self) -> usize {
        self.max - self.permits.available_permits()
    }

    /// Tell a refused client `message` and close: in a task holding the connection
    /// at most a second (reading what the client sent meanwhile), at most a few at
    /// once; beyond that the message is written only if that can be done at once,
    /// and the connection closed. Refusing never costs more than a handful of
    /// descriptors.
    pub fn refuse(&self, mut stream: L::Stream, message: &'static [u8])
    where
        L::Stream: AsyncRead + AsyncWrite + Unpin,
    {
        let Ok(permit) = self.refusing.clone().try_acquire_owned() else {
            // Too many being refused already: one non-blocking send (a new
            // connection's send buffer is empty), then close.
            let _ = socket2::SockRef::from(&stream).send(message);
            return;
        };
        tokio::spawn(async move {
            let _permit = permit;
            let _ = tokio::time::timeout(REFUSE_TIME, async {
                stream.write_all(message).await?;
                stream.shutdown().await?;
                let mut sink = [0u8; 4096];
                let mut read = 0;
                while read < REFUSE_DRAIN {
                    match stream.read(&mut sink).await? {
                        0 => break,
                        n => read += n,
                    }
                }
                Ok::<_, io::Error>(())
            })
            .await;
        });
    }

    /// The next connection; accept errors are logged (rate-limited) and retried after
    /// a growing pause, so this only returns with a connection.
    pub async fn next(&mut self) -> Accepted<L::Stream> {
        loop {
            match self.listener.accept_one().await {
                Ok(stream) => {
                    self.backoff = Duration::ZERO;
                    return match self.permits.clone().try_acquire_owned() {
                        Ok(permit) => Accepted::Serve(stream, permit),
                        Err(_) => {
                            if let Some(more) = self.refusals.hit(Instant::now()) {
                                tracing::warn!(
                                    listener = self.what,
                                    max = self.max,
                                    refused_since_last_report = more,
                                    "connection refused: at the connection cap (reported at most once a minute)"
                                );
                            }
                            Accepted::Refuse(stream)
                        }
                    };
                }
                Err(e) => {
                    self.backoff = next_backoff(self.backoff);
                    if let Some(more) = self.errors.hit(Instant::now()) {
                        tracing::warn!(
                            listener = self.what,
                            error = %e,
                            errors_since_last_report = more,
                            backoff_ms = self.backoff.as_millis() as u64,
                            "accept failed; backing off (reported at most once a minute)"
                        );
                    }
                    tokio::time::sleep(self.backoff).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_log_reports_first_then_once_per_period() {
        let t0 = Instant::now();
        let mut log = RateLog::new(Duration::from_secs(60));
        assert_eq!(log.hit(t0), Some(0));
        for i in 1..1000 {
            assert_eq!(log.hit(t0 + Duration::from_millis(i)), None);
        }
        assert_eq!(log.hit(t0 + Duration::from_secs(61)), Some(999));
        assert_eq!(log.hit(t0 + Duration::from_secs(62)), None);
    }

    #[test]
    fn backoff_doubles_and_is_bounded() {
        let mut d = Duration::ZERO;
        let mut seen = Vec::new();
        for _ in 0..20 {
            d = next_backoff(d);
            seen.push(d);
        }
        assert_eq!(seen[0], BACKOFF_MIN);
        assert_eq!(seen[1], BACKOFF_MIN * 2);
        assert!(seen.windows(2).all(|w| w[1] >= w[0]));
        assert_eq!(*seen.last().unwrap(), BACKOFF_MAX);
    }

    /// Over the cap a connection is accepted and refused; a finished one frees its slot.
    #[tokio::test]
    async fn cap_refuses_then_frees() {
        let dir = tempfile_dir();
        let path = dir.join("gate.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let mut gate = Gate::new(listener, "test", 2);
        let mut clients = Vec::new();
        for _ in 0..3 {
            clients.push(tokio::net::UnixStream::connect(&path).await.unwrap());
        }
        let a = gate.next().await;
        let b = gate.next().await;
        let c = gate.next().await;
        assert!(matches!(a, Accepted::Serve(..)));
        assert!(matches!(b, Accepted::Serve(..)));
        assert!(matches!(c, Accepted::Refuse(..)));
        assert_eq!(gate.open(), 2);
        drop(a);
        assert_eq!(gate.open(), 1);
        clients.push(tokio::net::UnixStream::connect(&path).await.unwrap());
        assert!(matches!(gate.next().await, Accepted::Serve(..)));
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "lb-api-gate-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
    /// A listener whose every accept fails with EMFILE.
    struct Exhausted(std::sync::atomic::AtomicUsize);

    impl Listener for Exhausted {
        type Stream = tokio::net::UnixStream;
        async fn accept_one(&self) -> io::Result<Self::Stream> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Err(io::Error::from_raw_os_error(libc_emfile()))
        }
    }

    fn libc_emfile() -> i32 {
        24 // EMFILE on Linux
    }

    /// Out of descriptors, the accept loop backs off instead of spinning: in a minute
    /// (of paused, virtual time) it tries about once a second, not millions of times.
    #[tokio::test(start_paused = true)]
    async fn accept_errors_back_off() {
        let mut gate = Gate::new(Exhausted(Default::default()), "test", 4);
        let waited = tokio::time::timeout(Duration::from_secs(60), gate.next()).await;
        assert!(waited.is_err(), "no connection can come");
        let calls = gate.listener.0.load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            (10..=80).contains(&calls),
            "{calls} accept attempts in a minute"
        );
    }
}
