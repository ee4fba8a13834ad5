//! The yardstick of the on-the-fly path: the spans of the last 24 hours aggregated once,
//! `GROUP BY trace_id`, first page by `timestamp`, as raw SQL on a connection of its own.
//! It is not a correct answer (a trace's spans outside the range are missed, and a trace
//! whose latest span is later still counts); it is what reading and aggregating the
//! range's spans costs, which the exact path should not exceed.

use std::time::Instant;

use srql_plan::summary_sql;

use super::latency::{summarize, Measurement, RunPolicy};

/// The reference query: the page size of the traces tab's last-24-hours query.
pub fn sql() -> String {
    format!(
        "SELECT * FROM ({}) t ORDER BY timestamp DESC, trace_id DESC LIMIT 100",
        summary_sql::aggregate_query(Some(
            "timestamp >= now() - interval '24 hours' AND timestamp <= now()"
        ))
    )
}

/// Times [`sql`] under `policy` (warm-up runs first, then timed ones until the budget).
pub async fn measure(url: &str, policy: RunPolicy) -> Result<Measurement, String> {
    let client = store::db::connect(url).await.map_err(|e| e.to_string())?;
    let sql = sql();
    let mut samples = Vec::with_capacity(policy.max_runs);
    let mut spent = 0.0;
    for i in 0..policy.max_requests() {
        let started = Instant::now();
        client
            .query(&sql, &[])
            .await
            .map_err(|e| format!("the plain aggregation: {e}"))?;
        let elapsed = started.elapsed();
        if i < policy.warmup {
            continue;
        }
        samples.push(elapsed);
        spent += elapsed.as_secs_f64();
        if samples.len() >= policy.min_runs && spent >= policy.budget_secs {
            break;
        }
    }
    Ok(summarize(&samples).map_or_else(
        || Measurement::Skipped {
            reason: "no timed runs requested".into(),
        },
        Measurement::Measured,
    ))
}
