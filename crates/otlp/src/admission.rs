//! Which requests may be decoded: the limits on one request, and a budget shared by all
//! requests being decoded, mapped and written, reserved before decoding starts.
//!
//! Memory is bounded by the budget whatever arrives: a request's cost is estimated from
//! its pre-scanned shape (`prescan`); one costing more than the whole budget is refused
//! as too large, others wait a bounded time for room and are otherwise told to retry.
//! The reservation lasts until the request's spans are written or refused.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::prescan::{ScanError, Shape};

/// Memory one decoded span takes on top of its bytes, until it is written: the prost
/// (or JSON model) struct, the mapped row with its hex ids and JSON texts. Peak RSS
/// growth per span measured over 100,000 spans: 200 B for empty protobuf spans, 530 B
/// for empty JSON ones (model and prost structs both alive), 710 B for minimal valid
/// spans mapped to rows; rounded up.
pub const SPAN_COST: u64 = 1024;

/// Memory one other element (attribute, event, link, string, JSON object) takes once
/// decoded: its struct or `String` header, allocator overhead, and its share of the JSON
/// text it becomes.
pub const ELEMENT_COST: u64 = 160;

/// Bytes of the body held at once: while reading, the received chunks and their
/// contiguous copy; while decoding, the body and (gRPC) the copy tonic decodes from.
const BODY_COPIES: u64 = 2;

#[derive(Debug, Clone)]
pub struct Limits {
    /// Spans in one request, beyond which it is refused before decoding.
    pub max_spans_per_request: usize,
    /// Estimated memory of all requests being decoded, mapped or written at once.
    pub decode_budget_bytes: usize,
    /// How long a request waits for room in the decode budget before being told to
    /// retry.
    pub budget_wait: Duration,
    /// Spans older than this are refused (their day would be dropped anyway).
    pub retention: Duration,
    /// Spans starting further than this in the future are refused (clock skew allowed).
    pub max_future: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_spans_per_request: 100_000,
            decode_budget_bytes: 256 * 1024 * 1024,
            budget_wait: Duration::from_secs(2),
            retention: Duration::from_secs(7 * 86_400),
            max_future: Duration::from_secs(3600),
        }
    }
}

/// Why a request was not admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The body is malformed: final.
    Invalid(String),
    /// The body is over a limit: final (HTTP 413).
    TooLarge(String),
    /// The budget stayed full for the whole wait: retry later.
    Busy,
}

/// Permission to decode one request; gives its share of the budget back when dropped.
#[derive(Debug)]
pub struct DecodePermit {
    permit: OwnedSemaphorePermit,
}

/// The shared decode budget, counted in KiB so a large budget fits the semaphore's u32
/// acquisitions.
#[derive(Debug)]
pub struct Admission {
    limits: Limits,
    budget: Arc<Semaphore>,
    budget_kib: u32,
}

