//! `srql migrate` (and every command that migrates first): the store's setup, with a
//! progress bar while a switch to incremental mode backfills the summary table.

use indicatif::{ProgressBar, ProgressStyle};
use store::summaries::BackfillProgress;

use crate::args::SummaryArgs;

pub async fn migrate(
    url: &str,
    summaries: &SummaryArgs,
    use_pg_cron: bool,
) -> Result<store::setup::SetupReport, String> {
    let cfg = summaries.config()?;
    let maintenance = summaries.maintenance_of(url).await?;
    // Created on the first report only: most runs have nothing to backfill.
    let mut bar: Option<ProgressBar> = None;
    let style = ProgressStyle::with_template(
        "{spinner} backfilling summaries [{bar:30}] {pos}/{len} days {msg} ({elapsed})",
    )
    .map_err(|e| e.to_string())?
    .progress_chars("=> ");
    let mut progress = |p: BackfillProgress| {
        let b = bar.get_or_insert_with(|| {
            let b = ProgressBar::new(p.total);
            b.set_style(style.clone());
            if p.resumed_from > 0 {
                b.println(format!(
                    "resuming an interrupted backfill after {} of {} days",
                    p.resumed_from, p.total
                ));
            }
            b
        });
        b.set_position(p.done);
        b.set_message(format!("{} traces", p.rows));
    };
    let distribution = summaries.distribution()?;
    let report = store::setup::run_distributed(
        url,
        &cfg,
        &maintenance,
        use_pg_cron,
        &mut progress,
        distribution,
    )
    .await
    .map_err(|e| e.to_string());
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    report
}
