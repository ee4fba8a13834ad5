//! Load drivers and benchmarks, kept out of the product crates: the synthetic workload
//! sent to the OTLP receivers, the OTLP ingest benchmark, and what drives the traces tab
//! in a browser (a WebDriver client, a trace of any size). The `srql` binary exposes
//! them as subcommands; no product crate (`store`, `server`, `otlp`) depends on this one.

pub mod otlp_client;
pub mod otlp_ingest;
pub mod webdriver;
pub mod wide_trace;
