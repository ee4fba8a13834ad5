#!/bin/bash
# usage: gen.sh SRCDIR OUTDIR NOW
src=$1; out=$2; now=$3; mkdir -p $out
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
 [slow]='in:otel_trace_summaries time:last_24h span.service_name:svc-3 span.duration_ms:>1000 limit:20'
 [service]='in:otel_trace_summaries time:last_24h service_name:svc-3 limit:100'
 [by_duration]='in:otel_trace_summaries time:last_24h sort:duration_ms:desc limit:100'
)
cd $src
for k in "${!Q[@]}"; do
  SRQL_DUMP_NOW=$now SRQL_DUMP_Q="${Q[$k]}" cargo test -q -p srql-plan --test zz_dump_sql -- --nocapture 2>/dev/null | sed -n '/^-- in:/,/;$/p' > $out/$k.sql
done