impl Admission {
    pub fn new(limits: Limits) -> Self {
        let budget_kib = u32::try_from(limits.decode_budget_bytes / 1024)
            .unwrap_or(u32::MAX)
            .clamp(1, u32::try_from(Semaphore::MAX_PERMITS).unwrap_or(u32::MAX));
        Self {
            budget: Arc::new(Semaphore::new(budget_kib as usize)),
            budget_kib,
            limits,
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Reserves room for a body of up to `bytes` before it is read, so that bodies being
    /// received count against the budget too: without it, many slow uploads of the
    /// largest size would each hold their buffer outside any bound.
    pub async fn reserve(&self, bytes: usize) -> Result<DecodePermit, Refusal> {
        // Reading holds the received chunks and the contiguous copy made of them.
        let kib = (bytes as u64)
            .saturating_mul(BODY_COPIES)
            .div_ceil(1024)
            .min(u64::from(self.budget_kib));
        let permit = self
            .acquire(u32::try_from(kib).unwrap_or(self.budget_kib))
            .await?;
        Ok(DecodePermit { permit })
    }

    /// Checks `shape` (the pre-scan of a `body_len`-byte body) against the limits and
    /// turns `held` (the body's reservation) into one for the request's estimated cost,
    /// waiting at most `budget_wait` for any extra room.
    pub async fn admit(
        &self,
        mut held: DecodePermit,
        shape: Result<Shape, ScanError>,
        body_len: usize,
    ) -> Result<DecodePermit, Refusal> {
        let shape = shape.map_err(|e| Refusal::Invalid(e.to_string()))?;
        let max_spans = self.limits.max_spans_per_request;
        if shape.spans > max_spans as u64 {
            return Err(Refusal::TooLarge(format!(
                "the request has {} spans, more than the limit of {max_spans} per request",
                shape.spans
            )));
        }
        let cost = estimate(&shape, body_len);
        let kib = cost.div_ceil(1024);
        if kib > u64::from(self.budget_kib) {
            return Err(Refusal::TooLarge(format!(
                "the request would take about {} MiB to decode ({} spans, {} elements), \
                 more than the decode budget of {} MiB",
                cost >> 20,
                shape.spans,
                shape.elements,
                self.budget_kib >> 10
            )));
        }
        let want = usize::try_from(kib).unwrap_or(usize::MAX);
        let have = held.permit.num_permits();
        if want > have {
            let extra = u32::try_from(want - have).unwrap_or(self.budget_kib);
            // The body's share stays held while waiting for the rest: the wait is
            // bounded, so requests holding shares cannot block each other for long.
            held.permit.merge(self.acquire(extra).await?);
        } else {
            drop(held.permit.split(have - want));
        }
        Ok(held)
    }

    async fn acquire(&self, kib: u32) -> Result<OwnedSemaphorePermit, Refusal> {
        match tokio::time::timeout(
            self.limits.budget_wait,
            self.budget.clone().acquire_many_owned(kib),
        )
        .await
        {
            Ok(Ok(permit)) => Ok(permit),
            // Never closed; a closed budget can only mean "not now".
            Ok(Err(_)) | Err(_) => Err(Refusal::Busy),
        }
    }
}

/// Estimated peak memory of a request from the moment its body is read until its spans
/// are written.
pub fn estimate(shape: &Shape, body_len: usize) -> u64 {
    (body_len as u64)
        .saturating_mul(BODY_COPIES)
        .saturating_add(shape.spans.saturating_mul(SPAN_COST))
        .saturating_add(shape.elements.saturating_mul(ELEMENT_COST))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(budget: usize) -> Limits {
        Limits {
            max_spans_per_request: 10,
            decode_budget_bytes: budget,
            budget_wait: Duration::from_millis(50),
            ..Limits::default()
        }
    }

    fn shape(spans: u64) -> Result<Shape, ScanError> {
        Ok(Shape {
            spans,
            elements: spans,
        })
    }

    #[tokio::test]
    async fn over_the_span_limit_or_the_whole_budget_is_too_large() {
        let a = Admission::new(limits(1 << 20));
        let too_many = a.admit(a.reserve(10).await.unwrap(), shape(11), 10).await;
        assert!(matches!(too_many, Err(Refusal::TooLarge(m)) if m.contains("11 spans")));
        let too_big = a
            .admit(a.reserve(10).await.unwrap(), shape(1), 1 << 20)
            .await;
        assert!(matches!(too_big, Err(Refusal::TooLarge(m)) if m.contains("decode budget")));
        let deep = a
            .admit(a.reserve(10).await.unwrap(), Err(ScanError::TooDeep), 1)
            .await;
        assert!(matches!(deep, Err(Refusal::Invalid(_))));
        assert_eq!(
            a.budget.available_permits(),
            1024,
            "refusals return the reservation"
        );
    }

    #[tokio::test]
    async fn a_full_budget_refuses_after_the_wait_and_frees_on_drop() {
        let a = Admission::new(limits(64 * 1024));
        let body = a.reserve(20_000).await.expect("room for the body");
        let held = a.admit(body, shape(10), 20_000).await.expect("fits");
        // 20,000 × 2 + 10 × (1024 + 160) bytes: 51 of the 64 KiB.
        assert_eq!(a.budget.available_permits(), 13, "the estimate is held");
        let body = a.reserve(1000).await.expect("room for a small body");
        assert_eq!(
            a.admit(body, shape(10), 20_000).await.unwrap_err(),
            Refusal::Busy
        );
        assert_eq!(a.reserve(64 * 1024).await.unwrap_err(), Refusal::Busy);
        drop(held);
        let body = a.reserve(20_000).await.expect("room");
        let held = a.admit(body, shape(1), 100).await.expect("fits");
        assert_eq!(
            held.permit.num_permits(),
            2,
            "a body reservation shrinks to the estimate"
        );
    }
}
