//! `host.http-fetch`: outbound HTTP, only to origins the admin granted (`http:`
//! patterns), never to loopback/private addresses unless `private-network` is granted
//! too. Names are resolved here and every resolved address is checked, so a granted
//! name cannot be pointed at an internal address (DNS rebinding). No proxies from the
//! environment, no redirects, bounded response size, bounded time.

use std::io::Read;
use std::time::{Duration, Instant};

use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

use super::{Error, HostResult, HttpRequest, HttpResponse, Pair, Sandbox};
use crate::plugins::capabilities::{self, Capability, Target};
use crate::plugins::sandbox::MAX_HTTP_CALLS;

const METHODS: [&str; 6] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"];
const MAX_REQUEST_BODY: usize = 4 << 20;
const MAX_TIMEOUT: Duration = Duration::from_secs(30);

/// Resolves like the default resolver, then keeps only the addresses the plugin may
/// reach.
#[derive(Debug)]
struct CheckedResolver {
    granted: Vec<Capability>,
}

impl Resolver for CheckedResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let all = DefaultResolver::default().resolve(uri, config, timeout)?;
        let mut kept = self.empty();
        for addr in all.iter() {
            if capabilities::address_allowed(&self.granted, addr.ip()) {
                kept.push(*addr);
            }
        }
        if kept.is_empty() {
            return Err(ureq::Error::Io(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                "private network address refused (grant `private-network` to allow it)",
            )));
        }
        Ok(kept)
    }
}

pub fn fetch(s: &mut Sandbox, r: HttpRequest) -> HostResult<HttpResponse> {
    s.http_calls += 1;
    if s.http_calls > MAX_HTTP_CALLS {
        return Ok(Err(Error::Denied(format!(
            "at most {MAX_HTTP_CALLS} HTTP requests per call"
        ))));
    }
    Ok(fetch_checked(s, r))
}

fn denied(m: impl Into<String>) -> Error {
    Error::Denied(m.into())
}

fn fetch_checked(s: &Sandbox, r: HttpRequest) -> Result<HttpResponse, Error> {
    let method = r.method.to_ascii_uppercase();
    if !METHODS.contains(&method.as_str()) {
        return Err(Error::InvalidInput(format!(
            "the method `{}` is not allowed",
            r.method
        )));
    }
    let target = Target::from_url(&r.url).map_err(Error::InvalidInput)?;
    if !capabilities::origin_allowed(&s.call.granted, &target) {
        return Err(denied(format!(
            "{}://{}:{} is not an origin the admin granted to `{}`",
            target.scheme, target.host, target.port, s.call.plugin
        )));
    }
    // An address literal is checked before connecting, with a clear message.
    if let Ok(ip) = target.host.parse::<std::net::IpAddr>()
        && !capabilities::address_allowed(&s.call.granted, ip)
    {
        return Err(denied(format!(
            "{ip} is a private network address (grant `private-network` to allow it)"
        )));
    }
    if r.body.as_ref().is_some_and(|b| b.len() > MAX_REQUEST_BODY) {
        return Err(Error::InvalidInput(
            "the request body is larger than 4 MiB".into(),
        ));
    }
    let remaining = s.call.deadline.saturating_duration_since(Instant::now());
    let wanted = r
        .timeout_ms
        .map_or(MAX_TIMEOUT, |ms| Duration::from_millis(u64::from(ms)));
    let timeout = wanted
        .min(MAX_TIMEOUT)
        .min(remaining.max(Duration::from_millis(1)));

    let config = ureq::Agent::config_builder()
        .proxy(None)
        .max_redirects(0)
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .user_agent(format!("Magpie-plugin/{}", s.call.plugin))
        .build();
    let agent = ureq::Agent::with_parts(
        config,
        DefaultConnector::new(),
        CheckedResolver {
            granted: s.call.granted.clone(),
        },
    );
    let mut builder = ureq::http::Request::builder()
        .method(method.as_str())
        .uri(&r.url);
    for h in &r.headers {
        let name = h.name.to_ascii_lowercase();
        if matches!(
            name.as_str(),
            "host" | "content-length" | "transfer-encoding" | "connection"
        ) {
            continue;
        }
        builder = builder.header(h.name.as_str(), h.value.as_str());
    }
    let request = builder
        .body(r.body.unwrap_or_default())
        .map_err(|e| Error::InvalidInput(format!("invalid request: {e}")))?;
    let response = agent.run(request).map_err(|e| match e {
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::PermissionDenied => {
            denied(io.to_string())
        }
        ureq::Error::Timeout(_) => Error::Unavailable("the request timed out".into()),
        other => Error::Unavailable(format!("the request failed: {other}")),
    })?;
    let status = response.status().as_u16();
    let headers: Vec<Pair> = response
        .headers()
        .iter()
        .take(200)
        .map(|(k, v)| Pair {
            name: k.as_str().to_owned(),
            value: String::from_utf8_lossy(v.as_bytes()).into_owned(),
        })
        .collect();
    let cap = s.call.limits.max_http_response_bytes;
    let mut body = Vec::new();
    response
        .into_body()
        .into_reader()
        .take(cap as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| Error::Unavailable(format!("reading the response failed: {e}")))?;
    if body.len() > cap {
        return Err(Error::Unavailable(format!(
            "the response is larger than {cap} bytes"
        )));
    }
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}
