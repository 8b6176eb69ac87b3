//! Prometheus metrics (prometheus-client, text format): what an operator graphs and alerts on.
//!
//! - [`Metrics::middleware`]: requests and their latency by route pattern (never the raw path, so
//!   hostile URLs cannot grow the label set), method and status.
//! - [`Metrics`] is an [`EventSink`]: every security event counts under its kind
//!   (`phaze_security_events_total`, every kind exported from zero so the first one is an
//!   increase), and failed logins also by client (`phaze_login_failures_by_client_total`, at most
//!   [`MAX_CLIENTS`] clients per process, then `client="other"`), for the review's "more than 10
//!   failures from one address in an hour".
//! - Gauges the portal sets: the argon2 queue ([`Metrics::argon2`]) and the mail queue
//!   ([`Metrics::set_mail_queue`]); store latency and errors by adapter
//!   ([`Metrics::store_series`], through [`Timed`]).
//! - [`MetricsAccess`]: who may read `/metrics` (configured networks, or a bearer token compared
//!   in constant time); everyone else must get the answer an unknown path gets.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderValue, AUTHORIZATION};
use actix_web::middleware::Next;
use ipnet::IpNet;
use phaze_events::{EventSink, SecurityEvent};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
pub use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::exponential_buckets;
use prometheus_client::registry::Registry;
use secrecy::{ExposeSecret, SecretString};
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// Clients a process keeps a failed-login series for; later ones count as `other`.
pub const MAX_CLIENTS: usize = 10_000;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: String,
    /// `2xx` … `5xx`.
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClientLabels {
    client: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreLabels {
    adapter: &'static str,
    operation: &'static str,
}

type Histograms<L> = Family<L, ShardedHistogram, fn() -> ShardedHistogram>;

fn request_buckets() -> ShardedHistogram {
    // 0.5 ms … ~4 s.
    ShardedHistogram::new(exponential_buckets(0.0005, 2.0, 14))
}

fn store_buckets() -> ShardedHistogram {
    // 50 µs … ~0.8 s.
    ShardedHistogram::new(exponential_buckets(0.00005, 2.0, 15))
}

/// One store operation's latency histogram and error counter.
#[derive(Clone, Debug)]
pub struct StoreSeries {
    latency: ShardedHistogram,
    errors: Counter,
}

impl StoreSeries {
    /// Records one call.
    pub fn observe(&self, took: Duration, failed: bool) {
        self.latency.observe(took);
        if failed {
            self.errors.inc();
        }
    }
}

/// The argon2 queue: hashes waiting for a slot, and running.
#[derive(Clone, Debug, Default)]
pub struct Argon2Gauges {
    /// Hashes waiting for a slot.
    pub waiting: Gauge,
    /// Hashes running.
    pub running: Gauge,
}

/// Every metric of one process. Cheap to share (`Arc`).
pub struct Metrics {
    registry: Registry,
    latency: Histograms<RouteLabels>,
    events: Family<KindLabels, Counter>,
    failures_by_client: Family<ClientLabels, Counter>,
    client_series: AtomicUsize,
    store_latency: Histograms<StoreLabels>,
    store_errors: Family<StoreLabels, Counter>,
    argon2: Argon2Gauges,
    mail_queue: Gauge,
    /// Unique per registry in the process (the key of the worker threads' caches).
    id: u64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A registry with every Phaze metric, security events at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("phaze");
        let latency = Histograms::<RouteLabels>::new_with_constructor(request_buckets as fn() -> _);
        registry.register(
            "http_request_duration_seconds",
            "Time from the request to the response head, by route pattern, method and status class",
            latency.clone(),
        );
        let events = Family::<KindLabels, Counter>::default();
        registry.register("security_events", "Security events by kind", events.clone());
        for kind in SecurityEvent::KINDS {
            let _ = events.get_or_create(&KindLabels { kind });
        }
        let failures_by_client = Family::<ClientLabels, Counter>::default();
        registry.register(
            "login_failures_by_client",
            "Failed logins by client address (IPv6 by /64); clients past the cap count as other",
            failures_by_client.clone(),
        );
        let store_latency =
            Histograms::<StoreLabels>::new_with_constructor(store_buckets as fn() -> _);
        registry.register(
            "store_operation_duration_seconds",
            "Store operations by adapter and operation",
            store_latency.clone(),
        );
        let store_errors = Family::<StoreLabels, Counter>::default();
        registry.register(
            "store_errors",
            "Failed store operations by adapter and operation",
            store_errors.clone(),
        );
        let argon2 = Argon2Gauges::default();
        registry.register(
            "argon2_waiting",
            "Password hashes waiting for a hashing slot",
            argon2.waiting.clone(),
        );
        registry.register(
            "argon2_running",
            "Password hashes running",
            argon2.running.clone(),
        );
        let mail_queue = Gauge::default();
        registry.register(
            "mail_queue_depth",
            "Messages waiting for delivery (read at each scrape)",
            mail_queue.clone(),
        );
        Self {
            registry,
            latency,
            events,
            failures_by_client,
            client_series: AtomicUsize::new(0),
            store_latency,
            store_errors,
            argon2,
            mail_queue,
            id: {
                static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
                NEXT.fetch_add(1, Ordering::Relaxed)
            },
        }
    }

    /// The argon2 gauges, for the hasher to move.
    pub fn argon2(&self) -> Argon2Gauges {
        self.argon2.clone()
    }

    /// Sets the mail queue depth (before a scrape is encoded).
    pub fn set_mail_queue(&self, depth: usize) {
        self.mail_queue
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }

    /// The series of one store operation, resolved once (a decorator keeps it and skips the
    /// label lookup on every call).
    pub fn store_series(&self, adapter: &'static str, operation: &'static str) -> StoreSeries {
        let labels = StoreLabels { adapter, operation };
        StoreSeries {
            latency: self.store_latency.get_or_create(&labels).clone(),
            errors: self.store_errors.get_or_create(&labels).clone(),
        }
    }

    /// One answered request.
    pub fn observe_request(&self, method: &str, route: String, status: u16, took: Duration) {
        let status = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        let labels = RouteLabels {
            method: known_method(method),
            route,
            status,
        };
        // Each worker thread keeps its own handles: the family's shared lock is taken once per
        // thread and series, not once per request.
        thread_local! {
            static SERIES: RefCell<HashMap<(u64, RouteLabels), ShardedHistogram>> =
                RefCell::new(HashMap::new());
        }
        let owner = self.id;
        SERIES.with(|cache| {
            let mut cache = cache.borrow_mut();
            let key = (owner, labels);
            if let Some(series) = cache.get(&key) {
                series.observe(took);
                return;
            }
            let series = self.latency.get_or_create(&key.1).clone();
            series.observe(took);
            // Bounded by the route table × methods × status classes; a process that builds
            // many registries (tests) starts over rather than grow.
            if cache.len() >= 4096 {
                cache.clear();
            }
            cache.insert(key, series);
        });
    }

    /// The registry in Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// The middleware: times every request under the route pattern that matched it (`unmatched`
    /// for none), so the label set is the route table, whatever paths clients send.
    pub async fn middleware(
        metrics: Arc<Metrics>,
        req: ServiceRequest,
        next: Next<impl MessageBody>,
    ) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
        let started = Instant::now();
        let method = req.method().clone();
        let res = next.call(req).await?;
        let route = res
            .request()
            .match_pattern()
            .unwrap_or_else(|| "unmatched".to_owned());
        metrics.observe_request(
            method.as_str(),
            route,
            res.status().as_u16(),
            started.elapsed(),
        );
        Ok(res)
    }
}

