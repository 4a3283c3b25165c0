//! The accept loop: HTTP/1.1 connections served by hyper with a deadline for each
//! request's headers, and a graceful drain on shutdown.
//!
//! `axum::serve` sets no timer, so a client that sends its headers a byte at a time (or
//! opens connections and sends nothing) holds a socket and a task for as long as it
//! likes; a few thousand such clients exhaust the process's file descriptors. Here each
//! request's headers must arrive within `HEADER_READ_TIMEOUT` of the connection being
//! ready for them (`[server] header_timeout_seconds`), which also closes keep-alive
//! connections idle that long.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// Serves `app` on `listener` until `stop` resolves, then stops accepting, lets requests
/// in flight finish (idle connections close at once) and returns when all are done.
/// `header_timeout` bounds each request's headers, not its body: uploads of several GB
/// stream for as long as they take.
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
                request.map(Body::new)
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
