//! The fixed vocabulary of the workload: services, routes, operations, messages.
//!
//! Everything here is `'static` so a span's text is copied from tables rather than
//! formatted, which is most of what keeps generation fast. Changing any table changes the
//! workload (and so the benchmark baselines): append rather than edit where possible.

use std::sync::{Arc, OnceLock};

use span_row::SpanScope;

/// Services `svc-0` .. `svc-19` (docs/workload.md).
pub const SERVICES: [&str; 20] = [
    "svc-0", "svc-1", "svc-2", "svc-3", "svc-4", "svc-5", "svc-6", "svc-7", "svc-8", "svc-9",
    "svc-10", "svc-11", "svc-12", "svc-13", "svc-14", "svc-15", "svc-16", "svc-17", "svc-18",
    "svc-19",
];

/// The deployed version of each service, by service number.
pub(crate) const SERVICE_VERSIONS: [&str; 20] = [
    "1.4.2", "2.0.1", "1.12.0", "3.1.4", "0.9.7", "1.1.0", "2.3.3", "1.0.18", "4.2.0", "1.7.1",
    "2.8.5", "1.3.9", "0.14.2", "3.0.0", "1.5.6", "2.2.2", "1.9.0", "5.0.3", "1.0.4", "2.6.1",
];

/// Replicas per service; a trace picks one instance of each service it touches.
pub(crate) const INSTANCES_PER_SERVICE: usize = 4;

/// An OpenTelemetry SDK: the language a service is written in decides it.
pub(crate) struct Sdk {
    pub language: &'static str,
    pub version: &'static str,
}

pub(crate) const SDKS: [Sdk; 5] = [
    Sdk {
        language: "rust",
        version: "0.27.1",
    },
    Sdk {
        language: "go",
        version: "1.32.0",
    },
    Sdk {
        language: "java",
        version: "1.44.1",
    },
    Sdk {
        language: "python",
        version: "1.28.2",
    },
    Sdk {
        language: "nodejs",
        version: "1.29.0",
    },
];

/// The database engine a service owns (by service number modulo the length).
pub(crate) const DB_SYSTEMS: [&str; 4] = ["postgresql", "postgresql", "mysql", "mongodb"];

/// Domain nouns, used for database names, tables and topics.
pub(crate) const DOMAINS: [&str; 10] = [
    "orders",
    "users",
    "products",
    "carts",
    "payments",
    "shipments",
    "inventory",
    "reviews",
    "invoices",
    "coupons",
];

/// The 50 HTTP routes a root span serves; the root span is named exactly so.
pub const ROUTES: [&str; 50] = [
    "GET /api/orders/{id}",
    "GET /api/orders",
    "POST /api/orders",
    "PUT /api/orders/{id}",
    "DELETE /api/orders/{id}",
    "GET /api/orders/{id}/items",
    "POST /api/orders/{id}/cancel",
    "GET /api/users/{id}",
    "GET /api/users",
    "POST /api/users",
    "PATCH /api/users/{id}",
    "GET /api/users/{id}/orders",
    "GET /api/users/{id}/addresses",
    "POST /api/users/{id}/addresses",
    "POST /api/auth/login",
    "POST /api/auth/logout",
    "POST /api/auth/refresh",
    "GET /api/products",
    "GET /api/products/{id}",
    "GET /api/products/{id}/reviews",
    "POST /api/products/{id}/reviews",
    "GET /api/products/search",
    "GET /api/categories",
    "GET /api/categories/{id}/products",
    "GET /api/cart",
    "POST /api/cart/items",
    "DELETE /api/cart/items/{id}",
    "POST /api/checkout",
    "GET /api/checkout/{id}/status",
    "POST /api/payments",
    "GET /api/payments/{id}",
    "POST /api/payments/{id}/refund",
    "GET /api/shipments/{id}",
    "GET /api/shipments/{id}/tracking",
    "POST /api/shipments",
    "GET /api/inventory/{sku}",
    "PUT /api/inventory/{sku}",
    "GET /api/recommendations",
    "GET /api/search",
    "GET /api/notifications",
    "POST /api/notifications/{id}/read",
    "GET /api/invoices/{id}",
    "GET /api/invoices/{id}/pdf",
    "GET /api/wishlist",
    "POST /api/wishlist/items",
    "GET /api/coupons/{code}",
    "POST /api/coupons/{code}/apply",
    "GET /api/stores/{id}",
    "GET /api/stores/nearby",
    "GET /api/healthz",
];

/// What an inner (non-root) span does; decides its name, kind, scope and attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    /// The root: an HTTP server span named after its route.
    HttpServer,
    /// The first span of the trace in another service: a gRPC server span.
    RpcServer,
    DbQuery,
    CacheGet,
    CacheSet,
    HttpClient,
    Internal,
    Publish,
    Consume,
}

