//! The least-privilege roles of migration 0006 and login users in them.
//!
//! Migrations create the NOLOGIN groups; logins are made here for the embedded cluster
//! (and the test harness), or by a DBA on an external server (README).

use tokio_postgres::Client;

use crate::db::DbError;

/// Owns every object; migrations and setup run as it.
pub const OWNER: &str = "srql_owner";
/// Ingest and maintenance; a member of [`OWNER`] (see migration 0006 for why).
pub const WRITER: &str = "srql_writer";
/// SELECT only: every SRQL query.
pub const READER: &str = "srql_reader";

/// Which group a login joins, and what its sessions start with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    Reader,
    Writer,
}

/// Creates `login` in `group` with `password`, or resets the password of an existing
/// one. Readers start every transaction read-only; writers act as [`OWNER`], so what
/// maintenance creates (partitions, the summary view) belongs to the owner like the rest.
///
/// `login` must be a plain identifier and `password` one of ours
/// ([`crate::credentials::generate_password`]): neither is user text, and neither can be
/// a bind value in these statements.
pub async fn ensure_login(
    client: &Client,
    login: &str,
    group: Group,
    password: &str,
) -> Result<(), DbError> {
    assert!(
        login
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
        "login names are ours: {login}"
    );
    assert!(
        password.bytes().all(|b| b.is_ascii_hexdigit()),
        "passwords are generated hex"
    );
    let (role, setting) = match group {
        Group::Reader => (READER, "default_transaction_read_only = on"),
        Group::Writer => (WRITER, "role = 'srql_owner'"),
    };
    // Logins are global to the cluster and tests make them from several databases, so a
    // concurrent creator shows up as duplicate_object or unique_violation.
    client
        .batch_execute(&format!(
            "DO $$
             BEGIN
                 BEGIN
                     CREATE ROLE {login} LOGIN PASSWORD '{password}' IN ROLE {role};
                 EXCEPTION WHEN duplicate_object OR unique_violation THEN
                     ALTER ROLE {login} PASSWORD '{password}';
                 END;
             END $$;
             ALTER ROLE {login} SET {setting};"
        ))
        .await?;
    Ok(())
}

/// Hands what the caller may alter in the schema to [`OWNER`] (`srql_adopt_objects`,
/// migration 0006); returns how many objects moved. For whoever made relations outside
/// the writer's sessions: `srql migrate`, loads run as the superuser.
pub async fn adopt_objects(client: &Client) -> Result<i32, DbError> {
    Ok(client
        .query_one("SELECT srql_adopt_objects()", &[])
        .await?
        .get(0))
}

/// The groups made the way `srql migrate` makes them (migrating a scratch database,
/// `roles_db_url`, created here through `admin`, which is left behind empty), then the
/// reader and writer logins in them: a private server's setup (the test harness, the
/// Citus nodes of [`crate::citus_local`]). The database name is ours, never input.
pub async fn create_with_logins(
    admin: &Client,
    roles_db_url: &str,
    [reader, writer]: [(&str, &str); 2],
) -> Result<(), DbError> {
    let config = crate::db::parse_url(roles_db_url)?;
    let name = config
        .get_dbname()
        .ok_or_else(|| DbError::BadUrl("the roles database URL names no database".into()))?;
    for sql in [
        format!("DROP DATABASE IF EXISTS {name}"),
        format!("CREATE DATABASE {name}"),
    ] {
        admin.batch_execute(&sql).await?;
    }
    let mut client = crate::db::connect(roles_db_url).await?;
    crate::migrate::run(&mut client).await?;
    for ((user, password), group) in [(reader, Group::Reader), (writer, Group::Writer)] {
        ensure_login(admin, user, group, password).await?;
    }
    Ok(())
}
