//! Benchmarks, load drivers and the workload loader, kept out of the product crates. The
//! `srql` binary exposes them as subcommands (`bench`, `bench-incremental`, `bench-soak`,
//! `bench-otlp`, `bench-ui`, `bench-sealing`, `bench-distributed`, `generate`); no product crate (`store`,
//! `server`, `otlp`) depends on this one, and none of them depends on `workload` any more.
//!
//! - `summaries`: `srql bench`, what the trace summaries buy (first-page latency on both
//!   paths, refresh cost, storage);
//! - `incremental`: `srql bench-incremental`, incremental summaries beside the view;
//! - `soak`: `srql bench-soak`, the whole service under a steady mixed load;
//! - `ui`: `srql bench-ui`, the traces tab in headless Chromium (`webdriver`, a small
//!   WebDriver client also used by the server's browser tests; `wide_trace`, one trace of
//!   any size);
//! - `sealing`: `srql bench-sealing`, spans storage heap against sealed, sealing time;
//! - `distributed`: `srql bench-distributed`, a Citus cluster beside one PostgreSQL;
//! - `otlp_ingest`: `srql bench-otlp`, OTLP ingest throughput;
//! - `load` (bulk and live loads) on `spans` (the workload's binary COPY), `otlp_client`
//!   (the workload over OTLP) on `otlp_export` (a gRPC client honouring back-pressure);
//! - `scratch`: the databases benchmarks make beside the service's; `markdown_section`:
//!   the section of BENCHMARKS.md each benchmark owns.

pub mod distributed;
pub mod incremental;
pub mod load;
pub mod markdown_section;
pub mod otlp_client;
pub mod otlp_export;
pub mod otlp_ingest;
pub mod scratch;
pub mod sealing;
pub mod soak;
pub mod spans;
pub mod steady_state;
pub mod summaries;
pub mod ui;
pub mod webdriver;
pub mod wide_trace;