/// Weights (out of 100) of the operations a span within one service performs.
const INNER_OPERATIONS: [(Operation, u32); 7] = [
    (Operation::DbQuery, 30),
    (Operation::CacheGet, 15),
    (Operation::CacheSet, 5),
    (Operation::HttpClient, 10),
    (Operation::Internal, 30),
    (Operation::Publish, 5),
    (Operation::Consume, 5),
];

/// Maps a uniform draw in `0..100` to an inner operation.
pub(crate) fn inner_operation(draw: u32) -> Operation {
    let mut acc = 0;
    for (op, weight) in INNER_OPERATIONS {
        acc += weight;
        if draw < acc {
            return op;
        }
    }
    Operation::Internal
}

/// Names of in-process spans.
pub(crate) const INTERNAL_NAMES: [&str; 6] = [
    "auth.check",
    "validate",
    "serialize",
    "render",
    "compute.price",
    "feature.flags",
];

pub(crate) const GRPC_METHODS: [&str; 8] = [
    "Get", "List", "Create", "Update", "Delete", "Reserve", "Quote", "Resolve",
];

/// Endpoints outside the mesh that services call over HTTP: (host, method, path).
pub(crate) const EXTERNAL_HOSTS: [(&str, &str, &str); 5] = [
    ("api.stripe.com", "POST", "/v1/charges"),
    ("maps.googleapis.com", "GET", "/maps/api/geocode/json"),
    ("hooks.slack.com", "POST", "/services/T0/B0"),
    ("api.sendgrid.com", "POST", "/v3/mail/send"),
    (
        "s3.eu-west-1.amazonaws.com",
        "GET",
        "/shop-assets/catalog.json",
    ),
];

/// `db.operation` of SQL queries; repeats weight the draw.
pub(crate) const SQL_OPERATIONS: [&str; 4] = ["SELECT", "SELECT", "INSERT", "UPDATE"];

/// The instrumentation scope of an operation's spans.
pub(crate) fn scope(op: Operation) -> Arc<SpanScope> {
    // One shared scope per library, as an SDK reports it once per batch.
    static SCOPES: OnceLock<[Arc<SpanScope>; 7]> = OnceLock::new();
    let scopes = SCOPES.get_or_init(|| {
        [
            ("io.opentelemetry.http-server", "1.32.0"),
            ("io.opentelemetry.grpc", "1.32.0"),
            ("io.opentelemetry.sql", "1.32.0"),
            ("io.opentelemetry.redis", "1.32.0"),
            ("io.opentelemetry.http-client", "1.32.0"),
            ("app", "0.1.0"),
            ("io.opentelemetry.kafka", "1.32.0"),
        ]
        .map(|(name, version)| {
            Arc::new(SpanScope {
                name: name.to_owned(),
                version: version.to_owned(),
            })
        })
    });
    let i = match op {
        Operation::HttpServer => 0,
        Operation::RpcServer => 1,
        Operation::DbQuery => 2,
        Operation::CacheGet | Operation::CacheSet => 3,
        Operation::HttpClient => 4,
        Operation::Internal => 5,
        Operation::Publish | Operation::Consume => 6,
    };
    Arc::clone(&scopes[i])
}

/// Error messages per operation, paired with the exception type recorded in the event.
pub(crate) fn errors(op: Operation) -> &'static [(&'static str, &'static str)] {
    match op {
        Operation::HttpServer => &[
            ("InternalServerError", "internal server error"),
            ("UpstreamError", "upstream service unavailable"),
            ("TimeoutError", "request timed out after 30s"),
        ],
        Operation::RpcServer => &[
            (
                "StatusError",
                "rpc error: code = Unavailable desc = connection refused",
            ),
            (
                "StatusError",
                "rpc error: code = DeadlineExceeded desc = context deadline exceeded",
            ),
            (
                "StatusError",
                "rpc error: code = Internal desc = unexpected nil value",
            ),
        ],
        Operation::DbQuery => &[
            ("DatabaseError", "deadlock detected"),
            (
                "DatabaseError",
                "canceling statement due to statement timeout",
            ),
            (
                "DatabaseError",
                "duplicate key value violates unique constraint",
            ),
        ],
        Operation::CacheGet | Operation::CacheSet => &[
            ("ConnectionError", "connection reset by peer"),
            ("TimeoutError", "redis: i/o timeout"),
        ],
        Operation::HttpClient => &[
            ("HttpError", "HTTP 503 Service Unavailable"),
            ("HttpError", "HTTP 502 Bad Gateway"),
            ("ConnectError", "dial tcp: connection refused"),
        ],
        Operation::Internal => &[
            ("ValueError", "invalid argument: quantity must be positive"),
            ("PanicError", "index out of bounds"),
        ],
        Operation::Publish | Operation::Consume => &[
            ("KafkaError", "broker not available"),
            ("KafkaError", "message too large"),
        ],
    }
}
