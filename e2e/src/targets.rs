//! A loopback HTTP server that plays every kind of probe target: healthy, failing, flapping,
//! hanging, redirecting, or answering any status. The prober's tests, the scheduler benchmark
//! and the end-to-end tests point probes at it. It listens on 127.0.0.1 only, keeps
//! connections alive, and counts requests per URL and connections accepted, so a test can
//! prove that a target was (or was never) contacted and a benchmark can see connection reuse.
//!
//! | path | answer |
//! |---|---|
//! | `/healthy` | 200 |
//! | `/failing` | 503 |
//! | `/flapping?pattern=10` | follows the pattern per URL, `1` = 200, `0` = 503 (default `10`, alternating) |
//! | `/hanging` | nothing, until the client gives up (or [`TargetOptions::hang_for`] passes) |
//! | `/redirect-to?url=U&status=302` | a redirect to `U` |
//! | `/status/N` | status `N` |
//!
//! Any query string is allowed, so `/healthy?t=42` gives thousands of distinct targets.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::Response;
use axum::serve::ListenerExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How the server behaves.
#[derive(Clone, Debug)]
pub struct TargetOptions {
    /// How long `/hanging` holds a request before it answers 200 after all; it also stops
    /// hanging when the server shuts down.
    pub hang_for: Duration,
}

impl Default for TargetOptions {
    fn default() -> TargetOptions {
        TargetOptions {
            hang_for: Duration::from_secs(60),
        }
    }
}

#[derive(Default)]
struct Counts {
    /// By path and query, as requested.
    by_uri: HashMap<String, u64>,
    /// By path alone.
    by_path: HashMap<String, u64>,
}

struct Shared {
    options: TargetOptions,
    counts: Mutex<Counts>,
    requests: AtomicU64,
    connections: AtomicU64,
    user_agent: Mutex<Option<String>>,
    stop: watch::Sender<bool>,
}

/// A running target server; it stops when dropped.
pub struct TargetServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl TargetServer {
    /// Starts on 127.0.0.1 with a free port, on the current tokio runtime.
    pub async fn start() -> std::io::Result<TargetServer> {
        TargetServer::start_with(TargetOptions::default()).await
    }

    pub async fn start_with(options: TargetOptions) -> std::io::Result<TargetServer> {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let (stop, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            options,
            counts: Mutex::new(Counts::default()),
            requests: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            user_agent: Mutex::new(None),
            stop,
        });
        let counter = shared.clone();
        let listener = listener.tap_io(move |io| {
            counter.connections.fetch_add(1, Ordering::Relaxed);
            // Small answers must not wait for Nagle's algorithm on a kept-alive connection.
            let _ = io.set_nodelay(true);
        });
        let app = Router::new().fallback(answer).with_state(shared.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "target server stopped");
            }
        });
        Ok(TargetServer { addr, shared, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The full URL of a path (with any query) on this server.
    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{}", self.addr, path_and_query)
    }

    /// Requests for exactly this path and query.
    pub fn hits(&self, path_and_query: &str) -> u64 {
        self.counts(|c| c.by_uri.get(path_and_query).copied().unwrap_or(0))
    }

    /// Requests for this path, whatever the query.
    pub fn hits_path(&self, path: &str) -> u64 {
        self.counts(|c| c.by_path.get(path).copied().unwrap_or(0))
    }

    /// Every request so far.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }

    /// TCP connections accepted so far; with keep-alive, far fewer than requests.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::Relaxed)
    }

    /// The User-Agent of the latest request.
    pub fn last_user_agent(&self) -> Option<String> {
        self.shared
            .user_agent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn counts<T>(&self, f: impl FnOnce(&Counts) -> T) -> T {
        // A poisoned lock only means a handler panicked mid-count; the counts are still usable.
        let guard = self.shared.counts.lock().unwrap_or_else(|p| p.into_inner());
        f(&guard)
    }

    /// Stops accepting, and ends every hanging request.
    pub fn shutdown(&self) {
        self.shared.stop.send_replace(true);
        self.task.abort();
    }
}

impl Drop for TargetServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn status(code: StatusCode, body: &'static str) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = code;
    r
}

fn query_param(uri: &Uri, name: &str) -> Option<String> {
    let q = uri.query()?;
    url::form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

async fn answer(State(shared): State<Arc<Shared>>, headers: HeaderMap, uri: Uri) -> Response {
    let path = uri.path().to_string();
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    *shared.user_agent.lock().unwrap_or_else(|p| p.into_inner()) = agent;
    let key = uri
        .path_and_query()
        .map_or_else(|| path.clone(), |pq| pq.as_str().to_string());
    shared.requests.fetch_add(1, Ordering::Relaxed);
    let seen = {
        let mut c = shared.counts.lock().unwrap_or_else(|p| p.into_inner());
        *c.by_path.entry(path.clone()).or_default() += 1;
        let n = c.by_uri.entry(key).or_default();
        *n += 1;
        *n - 1
    };
    match path.as_str() {
        "/healthy" => status(StatusCode::OK, "ok\n"),
        "/failing" => status(StatusCode::SERVICE_UNAVAILABLE, "failing\n"),
        "/flapping" => {
            let pattern = query_param(&uri, "pattern")
                .filter(|p| !p.is_empty() && p.bytes().all(|b| b == b'0' || b == b'1'));
            let pattern = pattern.unwrap_or_else(|| "10".to_string());
            let up = pattern.as_bytes()[(seen as usize) % pattern.len()] == b'1';
            if up {
                status(StatusCode::OK, "up\n")
            } else {
                status(StatusCode::SERVICE_UNAVAILABLE, "down\n")
            }
        }
        "/hanging" => {
            let mut stop = shared.stop.subscribe();
            if !*stop.borrow() {
                tokio::select! {
                    () = tokio::time::sleep(shared.options.hang_for) => {}
                    _ = stop.changed() => {}
                }
            }
            status(StatusCode::OK, "finally\n")
        }
        "/redirect-to" => {
            let Some(to) = query_param(&uri, "url") else {
                return status(StatusCode::BAD_REQUEST, "redirect-to needs ?url=\n");
            };
            let code = query_param(&uri, "status")
                .and_then(|s| s.parse::<u16>().ok())
                .and_then(|s| StatusCode::from_u16(s).ok())
                .filter(StatusCode::is_redirection)
                .unwrap_or(StatusCode::FOUND);
            let mut r = status(code, "");
            match header::HeaderValue::from_str(&to) {
                Ok(v) => {
                    r.headers_mut().insert(header::LOCATION, v);
                    r
                }
                Err(_) => status(StatusCode::BAD_REQUEST, "url is not a valid header value\n"),
            }
        }
        p if p.starts_with("/status/") => {
            match p["/status/".len()..]
                .parse::<u16>()
                .ok()
                .and_then(|s| StatusCode::from_u16(s).ok())
            {
                Some(code) => status(code, "as asked\n"),
                None => status(StatusCode::BAD_REQUEST, "not a status\n"),
            }
        }
        _ => status(StatusCode::NOT_FOUND, "no such target\n"),
    }
}
