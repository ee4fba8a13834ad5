//! Which PostgreSQL the command talks to: `DATABASE_URL`, or a private embedded cluster
//! that lives as long as the command.

use store::credentials::{READER_LOGIN, WRITER_LOGIN};
use store::embedded::{EmbeddedCluster, EmbeddedOptions};
use store::roles::Group;

use crate::args::{DbArgs, SummaryArgs};

pub struct Database {
    /// The owner (migrations, setup): the superuser of the embedded cluster.
    pub url: String,
    /// A login in `srql_reader`: every SRQL query of the service.
    pub reader_url: String,
    /// A login in `srql_writer`: ingest, loads and summary maintenance.
    pub writer_url: String,
    /// Which of the reader and writer URLs fell back to `url` (external database
    /// without SRQL_READER_DATABASE_URL / SRQL_WRITER_DATABASE_URL).
    pub fallbacks: Vec<&'static str>,
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
        let mut fallbacks = Vec::new();
        let mut part = |given: &Option<String>, variable: &'static str| match given {
            Some(u) => store::db::parse_url(u)
                .map(|_| u.clone())
                .map_err(|e| format!("{variable}: {e}")),
            None => {
                fallbacks.push(variable);
                Ok(url.clone())
            }
        };
        let reader_url = part(&args.reader_database_url, "SRQL_READER_DATABASE_URL")?;
        let writer_url = part(&args.writer_database_url, "SRQL_WRITER_DATABASE_URL")?;
        return Ok(Database {
            url: url.clone(),
            reader_url,
            writer_url,
            fallbacks,
            use_pg_cron: !args.no_pg_cron,
            _cluster: None,
        });
    }
    if args.reader_database_url.is_some() || args.writer_database_url.is_some() {
        return Err(
            "SRQL_READER_DATABASE_URL and SRQL_WRITER_DATABASE_URL need DATABASE_URL: the embedded cluster makes its own logins"
                .into(),
        );
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
    let login = |user: &str| {
        cluster
            .url_as(user, EMBEDDED_DB)
            .ok_or_else(|| format!("the embedded cluster has no password for {user}"))
    };
    let db = Database {
        url: cluster.url(EMBEDDED_DB),
        reader_url: login(READER_LOGIN)?,
        writer_url: login(WRITER_LOGIN)?,
        fallbacks: Vec::new(),
        use_pg_cron: cluster.has_pg_cron(),
        _cluster: Some(cluster),
    };
    // A database migrated before has the roles: the logins work for commands that do
    // not migrate (`srql query`). Otherwise migrating makes them.
    let roles: bool = admin
        .query_one(
            "SELECT count(*) = 2 FROM pg_roles WHERE rolname IN ($1, $2)",
            &[&store::roles::READER, &store::roles::WRITER],
        )
        .await
        .map_err(|e| e.to_string())?
        .get(0);
    if roles {
        db.ensure_logins().await?;
    }
    Ok(db)
}

impl Database {
    /// The server as the benchmarks see it: where they make their scratch databases.
    pub fn bench_server(&self) -> srql_bench::scratch::Server {
        srql_bench::scratch::Server {
            url: self.url.clone(),
            data_dir: self._cluster.as_ref().map(|c| c.data_dir().to_path_buf()),
        }
    }

    pub async fn migrate(
        &self,
        summaries: &SummaryArgs,
    ) -> Result<store::setup::SetupReport, String> {
        let report = crate::migrate::migrate(&self.url, summaries, self.use_pg_cron).await?;
        self.ensure_logins().await?;
        Ok(report)
    }

    /// The embedded cluster's reader and writer logins, with the passwords in its
    /// credentials file (set again at every start: the file is the truth). A DBA makes
    /// them on an external database (README).
    async fn ensure_logins(&self) -> Result<(), String> {
        let Some(cluster) = &self._cluster else {
            return Ok(());
        };
        let admin = store::db::connect(&self.url)
            .await
            .map_err(|e| e.to_string())?;
        for (login, group) in [(READER_LOGIN, Group::Reader), (WRITER_LOGIN, Group::Writer)] {
            let password = cluster
                .password(login)
                .ok_or_else(|| format!("the embedded cluster has no password for {login}"))?;
            store::roles::ensure_login(&admin, login, group, password)
                .await
                .map_err(|e| format!("cannot create the login {login}: {e}"))?;
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::open;
    use crate::args::DbArgs;

    fn args(reader: Option<&str>, writer: Option<&str>) -> DbArgs {
        DbArgs {
            database_url: Some("postgres://owner@db.example/srql".into()),
            reader_database_url: reader.map(str::to_string),
            writer_database_url: writer.map(str::to_string),
            data_dir: None,
            no_pg_cron: false,
        }
    }

    #[tokio::test]
    async fn external_parts_fall_back_to_database_url_and_say_so() {
        let db = open(&args(None, None)).await.unwrap();
        assert_eq!(db.reader_url, db.url);
        assert_eq!(db.writer_url, db.url);
        assert_eq!(
            db.fallbacks,
            ["SRQL_READER_DATABASE_URL", "SRQL_WRITER_DATABASE_URL"]
        );
        let db = open(&args(
            Some("postgres://reader@db.example/srql"),
            Some("postgres://writer@db.example/srql"),
        ))
        .await
        .unwrap();
        assert_eq!(db.reader_url, "postgres://reader@db.example/srql");
        assert_eq!(db.writer_url, "postgres://writer@db.example/srql");
        assert!(db.fallbacks.is_empty());
        let err = open(&args(Some("postgres://reader@db.example:notaport/x"), None))
            .await
            .err()
            .expect("a bad reader URL is refused");
        assert!(err.starts_with("SRQL_READER_DATABASE_URL"), "{err}");
    }
}
