//! The advisory locks that serialize maintenance across every instance. Each lock's
//! number is written once, here; SQL names them through `srql_lock_id` (migration 0007),
//! which a test checks against [`AdvisoryLock::ALL`].

use tokio_postgres::GenericClient;

use crate::db::DbError;

/// First half of every lock key (the two-int form), so ours never meet another
/// application's locks in the same database.
pub const LOCK_CLASS: i32 = 7_355_608;

/// A session-level advisory lock of this service, keyed `(LOCK_CLASS, id)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdvisoryLock {
    /// Held by whoever refreshes, drains or rebuilds the summaries.
    Refresh,
    /// Held while migrations are applied, so each version is applied once.
    Migrate,
    /// Held by whoever backfills a summary table, so two `srql migrate` runs never fill
    /// the same `_next` table.
    Backfill,
    /// Held by whoever seals day partitions (store::sealing), so two instances never
    /// rewrite the same day.
    Seal,
}

impl AdvisoryLock {
    pub const ALL: [AdvisoryLock; 4] = [
        AdvisoryLock::Refresh,
        AdvisoryLock::Migrate,
        AdvisoryLock::Backfill,
        AdvisoryLock::Seal,
    ];

    /// Second half of the key. Released migrations use these numbers literally: they
    /// can never change.
    pub const fn id(self) -> i32 {
        match self {
            AdvisoryLock::Refresh => 1,
            AdvisoryLock::Migrate => 2,
            AdvisoryLock::Backfill => 3,
            AdvisoryLock::Seal => 4,
        }
    }

    /// The name SQL passes to `srql_lock_id`.
    pub const fn name(self) -> &'static str {
        match self {
            AdvisoryLock::Refresh => "refresh",
            AdvisoryLock::Migrate => "migrate",
            AdvisoryLock::Backfill => "backfill",
            AdvisoryLock::Seal => "seal",
        }
    }

    /// Waits for the lock.
    pub async fn acquire(self, client: &impl GenericClient) -> Result<(), DbError> {
        client
            .execute(
                "SELECT pg_advisory_lock($1, $2)",
                &[&LOCK_CLASS, &self.id()],
            )
            .await?;
        Ok(())
    }

    /// Takes the lock if nobody holds it; `false` otherwise.
    pub async fn try_acquire(self, client: &impl GenericClient) -> Result<bool, DbError> {
        Ok(client
            .query_one(
                "SELECT pg_try_advisory_lock($1, $2)",
                &[&LOCK_CLASS, &self.id()],
            )
            .await?
            .get(0))
    }

    pub async fn release(self, client: &impl GenericClient) -> Result<(), DbError> {
        client
            .execute(
                "SELECT pg_advisory_unlock($1, $2)",
                &[&LOCK_CLASS, &self.id()],
            )
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names_are_distinct() {
        for (i, a) in AdvisoryLock::ALL.iter().enumerate() {
            for b in &AdvisoryLock::ALL[i + 1..] {
                assert_ne!(a.id(), b.id());
                assert_ne!(a.name(), b.name());
            }
        }
    }
}
