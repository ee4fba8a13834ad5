//! `srql query`: one query, straight to the database, printed as a table or JSON.

use chrono::Utc;

use crate::args::{DbArgs, QueryArgs};
use crate::database;

pub async fn query(db: &DbArgs, args: &QueryArgs) -> Result<(), String> {
    let db = database::open(db).await?;
    let client = store::db::connect(&db.reader_url)
        .await
        .map_err(|e| e.to_string())?;
    let catalog = store::summaries::catalog(&client)
        .await
        .map_err(|e| e.to_string())?;
    let page = srql_plan::PageRequest {
        limit: args.limit,
        cursor: args.cursor.as_deref(),
        ..Default::default()
    };
    let plan = srql_plan::compile(
        &args.srql,
        &catalog,
        &page,
        &srql_lang::Limits::default(),
        Utc::now(),
    )
    .map_err(|e| format!("bad query: {e}"))?;
    let started = std::time::Instant::now();
    let result = store::exec::run(&client, &plan)
        .await
        .map_err(|e| e.to_string())?;
    let elapsed = started.elapsed();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&result).map_err(|e| e.to_string())?
        );
    } else {
        print!("{}", crate::table::render(&result.results));
        eprintln!(
            "source: {} ({}); {:.1} ms{}",
            plan.source.label(),
            plan.reason,
            elapsed.as_secs_f64() * 1000.0,
            result
                .pagination
                .next_cursor
                .map(|c| format!("; next page: --cursor {c}"))
                .unwrap_or_default()
        );
    }
    Ok(())
}
