//! The accept loop: HTTP/1.1 connections served by hyper with a deadline for each
//! request's headers, and a graceful drain on shutdown.
//!
//! `axum::serve` sets no timer, so a client that sends its headers a byte at a time (or
//! opens connections and sends nothing) holds a socket and a task for as long as it
//! likes; a few thousand such clients exhaust the process's file descriptors. Here each
//! request's headers must arrive within `[server] header_timeout_seconds` of the
//! connection being ready for them, which also closes keep-alive connections idle that
//! long. A body must then keep coming (`PacedBody`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

/// Serves `app` on `listener` until `stop` resolves, then stops accepting, lets requests
/// in flight finish (idle connections close at once) and returns when all are done.
/// `header_timeout` bounds each request's headers; a body gets as long to start and then
/// must keep coming (`PacedBody`): uploads of several GB stream for as long as they take.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    header_timeout: Duration,
    stop: impl Future<Output = ()>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let connections = GracefulShutdown::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let _ = stream.set_nodelay(true);
        let service = app
            .clone()
            .map_request(move |mut request: axum::http::Request<Incoming>| {
                request
                    .extensions_mut()
                    .insert(ConnectInfo::<SocketAddr>(peer));
                request.map(|body| Body::new(PacedBody::new(body, header_timeout)))
            })
            .map_err(|e: Infallible| match e {});
        let connection =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    connections.shutdown().await;
}

/// Errors of `accept` concern one connection (reset before it was accepted) or are
/// pressure (out of file descriptors): neither stops the server; the second waits a
/// moment so the loop does not spin while descriptors are short.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted
    ) {
        return;
    }
    tracing::warn!(error = %e, "cannot accept a connection; retrying in 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// What a client is told when its body stopped coming.
pub const TOO_SLOW: &str =
    "the request body arrived too slowly; send it at 500 bytes a second or more";

/// The body's error when it stopped coming.
#[derive(Debug)]
struct BodyTooSlow;

impl std::fmt::Display for BodyTooSlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(TOO_SLOW)
    }
}

impl std::error::Error for BodyTooSlow {}

/// Whether a body's read failed because it came too slowly.
pub fn too_slow(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(e) = cause {
        if e.is::<BodyTooSlow>() {
            return true;
        }
        cause = e.source();
    }
    false
}

/// Bytes a body must bring per second after its grace, as Apache's `mod_reqtimeout`
/// (`MinRate=500`): each 500 bytes received buy one more second.
const MIN_BYTES_PER_SECOND: u64 = 500;

/// The longest a body may stay silent, whatever it has earned (or its grace, if longer):
/// a client that sent a gigabyte fast has not bought weeks of holding a handler, and an
/// upload's file is never left untouched long enough to look abandoned.
const MAX_SILENCE: Duration = Duration::from_secs(600);

/// A request body that must keep coming: it gets `grace` from the handler's first read
/// (not from the headers: a handler may wait, e.g. for a password hash, before it reads,
/// and hyper asks an `Expect: 100-continue` client for the body only then), plus a
/// second for each 500 bytes received, and never more than `MAX_SILENCE` without data.
/// An upload of any size at 500 bytes a second or more is never cut; a client sending a
/// byte now and then to hold a connection and a handler is, with 408. The timer is armed only when a read has to wait, so bodies that
/// are empty or already here (a tracking pixel) cost nothing.
struct PacedBody {
    inner: Incoming,
    started: Option<Instant>,
    grace: Duration,
    received: u64,
    /// When the last data came.
    last: Option<Instant>,
    timer: Option<Pin<Box<Sleep>>>,
}

impl PacedBody {
    fn new(inner: Incoming, grace: Duration) -> PacedBody {
        PacedBody {
            inner,
            started: None,
            grace,
            received: 0,
            last: None,
            timer: None,
        }
    }

    fn deadline(&self, started: Instant) -> Instant {
        body_deadline(started, self.grace, self.received, self.last)
    }
}

/// When a body that started at `started`, with `grace`, and has brought `received` bytes
/// (the last at `last`) must have brought more.
fn body_deadline(
    started: Instant,
    grace: Duration,
    received: u64,
    last: Option<Instant>,
) -> Instant {
    let earned = Duration::from_millis(received.saturating_mul(1000) / MIN_BYTES_PER_SECOND);
    let silent_until = last.unwrap_or(started) + MAX_SILENCE.max(grace);
    (started + grace + earned).min(silent_until)
}

impl HttpBody for PacedBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let started = *this.started.get_or_insert_with(Instant::now);
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received += data.len() as u64;
                    this.last = Some(Instant::now());
                    let deadline = this.deadline(started);
                    if let Some(timer) = &mut this.timer {
                        timer.as_mut().reset(deadline);
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let deadline = this.deadline(started);
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTooSlow)))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_earns_time_but_never_long_silence() {
        let t0 = Instant::now();
        let grace = Duration::from_secs(20);
        // Nothing yet: the grace.
        assert_eq!(body_deadline(t0, grace, 0, None), t0 + grace);
        // 5,000 bytes buy ten more seconds.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(
            body_deadline(t0, grace, 5_000, Some(t1)),
            t0 + grace + Duration::from_secs(10)
        );
        // A gigabyte sent fast buys at most ten minutes of silence after it.
        assert_eq!(
            body_deadline(t0, grace, 1 << 30, Some(t1)),
            t1 + MAX_SILENCE
        );
        // A grace longer than that still holds.
        let long = Duration::from_secs(3600);
        assert_eq!(body_deadline(t0, long, 0, None), t0 + long);
    }
}
