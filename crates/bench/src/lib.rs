//! Load drivers and benchmarks, kept out of the product crates: the synthetic workload
//! sent to the OTLP receivers, and the OTLP ingest benchmark. The `srql` binary exposes
//! them as subcommands; no product crate (`store`, `server`, `otlp`) depends on this one.

pub mod otlp_client;
pub mod otlp_ingest;