fn known_method(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

impl EventSink for Metrics {
    fn record(&self, event: &SecurityEvent) {
        self.events
            .get_or_create(&KindLabels { kind: event.kind() })
            .inc();
        if let SecurityEvent::LoginFailed { client, .. } = event {
            let mut labels = ClientLabels {
                client: client_label(*client),
            };
            // A new series only while under the cap (two threads adding one client at once
            // may both count it: the cap is approximate, never exceeded by more than a few).
            if self.failures_by_client.get(&labels).is_none()
                && self.client_series.fetch_add(1, Ordering::Relaxed) >= MAX_CLIENTS
            {
                labels.client = "other".to_owned();
            }
            self.failures_by_client.get_or_create(&labels).inc();
        }
    }
}

/// IPv4 as it is, IPv6 by its /64 (one host holds a whole /64).
fn client_label(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => IpNet::new(IpAddr::V6(v6), 64)
            .map(|n| n.trunc().to_string())
            .unwrap_or_else(|_| v6.to_string()),
    }
}

/// Who may read `/metrics`: a client in one of `networks`, or a request with
/// `Authorization: Bearer <token>`. With neither configured, nobody.
#[derive(Clone, Debug, Default)]
pub struct MetricsAccess {
    networks: Vec<IpNet>,
    token: Option<SecretString>,
}

impl MetricsAccess {
    /// Access from `networks` or with `token` (`None`: no token opens it).
    pub fn new(networks: Vec<IpNet>, token: Option<SecretString>) -> Self {
        Self { networks, token }
    }

    /// Whether a request from `client` with this `Authorization` header may read the metrics.
    pub fn allows(&self, client: IpAddr, authorization: Option<&HeaderValue>) -> bool {
        let client = canonical(client);
        if self.networks.iter().any(|n| n.contains(&client)) {
            return true;
        }
        let (Some(token), Some(header)) = (&self.token, authorization) else {
            return false;
        };
        let Some(presented) = header
            .as_bytes()
            .strip_prefix(b"Bearer ")
            .or_else(|| header.as_bytes().strip_prefix(b"bearer "))
        else {
            return false;
        };
        bool::from(presented.ct_eq(token.expose_secret().as_bytes()))
    }

    /// Whether the header is what `allows` wants, for a request from `req`'s resolved client.
    pub fn allows_request(&self, req: &actix_web::HttpRequest) -> bool {
        self.allows(
            crate::client::client_of(req).ip,
            req.headers().get(AUTHORIZATION),
        )
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

mod sharded;
mod timed;
pub use sharded::ShardedHistogram;
pub use timed::Timed;

#[cfg(test)]
mod tests;
