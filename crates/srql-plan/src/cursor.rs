//! Keyset cursors: the sort key values of a boundary row, bound to the sort they came from.
//!
//! Opaque to clients (base64url of a small JSON document). A cursor from another sort order
//! is rejected rather than silently misapplied. Each cursor carries the direction it pages
//! in, because ServiceRadar's UI passes back `prev_cursor` or `next_cursor` alone.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::direction::Direction;
use crate::error::CursorError;
use crate::schema::ColumnType;
use crate::sql::Param;

/// Longest cursor accepted; real ones are far shorter.
const MAX_CURSOR_LEN: usize = 4096;

#[derive(Debug, Serialize, Deserialize)]
struct CursorDoc {
    /// The sort signature, e.g. `timestamp:desc,trace_id:desc`.
    s: String,
    /// Sort key values of the boundary row, in key order.
    k: Vec<Value>,
    /// Which way this cursor pages. Absent in cursors made before it existed.
    #[serde(default)]
    d: Option<Direction>,
}

pub fn encode(signature: &str, direction: Direction, values: Vec<Value>) -> String {
    let doc = CursorDoc {
        s: signature.to_string(),
        k: values,
        d: Some(direction),
    };
    // Serialising a struct of a String and JSON values cannot fail.
    let json = serde_json::to_vec(&doc).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(json)
}

/// Decodes a cursor into the direction it pages in and typed bind values for `types`.
pub fn decode(
    cursor: &str,
    signature: &str,
    types: &[ColumnType],
) -> Result<(Direction, Vec<Param>), CursorError> {
    let bad = || CursorError::Invalid;
    if cursor.len() > MAX_CURSOR_LEN {
        return Err(bad());
    }
    let bytes = URL_SAFE_NO_PAD.decode(cursor.trim()).map_err(|_| bad())?;
    let doc: CursorDoc = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if doc.s != signature {
        return Err(CursorError::OtherSort {
            cursor: doc.s,
            query: signature.to_string(),
        });
    }
    let Some(direction) = doc.d else {
        return Err(CursorError::OlderVersion);
    };
    if doc.k.len() != types.len() {
        return Err(bad());
    }
    let values = doc
        .k
        .iter()
        .zip(types)
        .map(|(v, ty)| value_param(v, *ty).ok_or_else(bad))
        .collect::<Result<_, _>>()?;
    Ok((direction, values))
}

fn value_param(v: &Value, ty: ColumnType) -> Option<Param> {
    Some(match ty {
        ColumnType::Timestamptz => Param::Timestamptz(
            DateTime::parse_from_rfc3339(v.as_str()?)
                .ok()?
                .with_timezone(&Utc),
        ),
        // PostgreSQL text cannot hold NUL; a forged cursor with one would fail at bind.
        ColumnType::Text => Param::Text(v.as_str().filter(|s| !s.contains('\0'))?.to_string()),
        ColumnType::Int4 => Param::Int4(i32::try_from(v.as_i64()?).ok()?),
        ColumnType::Int8 => Param::Int8(v.as_i64()?),
        ColumnType::Float8 => Param::Float8(v.as_f64()?),
        ColumnType::TextArray | ColumnType::Jsonb => return None,
    })
}
