//! The PostgreSQL server a benchmark runs on, and the scratch databases it makes there so
//! it never touches the service's own data.

use std::path::PathBuf;

/// A server the `srql` binary opened (from `DATABASE_URL` or its embedded cluster).
pub struct Server {
    /// A superuser's URL: benchmarks create and drop databases.
    pub url: String,
    /// The embedded cluster's data directory, where the postmaster's pid is read for the
    /// CPU figures; none for an external server.
    pub data_dir: Option<PathBuf>,
}

/// A fresh, empty database `name` on `server` (dropped first if a previous run left it
/// behind), and its URL. `name` must be a plain identifier chosen by us, never user input.
pub async fn recreate_database(server: &Server, name: &str) -> Result<String, String> {
    drop_database(server, name).await?;
    let admin = store::db::connect(&server.url)
        .await
        .map_err(|e| e.to_string())?;
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .map_err(|e| format!("cannot create database `{name}`: {e}"))?;
    Ok(url_with_database(&server.url, name))
}

/// Drops database `name` on `server`, disconnecting whoever still uses it.
pub async fn drop_database(server: &Server, name: &str) -> Result<(), String> {
    let admin = store::db::connect(&server.url)
        .await
        .map_err(|e| e.to_string())?;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .map_err(|e| format!("cannot drop database `{name}`: {e}"))
}

/// `url` pointing at database `name` instead: the path of a `postgres://` URL, or a
/// `dbname=` appended to a key/value string (the last occurrence wins there).
fn url_with_database(url: &str, name: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return format!("{url} dbname={name}");
    };
    let authority_start = scheme_end + 3;
    let query_start = url[authority_start..]
        .find('?')
        .map_or(url.len(), |i| authority_start + i);
    let path_start = url[authority_start..query_start]
        .find('/')
        .map_or(query_start, |i| authority_start + i);
    format!("{}/{name}{}", &url[..path_start], &url[query_start..])
}

#[cfg(test)]
mod tests {
    use super::url_with_database;

    #[test]
    fn url_with_database_replaces_only_the_database() {
        assert_eq!(
            url_with_database(
                "postgres://postgres@127.0.0.1:5/srql?connect_timeout=10",
                "b"
            ),
            "postgres://postgres@127.0.0.1:5/b?connect_timeout=10"
        );
        assert_eq!(
            url_with_database("postgresql://u:p@h", "b"),
            "postgresql://u:p@h/b"
        );
        assert_eq!(
            url_with_database("postgres://h?sslmode=disable", "b"),
            "postgres://h/b?sslmode=disable"
        );
        assert_eq!(
            url_with_database("host=h dbname=x", "b"),
            "host=h dbname=x dbname=b"
        );
    }
}
