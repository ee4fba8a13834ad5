//! Each resource stored once (migration 0032): before a COPY, the writer turns the
//! distinct resources of its rows into ids in `srql_resources`, and each span row carries
//! its resource's id instead of a copy of it.
//!
//! One round trip per COPY, with the batch's few distinct resources (an OTLP request
//! carries each once; the generator has a fixed set of replicas). No cache across
//! batches: an id is only valid in one database, and the call also raises each
//! resource's `last_day`, which retention relies on.

use std::collections::HashMap;
use std::sync::Arc;

use span_row::{SpanResource, SpanRow};
use tokio_postgres::Client;

use crate::db::DbError;

/// The resource id of each row, in the order of the rows given to [`resolve`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResourceIds(Vec<i64>);

impl ResourceIds {
    pub fn of_row(&self, index: usize) -> i64 {
        self.0[index]
    }
}

/// Ids for the resources of `rows` (adding the unseen ones), each resource's `last_day`
/// raised to the day of the newest row. Outside any transaction the rows it adds are
/// committed at once: a failed COPY after it leaves at most an unused resource, which
/// retention drops with the days it could have referred to.
pub async fn resolve(client: &Client, rows: &[&SpanRow]) -> Result<ResourceIds, DbError> {
    let Some(newest) = rows.iter().map(|r| r.timestamp).max() else {
        return Ok(ResourceIds::default());
    };
    let (distinct, of_row) = distinct_resources(rows);
    let attributes: Vec<&str> = distinct.iter().map(|r| r.attributes.as_str()).collect();
    let versions: Vec<Option<&str>> = distinct
        .iter()
        .map(|r| r.service_version.as_deref())
        .collect();
    let instances: Vec<Option<&str>> = distinct
        .iter()
        .map(|r| r.service_instance.as_deref())
        .collect();
    let ids: Vec<i64> = client
        .query_one(
            "SELECT srql_resource_ids($1::text[]::jsonb[], $2::text[], $3::text[], $4)",
            &[&attributes, &versions, &instances, &newest],
        )
        .await?
        .get(0);
    if ids.len() != distinct.len() {
        return Err(DbError::Decode(format!(
            "srql_resource_ids gave {} ids for {} resources",
            ids.len(),
            distinct.len()
        )));
    }
    Ok(ResourceIds(of_row.into_iter().map(|i| ids[i]).collect()))
}

/// The distinct resources of `rows`, and for each row the index of its own among them.
/// Rows of one request share their resource's allocation, so the pointer decides for
/// almost every row; equal resources behind different pointers are merged by value.
fn distinct_resources<'a>(rows: &[&'a SpanRow]) -> (Vec<&'a SpanResource>, Vec<usize>) {
    let mut by_pointer: HashMap<*const SpanResource, usize> = HashMap::new();
    let mut by_value: HashMap<&'a SpanResource, usize> = HashMap::new();
    let mut distinct = Vec::new();
    let of_row = rows
        .iter()
        .map(|row| {
            let resource: &'a SpanResource = &row.resource;
            *by_pointer
                .entry(Arc::as_ptr(&row.resource))
                .or_insert_with(|| {
                    *by_value.entry(resource).or_insert_with(|| {
                        distinct.push(resource);
                        distinct.len() - 1
                    })
                })
        })
        .collect();
    (distinct, of_row)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(resource: &Arc<SpanResource>) -> SpanRow {
        SpanRow {
            resource: resource.clone(),
            ..SpanRow::default()
        }
    }

    #[test]
    fn rows_sharing_a_resource_by_pointer_or_by_value_get_one_entry() {
        let a = Arc::new(SpanResource {
            attributes: r#"{"service.name":"a"}"#.into(),
            ..Default::default()
        });
        let a_again = Arc::new((*a).clone());
        let b = Arc::new(SpanResource {
            attributes: r#"{"service.name":"b"}"#.into(),
            service_version: Some("1".into()),
            ..Default::default()
        });
        let rows = [row(&a), row(&b), row(&a), row(&a_again), row(&b)];
        let refs: Vec<&SpanRow> = rows.iter().collect();
        let (distinct, of_row) = distinct_resources(&refs);
        assert_eq!(distinct.len(), 2);
        assert_eq!(of_row, vec![0, 1, 0, 0, 1]);
        assert_eq!(distinct[1].service_version.as_deref(), Some("1"));
    }
}
