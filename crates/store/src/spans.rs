//! Writing spans with binary COPY, the fastest way into PostgreSQL.

use chrono::{DateTime, Utc};
use futures_util::pin_mut;
use raw_json::RawJson;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Client;
use workload::Span;

use crate::db::DbError;

const COPY_SQL: &str =
    "COPY otel_traces (timestamp, trace_id, span_id, parent_span_id, name, kind, \
    start_time_unix_nano, end_time_unix_nano, service_name, service_version, service_instance, \
    scope_name, scope_version, status_code, status_message, attributes, resource_attributes, \
    events, links, created_at) FROM STDIN (FORMAT binary)";

const TYPES: &[Type] = &[
    Type::TIMESTAMPTZ,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT4,
    Type::INT8,
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT4,
    Type::TEXT,
    Type::JSONB,
    Type::JSONB,
    Type::JSONB,
    Type::JSONB,
    Type::TIMESTAMPTZ,
];

/// When each span arrived: the simulated arrival for historical loads, the real time
/// for live inserts.
#[derive(Debug, Clone, Copy)]
pub enum Arrival {
    /// Span time plus its simulated delivery delay.
    Simulated,
    /// This instant.
    At(DateTime<Utc>),
}

/// Writes `spans` in one COPY (one transaction); returns the number of rows.
pub async fn copy_spans<'a>(
    client: &Client,
    spans: impl IntoIterator<Item = &'a Span>,
    arrival: Arrival,
) -> Result<u64, DbError> {
    let sink = client.copy_in(COPY_SQL).await?;
    let writer = BinaryCopyInWriter::new(sink, TYPES);
    pin_mut!(writer);
    for s in spans {
        let created_at = match arrival {
            Arrival::Simulated => {
                s.timestamp + chrono::Duration::milliseconds(1 + s.arrival_delay_ms)
            }
            Arrival::At(t) => t,
        };
        let parent = (!s.parent_span_id.is_empty()).then_some(s.parent_span_id.as_str());
        let row: [&(dyn ToSql + Sync); 20] = [
            &s.timestamp,
            &s.trace_id,
            &s.span_id,
            &parent.unwrap_or(""),
            &s.name,
            &s.kind,
            &s.start_time_unix_nano,
            &s.end_time_unix_nano,
            &s.service_name,
            &s.service_version,
            &s.service_instance,
            &s.scope_name,
            &s.scope_version,
            &s.status_code,
            &s.status_message,
            &RawJson(&s.attributes),
            &RawJson(&s.resource_attributes),
            &RawJson(&s.events),
            &RawJson(&s.links),
            &created_at,
        ];
        writer.as_mut().write(&row).await?;
    }
    Ok(writer.finish().await?)
}

/// JSON text that is already valid, sent as `jsonb` without parsing it again.
mod raw_json {
    use std::error::Error;

    use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};

    #[derive(Debug)]
    pub struct RawJson<'a>(pub &'a str);

    impl ToSql for RawJson<'_> {
        fn to_sql(
            &self,
            ty: &Type,
            out: &mut bytes::BytesMut,
        ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
            if *ty == Type::JSONB {
                // jsonb's binary format: a version byte, then the JSON text.
                out.extend_from_slice(&[1]);
            }
            out.extend_from_slice(self.0.as_bytes());
            Ok(IsNull::No)
        }

        fn accepts(ty: &Type) -> bool {
            *ty == Type::JSONB || *ty == Type::JSON
        }

        to_sql_checked!();
    }
}
