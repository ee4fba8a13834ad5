//! The SQL side of maintenance names what the Rust side defines: each advisory lock's
//! number, each setting's default, and the summary recompute function are defined once
//! in Rust, and what the database holds must be exactly that.

use store::locks::{AdvisoryLock, LOCK_CLASS};
use store::settings::{keys, DEFAULTS};
use store::testing::TestDb;

#[tokio::test]
async fn sql_lock_ids_are_the_rust_ones() {
    let db = TestDb::migrated().await;
    let client = db.client().await;
    let class: i32 = client
        .query_one("SELECT srql_lock_class()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(class, LOCK_CLASS);
    for lock in AdvisoryLock::ALL {
        let id: i32 = client
            .query_one("SELECT srql_lock_id($1)", &[&lock.name()])
            .await
            .unwrap()
            .get(0);
        assert_eq!(id, lock.id(), "{lock:?}");
    }
    let unknown = client.query_one("SELECT srql_lock_id('nope')", &[]).await;
    assert!(
        unknown.is_err(),
        "an unknown lock name must fail, not return a number"
    );
}

#[tokio::test]
async fn sql_setting_defaults_are_the_rust_ones() {
    let db = TestDb::migrated().await;
    let client = db.client().await;
    for (key, default) in DEFAULTS {
        let sql: Option<String> = client
            .query_one("SELECT srql_setting_default($1)", &[key])
            .await
            .unwrap()
            .get(0);
        assert_eq!(sql.as_deref(), Some(*default), "{key}");
    }
    // Keys without a default mean "nothing yet" on both sides.
    for key in [keys::REFRESH_SCHEDULER, keys::BACKFILL] {
        assert_eq!(store::settings::default_of(key), None);
        let sql: Option<String> = client
            .query_one("SELECT srql_setting_default($1)", &[&key])
            .await
            .unwrap()
            .get(0);
        assert_eq!(sql, None, "{key}");
    }
    // srql_setting prefers the stored value.
    store::settings::set_setting(&client, keys::DRAIN_MAX_SECS, "9")
        .await
        .unwrap();
    let stored: String = client
        .query_one("SELECT srql_setting($1)", &[&keys::DRAIN_MAX_SECS])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, "9");
}

#[tokio::test]
async fn set_setting_commits_with_its_transaction() {
    let db = TestDb::migrated().await;
    let mut client = db.client().await;
    let tx = client.transaction().await.unwrap();
    store::settings::set_setting(&tx, keys::DRAIN_MAX_SECS, "7")
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(
        store::settings::get_setting(&client, keys::DRAIN_MAX_SECS)
            .await
            .unwrap(),
        None
    );
    let tx = client.transaction().await.unwrap();
    store::settings::set_setting(&tx, keys::DRAIN_MAX_SECS, "7")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        store::settings::get_setting(&client, keys::DRAIN_MAX_SECS)
            .await
            .unwrap()
            .as_deref(),
        Some("7")
    );
}

/// `srql migrate` installs the recompute the code generates, not a stale copy.
#[tokio::test]
async fn installed_summary_apply_is_the_generated_one() {
    let db = TestDb::migrated().await;
    let mut client = db.client().await;
    store::summaries::ensure_view(&mut client, &Default::default())
        .await
        .unwrap();
    let generated = store::incremental::apply_function_sql();
    let start = generated.find("$srql$").expect("a $srql$ body") + "$srql$".len();
    let end = generated.rfind("$srql$").expect("a closing $srql$");
    let src: String = client
        .query_one(
            "SELECT prosrc FROM pg_proc WHERE oid = 'srql_summary_apply'::regproc",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(src, generated[start..end]);
}
