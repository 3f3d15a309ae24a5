//! Prometheus metrics at `/metrics`: requests by route and status, request latency,
//! and authentication outcomes.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::auth::AuthOutcome;
use crate::state::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AuthLabels {
    outcome: &'static str,
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily,
    auth: Family<AuthLabels, Counter>,
    deliveries: Family<DeliveryLabels, Counter>,
    delivery_latency: Histogram,
    queue_depth: Gauge,
    queue_oldest_seconds: Gauge,
    carrier_callbacks: Family<CallbackLabels, Counter>,
    mcp_plain_calls: Counter,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct CallbackLabels {
    carrier: &'static str,
    outcome: &'static str,
}

fn latency_histogram() -> Histogram {
    // 100 µs to ~3.3 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("dialtone");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency: HistogramFamily = Family::new_with_constructor(latency_histogram);
        let auth = Family::<AuthLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by method, route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by method and route",
            latency.clone(),
        );
        registry.register(
            "auth_outcomes",
            "API key authentication outcomes",
            auth.clone(),
        );
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        let delivery_latency = latency_histogram();
        let queue_depth = Gauge::default();
        let queue_oldest_seconds = Gauge::default();
        registry.register(
            "webhook_attempts",
            "Webhook delivery attempts by outcome",
            deliveries.clone(),
        );
        registry.register(
            "webhook_attempt_duration_seconds",
            "Webhook attempt latency",
            delivery_latency.clone(),
        );
        registry.register(
            "webhook_queue_depth",
            "Webhook deliveries waiting",
            queue_depth.clone(),
        );
        registry.register(
            "webhook_queue_oldest_age_seconds",
            "Age of the oldest waiting webhook delivery",
            queue_oldest_seconds.clone(),
        );
        let carrier_callbacks = Family::<CallbackLabels, Counter>::default();
        registry.register(
            "carrier_callbacks",
            "Requests from carriers by outcome (accepted, bad_signature, unknown)",
            carrier_callbacks.clone(),
        );
        let mcp_plain_calls = Counter::default();
        registry.register(
            "mcp_plain_tool_calls",
            "Stateless MCP tools/call requests answered without rmcp's per-request service",
            mcp_plain_calls.clone(),
        );
        Metrics {
            mcp_plain_calls,
            carrier_callbacks,
            registry,
            requests,
            latency,
            auth,
            deliveries,
            delivery_latency,
            queue_depth,
            queue_oldest_seconds,
        }
    }

    /// A carrier callback: `accepted`, `bad_signature` or `unknown` (no such call).
    pub fn carrier_callback(&self, carrier: &'static str, outcome: &'static str) {
        self.carrier_callbacks
            .get_or_create(&CallbackLabels { carrier, outcome })
            .inc();
    }

    /// A plain `tools/call` answered by `/mcp` itself (`dialtone_mcp::stateless`).
    pub fn mcp_plain_call(&self) {
        self.mcp_plain_calls.inc();
    }

    pub fn auth(&self, outcome: AuthOutcome) {
        self.auth
            .get_or_create(&AuthLabels {
                outcome: outcome.as_str(),
            })
            .inc();
    }

    pub fn webhook_attempt(&self, outcome: &dialtone_store::DeliveryOutcome, duration_ms: i64) {
        use dialtone_store::DeliveryOutcome as O;
        let outcome = match outcome {
            O::Succeeded => "succeeded",
            O::Retry(_) => "retry",
            O::Failed => "failed",
            O::Gone => "gone",
        };
        self.deliveries
            .get_or_create(&DeliveryLabels { outcome })
            .inc();
        self.delivery_latency.observe(duration_ms as f64 / 1000.0);
    }

    pub fn webhook_queue(&self, depth: i64, oldest: Option<dialtone_domain::time::Timestamp>) {
        self.queue_depth.set(depth);
        let age = oldest.map_or(0, |t| {
            (dialtone_domain::time::now() - t).num_seconds().max(0)
        });
        self.queue_oldest_seconds.set(age);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "could not encode metrics");
        }
        out
    }
}

/// Middleware: counts and times every request by its route template (never the raw
/// path, which would hold ids).
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let resp = next.run(req).await;
    let m = &state.metrics;
    m.requests
        .get_or_create(&RequestLabels {
            method: method.clone(),
            route: route.clone(),
            status: resp.status().as_u16(),
        })
        .inc();
    m.latency
        .get_or_create(&RouteLabels { method, route })
        .observe(started.elapsed().as_secs_f64());
    resp
}
