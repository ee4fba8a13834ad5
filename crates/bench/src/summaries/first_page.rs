//! Phase 1: latency of the traces tab's queries on the summary path and on the on-the-fly
//! path, through the HTTP API.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;

use super::api::{Path, SrqlClient};
use super::latency::{measure, Measurement, RunPolicy};
use super::progress;
use super::queries::{TabQuery, LAST_24H, QUERIES};

/// Both paths' timings of one query.
#[derive(Debug, Clone, Serialize)]
pub struct QueryLatency {
    pub name: &'static str,
    pub title: &'static str,
    pub srql: &'static str,
    pub page: u32,
    pub summaries: Measurement,
    pub on_the_fly: Measurement,
    /// On-the-fly p50 over summary p50: how many times faster the summaries answer.
    pub speedup_p50: Option<f64>,
}

impl QueryLatency {
    pub fn path(&self, path: Path) -> &Measurement {
        match path {
            Path::Summaries => &self.summaries,
            Path::OnTheFly => &self.on_the_fly,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Policies {
    pub summaries: RunPolicy,
    /// Per query; its warm-up is not per query but `on_the_fly_warmup` below.
    pub on_the_fly: RunPolicy,
    /// Untimed on-the-fly runs of the last-24-hours query once per scale point, before
    /// any is timed. Every on-the-fly query reads the same spans, so warming them once
    /// serves all; at L a per-query warm-up would cost minutes.
    pub on_the_fly_warmup: usize,
    /// Fewest timed on-the-fly runs of the last-24-hours query, which the speed-up
    /// target is about; the other queries get `on_the_fly.min_runs`.
    pub on_the_fly_target_min_runs: usize,
}

impl Policies {
    /// The plain aggregation is timed like the on-the-fly last-24-hours query it is
    /// compared with, after one untimed run of its own.
    pub fn plain_aggregation(&self) -> RunPolicy {
        RunPolicy {
            warmup: self.on_the_fly_warmup,
            min_runs: self
                .on_the_fly
                .min_runs
                .max(self.on_the_fly_target_min_runs),
            max_runs: self
                .on_the_fly
                .max_runs
                .max(self.on_the_fly_target_min_runs),
            ..self.on_the_fly
        }
    }

    fn of(&self, q: &TabQuery, path: Path) -> RunPolicy {
        match path {
            Path::Summaries => self.summaries,
            Path::OnTheFly if q.name == LAST_24H => RunPolicy {
                warmup: self.on_the_fly.warmup,
                ..self.plain_aggregation()
            },
            Path::OnTheFly => self.on_the_fly,
        }
    }
}

pub async fn run(
    addr: SocketAddr,
    timeout: Duration,
    policies: Policies,
) -> Result<Vec<QueryLatency>, String> {
    run_queries(addr, timeout, policies, QUERIES.iter()).await
}

/// [`run`] over some of the queries only.
pub async fn run_queries(
    addr: SocketAddr,
    timeout: Duration,
    policies: Policies,
    queries: impl ExactSizeIterator<Item = &TabQuery>,
) -> Result<Vec<QueryLatency>, String> {
    let mut client = SrqlClient::connect(addr, timeout).await?;
    let bar = progress::steps("first-page latency", queries.len() * Path::ALL.len());
    warm_spans(&mut client, policies.on_the_fly_warmup, &bar).await?;
    let mut out = Vec::with_capacity(queries.len());
    for q in queries {
        let cursor = if q.page > 1 {
            bar.set_message(format!("{}: following the cursor", q.title));
            Some(cursor_to_page(&mut client, q).await?)
        } else {
            None
        };
        let summaries = time_path(
            &mut client,
            q,
            cursor.as_deref(),
            Path::Summaries,
            policies,
            &bar,
        )
        .await?;
        let on_the_fly = time_path(
            &mut client,
            q,
            cursor.as_deref(),
            Path::OnTheFly,
            policies,
            &bar,
        )
        .await?;
        let speedup_p50 = match (summaries.latency(), on_the_fly.latency()) {
            (Some(s), Some(o)) if s.p50_ms > 0.0 => Some(o.p50_ms / s.p50_ms),
            _ => None,
        };
        out.push(QueryLatency {
            name: q.name,
            title: q.title,
            srql: q.srql,
            page: q.page,
            summaries,
            on_the_fly,
            speedup_p50,
        });
    }
    bar.finish_and_clear();
    Ok(out)
}

/// The per-scale warm-up of the on-the-fly path. A timeout is not an error here: the
/// timed runs then time out too and are reported as skipped.
async fn warm_spans(
    client: &mut SrqlClient,
    runs: usize,
    bar: &indicatif::ProgressBar,
) -> Result<(), String> {
    let Some(q) = QUERIES.iter().find(|q| q.name == LAST_24H) else {
        return Ok(());
    };
    let warmup_only = RunPolicy {
        warmup: runs,
        min_runs: 0,
        max_runs: 0,
        budget_secs: 0.0,
    };
    measure(client, q.srql, None, Path::OnTheFly, warmup_only, |n| {
        bar.set_message(format!(
            "warming the spans: untimed on-the-fly run {n} of {runs}"
        ))
    })
    .await?;
    Ok(())
}

async fn time_path(
    client: &mut SrqlClient,
    q: &TabQuery,
    cursor: Option<&str>,
    path: Path,
    policies: Policies,
    bar: &indicatif::ProgressBar,
) -> Result<Measurement, String> {
    let label = format!("{} on the {} path", q.title, path.label());
    let m = measure(client, q.srql, cursor, path, policies.of(q, path), |n| {
        bar.set_message(format!("{label}: request {n}"))
    })
    .await?;
    bar.inc(1);
    Ok(m)
}

/// The cursor that fetches page `q.page`, reached by following `next_cursor` from the
/// first page on the summary path. Keyset cursors hold sort-key values, not a source, so
/// the on-the-fly path is timed from the same cursor: fetching that page costs it one
/// aggregation either way, and walking there on the slow path would cost 99 of them.
async fn cursor_to_page(client: &mut SrqlClient, q: &TabQuery) -> Result<String, String> {
    let mut cursor: Option<String> = None;
    for page in 1..q.page {
        let (_, p) = client
            .query(q.srql, Path::Summaries, cursor.as_deref())
            .await
            .map_err(|e| format!("following the cursor of `{}`: {e}", q.srql))?;
        cursor = Some(p.next_cursor.ok_or_else(|| {
            format!(
                "`{}` has only {page} pages ({} rows on the last): too little data for page {}",
                q.srql, p.rows, q.page
            )
        })?);
    }
    cursor.ok_or_else(|| format!("`{}`: page {} needs no cursor", q.srql, q.page))
}
