//! Which PostgreSQL the command talks to: `DATABASE_URL`, or a private embedded cluster
//! that lives as long as the command.

use store::embedded::{EmbeddedCluster, EmbeddedOptions};

use crate::args::{DbArgs, SummaryArgs};

pub struct Database {
    pub url: String,
    pub use_pg_cron: bool,
    /// Held so the embedded cluster stops when the command ends.
    pub _cluster: Option<EmbeddedCluster>,
}

/// The embedded cluster's database.
const EMBEDDED_DB: &str = "srql";

pub fn default_data_dir() -> std::path::PathBuf {
    std::env::temp_dir().join("srql").join("pgdata")
}

pub async fn open(args: &DbArgs) -> Result<Database, String> {
    if let Some(url) = &args.database_url {
        store::db::parse_url(url).map_err(|e| e.to_string())?;
        return Ok(Database {
            url: url.clone(),
            use_pg_cron: !args.no_pg_cron,
            _cluster: None,
        });
    }
    let mut opts = EmbeddedOptions::new(args.data_dir.clone().unwrap_or_else(default_data_dir));
    opts.pg_cron = !args.no_pg_cron;
    let cluster = tokio::task::spawn_blocking(move || EmbeddedCluster::start(&opts))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let admin = store::db::connect(&cluster.url("postgres"))
        .await
        .map_err(|e| e.to_string())?;
    let exists = admin
        .query_opt(
            "SELECT 1 FROM pg_database WHERE datname = $1",
            &[&EMBEDDED_DB],
        )
        .await
        .map_err(|e| e.to_string())?
        .is_some();
    if !exists {
        admin
            .batch_execute(&format!("CREATE DATABASE {EMBEDDED_DB}"))
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(Database {
        url: cluster.url(EMBEDDED_DB),
        use_pg_cron: cluster.has_pg_cron(),
        _cluster: Some(cluster),
    })
}

impl Database {
    pub async fn migrate(
        &self,
        summaries: &SummaryArgs,
    ) -> Result<store::setup::SetupReport, String> {
        let cfg = summaries.config()?;
        store::setup::run(&self.url, &cfg, self.use_pg_cron)
            .await
            .map_err(|e| e.to_string())
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}
