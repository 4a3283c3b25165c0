//! The store data of one plugin call: WASI with nothing granted, the memory cap, the
//! plugin's identity and grants, and its budget of host calls. Plugin stdout/stderr go
//! to `tracing`, tagged with the plugin's name.

use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Instant;

use wasmtime::StoreLimits;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::Limits;
use super::capabilities::Capability;
use crate::state::AppState;

/// Who is calling and what it may do; shared by the host functions of one call.
pub struct CallContext {
    pub plugin: String,
    pub granted: Vec<Capability>,
    /// Configuration values (the admin's, or the schema's defaults).
    pub config: Vec<(String, String)>,
    /// Event type keys the plugin declared (what `record-event` accepts from it).
    pub own_types: Vec<String>,
    /// The server, for host functions that reach the database. `None` while loading
    /// (`describe` must not call the host) and in benchmarks.
    pub state: Option<Weak<AppState>>,
    pub runtime: Option<tokio::runtime::Handle>,
    pub deadline: Instant,
    pub limits: Limits,
}

impl CallContext {
    /// A context with no grants and no server (loading, benchmarks).
    pub fn detached(plugin: &str, limits: Limits) -> CallContext {
        CallContext {
            plugin: plugin.to_owned(),
            granted: Vec::new(),
            config: Vec::new(),
            own_types: Vec::new(),
            state: None,
            runtime: None,
            deadline: Instant::now() + limits.call_timeout,
            limits,
        }
    }

    pub fn has(&self, c: &Capability) -> bool {
        self.granted.contains(c)
    }
}

/// Host calls one plugin call may make before it is stopped (a trap).
pub const MAX_HOST_CALLS: u32 = 10_000;
/// Outbound HTTP requests per call.
pub const MAX_HTTP_CALLS: u32 = 20;
/// Bytes of stdout/stderr logged per call (the rest is dropped).
const MAX_OUTPUT_BYTES: usize = 64 * 1024;

pub struct Sandbox {
    wasi: WasiCtx,
    table: ResourceTable,
    pub limits: StoreLimits,
    pub call: Arc<CallContext>,
    pub host_calls: u32,
    pub http_calls: u32,
}

impl Sandbox {
    pub fn new(call: Arc<CallContext>) -> Sandbox {
        let out = PluginOutput::new(&call.plugin);
        let mut wasi = WasiCtx::builder();
        // Nothing granted: no preopened directories, no environment, no arguments, no
        // sockets, no name lookups; stdin is closed.
        wasi.stdout(out.stream("stdout"))
            .stderr(out.stream("stderr"))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        let limits = wasmtime::StoreLimitsBuilder::new()
            .memory_size(call.limits.memory_bytes)
            .table_elements(100_000)
            .instances(64)
            .tables(64)
            .memories(16)
            .trap_on_grow_failure(true)
            .build();
        Sandbox {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limits,
            call,
            host_calls: 0,
            http_calls: 0,
        }
    }

    /// Counts a host call; past the budget the call is stopped.
    pub fn charge(&mut self) -> wasmtime::Result<()> {
        self.host_calls += 1;
        if self.host_calls > MAX_HOST_CALLS {
            return Err(wasmtime::format_err!(
                "plugin made more than {MAX_HOST_CALLS} host calls in one call"
            ));
        }
        Ok(())
    }
}

impl WasiView for Sandbox {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Lines a plugin writes, logged with its name.
#[derive(Clone)]
struct PluginOutput {
    plugin: Arc<str>,
    written: Arc<Mutex<usize>>,
}

impl PluginOutput {
    fn new(plugin: &str) -> PluginOutput {
        PluginOutput {
            plugin: plugin.into(),
            written: Arc::new(Mutex::new(0)),
        }
    }
    fn stream(&self, name: &'static str) -> LogStream {
        LogStream {
            out: self.clone(),
            name,
            partial: Arc::new(Mutex::new(Vec::new())),
        }
    }
}

#[derive(Clone)]
struct LogStream {
    out: PluginOutput,
    name: &'static str,
    partial: Arc<Mutex<Vec<u8>>>,
}

impl LogStream {
    fn write_bytes(&self, bytes: &[u8]) {
        let mut written = self.out.written.lock().unwrap_or_else(|e| e.into_inner());
        let room = MAX_OUTPUT_BYTES.saturating_sub(*written);
        let take = &bytes[..bytes.len().min(room)];
        *written += take.len();
        drop(written);
        let mut partial = self.partial.lock().unwrap_or_else(|e| e.into_inner());
        partial.extend_from_slice(take);
        while let Some(pos) = partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = partial.drain(..=pos).collect();
            self.emit(&line[..line.len() - 1]);
        }
    }
    fn emit(&self, line: &[u8]) {
        let line = String::from_utf8_lossy(line);
        if self.name == "stderr" {
            tracing::warn!(plugin = %self.out.plugin, stream = self.name, "{line}");
        } else {
            tracing::info!(plugin = %self.out.plugin, stream = self.name, "{line}");
        }
    }
}

impl Drop for LogStream {
    fn drop(&mut self) {
        // The last clone flushes an unterminated line.
        if Arc::strong_count(&self.partial) == 1 {
            let partial =
                std::mem::take(&mut *self.partial.lock().unwrap_or_else(|e| e.into_inner()));
            if !partial.is_empty() {
                self.emit(&partial);
            }
        }
    }
}

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

impl tokio::io::AsyncWrite for LogStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.write_bytes(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LogStream {
    async fn ready(&mut self) {}
}

impl OutputStream for LogStream {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.write_bytes(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}
