//! Bringing freshly loaded data to the state a long-running service keeps it in, so that
//! a benchmark measures that state rather than the catch-up work of a first start.

use crate::summaries::progress;

/// The freshly loaded database in the summary mode `maintenance` names (`--summary-mode`),
/// switched as `srql migrate` switches it (to incremental: a backfill).
pub async fn switch_summary_mode(
    url: &str,
    cfg: &store::summaries::SummaryConfig,
    maintenance: &store::summaries::Maintenance,
) -> Result<(), String> {
    let mut client = store::db::connect(url).await.map_err(|e| e.to_string())?;
    store::summaries::ensure(&mut client, cfg, maintenance, &mut |_| {})
        .await
        .map_err(|e| format!("switching to {} summaries: {e}", maintenance.mode.as_str()))?;
    Ok(())
}

/// [`switch_summary_mode`], then [`seal_as_a_running_service_has`]: in that order, as a
/// service that has run in that mode all along has sealed its days.
pub async fn as_a_running_service_in(
    url: &str,
    cfg: &store::summaries::SummaryConfig,
    maintenance: &store::summaries::Maintenance,
) -> Result<(), String> {
    switch_summary_mode(url, cfg, maintenance).await?;
    seal_as_a_running_service_has(url, cfg).await
}

/// A service that has been running keeps every day older than `--seal-after` sealed; one
/// started on freshly loaded days would seal them all while it is measured instead
/// (minutes of CPU a steady state does not spend), so the days are sealed first, where the
/// extension is installed.
pub async fn seal_as_a_running_service_has(
    url: &str,
    cfg: &store::summaries::SummaryConfig,
) -> Result<(), String> {
    let mut client = store::db::connect(url).await.map_err(|e| e.to_string())?;
    if !store::sealing::available(&client)
        .await
        .map_err(|e| e.to_string())?
    {
        return Ok(());
    }
    let bar = progress::spinner("sealing the days a running service has sealed");
    let after = store::sealing::default_seal_after();
    let round = store::sealing::seal_due(&mut client, after, cfg.retention)
        .await
        .map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    if !round.postponed.is_empty() {
        return Err(format!(
            "days not sealed before the measurement: {:?}",
            round.postponed
        ));
    }
    Ok(())
}
