//! The span attributes of each operation, following the OpenTelemetry semantic
//! conventions, so queries over `attributes` look like queries over real data.

use crate::catalog::{
    Operation, DB_SYSTEMS, DOMAINS, EXTERNAL_HOSTS, GRPC_METHODS, ROUTES, SERVICES, SQL_OPERATIONS,
};
use crate::json::{push_u64, ObjectWriter};
use crate::prng::Rng;
use crate::span::status;

/// What the attributes of one span depend on besides its operation.
pub(crate) struct SpanContext {
    /// Service number of the span.
    pub service: usize,
    /// Service number of the parent span (the caller, for a server span).
    pub parent_service: usize,
    /// Index into [`ROUTES`] of the trace.
    pub route: usize,
    pub status: i32,
}

/// Appends the attributes object of one span to `out`.
///
/// Keys are written in the order jsonb stores them (shorter first, then bytewise), so
/// PostgreSQL's key sort on input finds them sorted: that sort was about 5% of a bulk
/// load's CPU. Stored values do not depend on it; a test checks the order.
pub(crate) fn write(out: &mut String, op: Operation, ctx: &SpanContext, rng: &mut Rng) {
    let mut w = ObjectWriter::new(out);
    let failed = ctx.status == status::ERROR;
    match op {
        Operation::HttpServer => {
            let (method, route) = ROUTES[ctx.route].split_once(' ').unwrap_or(("GET", "/"));
            w.str("http.route", route)
                .str("http.method", method)
                .str("http.scheme", "http");
            push_target(w.begin_raw_str("http.target"), route, rng);
            w.end_raw_str()
                .int("net.host.port", 8080)
                .int("http.status_code", server_status(method, failed, rng));
        }
        Operation::RpcServer => {
            let domain = DOMAINS[ctx.service % DOMAINS.len()];
            w.str("rpc.method", GRPC_METHODS[rng.index(GRPC_METHODS.len())])
                .str("rpc.system", "grpc");
            let service = w.begin_raw_str("rpc.service");
            service.push_str("shop.");
            service.push_str(domain);
            service.push_str(".v1");
            w.end_raw_str()
                .str("net.peer.name", SERVICES[ctx.parent_service])
                .int("rpc.grpc.status_code", if failed { 14 } else { 0 });
        }
        Operation::DbQuery => {
            let system = DB_SYSTEMS[ctx.service % DB_SYSTEMS.len()];
            let db_name = DOMAINS[ctx.service % DOMAINS.len()];
            let table = DOMAINS[rng.index(DOMAINS.len())];
            w.str("db.name", db_name).str("db.system", system);
            let mongo = system == "mongodb";
            let port = if mongo {
                w.str("db.operation", "find");
                27017
            } else {
                w.str(
                    "db.operation",
                    SQL_OPERATIONS[rng.index(SQL_OPERATIONS.len())],
                )
                .str("db.sql.table", table);
                if system == "mysql" {
                    3306
                } else {
                    5432
                }
            };
            let peer = w.begin_raw_str("net.peer.name");
            peer.push_str(db_name);
            peer.push_str("-db");
            w.end_raw_str().int("net.peer.port", port);
            if mongo {
                w.str("db.mongodb.collection", table);
            }
        }
        Operation::CacheGet | Operation::CacheSet => {
            let operation = if op == Operation::CacheGet {
                "GET"
            } else {
                "SET"
            };
            w.str("db.system", "redis").str("db.operation", operation);
            let peer = w.begin_raw_str("net.peer.name");
            peer.push_str("redis-");
            push_u64(peer, (ctx.service % 3) as u64);
            w.end_raw_str().int("net.peer.port", 6379);
        }
        Operation::HttpClient => {
            let (host, method, path) = EXTERNAL_HOSTS[rng.index(EXTERNAL_HOSTS.len())];
            let url = w.begin_raw_str("http.url");
            url.push_str("https://");
            url.push_str(host);
            url.push_str(path);
            w.end_raw_str()
                .str("http.method", method)
                .str("net.peer.name", host);
            if !failed || rng.chance(0.5) {
                let code = if failed { 503 } else { 200 };
                w.int("http.status_code", code);
            }
        }
        Operation::Internal => {
            w.int("thread.id", 1 + rng.below(64) as i64);
            let namespace = w.begin_raw_str("code.namespace");
            namespace.push_str("shop::");
            namespace.push_str(DOMAINS[ctx.service % DOMAINS.len()]);
            w.end_raw_str();
        }
        Operation::Publish | Operation::Consume => {
            let operation = if op == Operation::Publish {
                "publish"
            } else {
                "process"
            };
            let topic = w
                .str("messaging.system", "kafka")
                .str("messaging.operation", operation)
                .int("messaging.kafka.partition", rng.below(12) as i64)
                .begin_raw_str("messaging.destination.name");
            topic.push_str(DOMAINS[ctx.service % DOMAINS.len()]);
            topic.push_str(".events");
            w.end_raw_str();
        }
    }
    w.finish();
}

/// A server's HTTP status: 4xx are client mistakes, not errors of the span (OTel leaves
/// server spans UNSET/OK for them); 5xx only on failed spans.
fn server_status(method: &str, failed: bool, rng: &mut Rng) -> i64 {
    if failed {
        return [500, 502, 503, 504][rng.index(4)];
    }
    let draw = rng.below(100);
    match draw {
        0..=2 => 404,
        3 => 400,
        4 => 401,
        _ if method == "POST" => 201,
        _ if method == "DELETE" => 204,
        _ => 200,
    }
}

/// Writes a concrete request path for `route`, replacing each `{param}` with a value.
fn push_target(out: &mut String, route: &str, rng: &mut Rng) {
    let mut rest = route;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open..];
        let close = after.find('}').map_or(after.len(), |c| c + 1);
        match &after[..close] {
            "{sku}" => {
                out.push_str("SKU-");
                push_u64(out, 10_000 + rng.below(90_000));
            }
            "{code}" => out.push_str(["WELCOME10", "SPRING25", "FREESHIP"][rng.index(3)]),
            _ => push_u64(out, 1 + rng.below(999_999)),
        }
        rest = &after[close..];
    }
    out.push_str(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_fill_every_parameter() {
        let mut rng = Rng::from_key(1);
        for route in ROUTES {
            let (_, path) = route.split_once(' ').expect("method and path");
            let mut target = String::new();
            push_target(&mut target, path, &mut rng);
            assert!(!target.contains('{') && !target.contains('}'), "{target}");
            assert!(target.starts_with('/'), "{target}");
        }
    }
}
