#!/bin/bash
# usage: gen_q.sh OUTDIR NOW(rfc3339) -- renders the on-the-fly SQL of the current worktree code
out=$1; now=$2; mkdir -p $out
cd /work/wt/otf-attr
declare -A Q=(
 [attr_401]='in:otel_trace_summaries time:last_24h span.attributes.http.status_code:401 limit:20'
 [attr_200]='in:otel_trace_summaries time:last_24h span.attributes.http.status_code:200 limit:20'
 [attr_not401]='in:otel_trace_summaries time:last_24h !span.attributes.http.status_code:401 limit:20'
 [attr_like]='in:otel_trace_summaries time:last_24h span.attributes.http.route:%orders% limit:20'
 [attr_exists]='in:otel_trace_summaries time:last_24h span.attributes.db.system:* limit:20'
 [attr_cmp]='in:otel_trace_summaries time:last_24h span.attributes.http.status_code:>=500 limit:20'
 [span_name]='in:otel_trace_summaries time:last_24h span.name:compute.price limit:20'
 [root_service]='in:otel_trace_summaries time:last_24h root_service_name:svc-3 limit:100'
 [span_mixed]='in:otel_trace_summaries time:last_24h span.attributes.http.status_code:401 !span.attributes.http.status_code:200 limit:20'
)
for k in "${!Q[@]}"; do
  SRQL_OTF_VARIANT=${VARIANT:-base} SRQL_DUMP_NOW=$now SRQL_DUMP_Q="${Q[$k]}" nice -n 19 cargo test -q -p srql-plan --test zz_dump_sql -- --nocapture 2>/dev/null | sed -n '/^-- in:/,/^LIMIT/p' > $out/$k.sql
done
# the yardstick with the same 24 h
start=$(date -u -d "$now - 24 hours" +%Y-%m-%dT%H:%M:%SZ)
cd /work/wt/otf-attr && cat > $out/plain.sql <<SQL
SELECT * FROM (SELECT $(sed -n '/^pub const AGGREGATES/,/";$/p' crates/srql-plan/src/summary_sql.rs | sed '1s/.*"\\$//; $s/";$//; s/\\"/"/g')
  FROM otel_traces WHERE timestamp >= '$start' AND timestamp <= '$now' GROUP BY trace_id) t ORDER BY timestamp DESC, trace_id DESC LIMIT 100;
SQL
ls $out
