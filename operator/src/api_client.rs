//! The client regie talks to the API server with: kube's own layers (base URI, retries,
//! authentication, extra headers, timeouts, rustls) over HTTP/2 where the server offers it,
//! with a bounded pool of idle connections where it does not.
//!
//! kube's default client speaks HTTP/1 only, one request per connection, and keeps every
//! connection it ever opened: a reconcile applies a tenant's children together, so sixteen
//! reconciles at once held about 190 connections to the API server, each with its buffers and
//! TLS state, for the life of the process — measured, several MiB of a 30 MiB operator — and
//! every new one cost the server a TLS handshake. Over HTTP/2 (what client-go uses) all
//! requests and watches share one connection. regie makes no upgrade requests (exec, attach,
//! port-forward), the reason kube itself still offers HTTP/1 only.

use std::time::Duration;

use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use kube::client::retry::RetryPolicy;
use kube::client::{Body, ConfigExt, RustlsTlsError};
use kube::{Client, Config};
use tower::ServiceBuilder;
use tower::retry::RetryLayer;

/// How long an HTTP/1 connection may sit unused before it is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a quiet HTTP/2 connection is pinged, and how long the answer may take: all of
/// regie's requests share it, so a dead one must be noticed (client-go: 30 s and 15 s).
const PING_INTERVAL: Duration = Duration::from_secs(30);
const PING_TIMEOUT: Duration = Duration::from_secs(15);
/// HTTP/2 flow control, as Go's transport (client-go's) sets it. What a stream has received
/// but its reader has not yet taken counts against both windows; a watch whose reader is
/// busy — the controller's, while every reconcile slot is taken and each reconcile waits for
/// a response on the same connection — must hold back only itself. With the connection's
/// window 256 times a stream's, it would take that many stalled streams (regie has about 20
/// watches) to stall the responses; a window that grew with the measured bandwidth (hyper's
/// adaptive window) keeps both sizes equal, so one busy watch could stop everything.
const STREAM_WINDOW: u32 = 4 << 20;
const CONNECTION_WINDOW: u32 = 1 << 30;

/// A client for `config`: HTTP/2 when the server agrees; otherwise HTTP/1 keeping at most
/// `idle` unused connections open. A configured proxy gets kube's own client (HTTP/1,
/// unbounded): tunnelling is kube's business.
pub fn build(config: Config, idle: usize) -> kube::Result<Client> {
    if config.proxy_url.is_some() {
        return Client::try_from(config);
    }
    let mut tcp = HttpConnector::new();
    // The connector takes https URLs too; TLS is the next layer's.
    tcp.enforce_http(false);
    // HTTP/2 writes a request as several small frames on a connection that is rarely idle:
    // with Nagle's algorithm each waited for the server's delayed acknowledgement (40 ms on
    // Linux), which measured as 60 ms more for a tier change (Go, and so client-go, sets this).
    tcp.set_nodelay(true);
    let mut tls = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config.rustls_client_config()?)
        .https_or_http();
    if let Some(name) = &config.tls_server_name {
        let name = rustls::pki_types::ServerName::try_from(name.clone())
            .map_err(|e| kube::Error::RustlsTls(RustlsTlsError::InvalidServerName(e)))?;
        tls = tls.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name));
    }
    let mut connector =
        hyper_timeout::TimeoutConnector::new(tls.enable_http1().enable_http2().wrap_connector(tcp));
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    let http: HttpClient<_, Body> = HttpClient::builder(TokioExecutor::new())
        .pool_max_idle_per_host(idle)
        .pool_idle_timeout(IDLE_TIMEOUT)
        // Without a timer, idle timeouts and pings are never checked.
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .http2_keep_alive_interval(PING_INTERVAL)
        .http2_keep_alive_timeout(PING_TIMEOUT)
        .http2_keep_alive_while_idle(true)
        .http2_initial_stream_window_size(STREAM_WINDOW)
        .http2_initial_connection_window_size(CONNECTION_WINDOW)
        .build(connector);
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(
            config
                .default_retry
                .then(|| RetryLayer::new(RetryPolicy::server_retry())),
        )
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        // The retry policy and kube's client speak boxed errors.
        .map_err(tower::BoxError::from)
        .service(http);
    Ok(Client::new(service, config.default_namespace))
}
