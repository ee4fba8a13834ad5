//! One `otel_traces` row, the table's column list and the row's binary COPY encoding.
//!
//! OTLP ingest (through `store`) and the synthetic workload both write this table, so
//! they share this crate rather than each keeping a row type and an encoder. It does no
//! I/O and pulls in no database driver: the workload generator depends on it and stays
//! pure, and `store` sends the encoded bytes.

mod columns;
mod copy_format;
mod row;

pub use columns::{column_list, Column, ColumnType, COLUMNS};
pub use copy_format::{CopyRows, EncodeError};
pub use row::{SpanResource, SpanRow, SpanScope};
