#!/bin/bash
# Measurement for S2 (GIN on attributes): OTLP alternating off/on, then bench S,M off then on.
set -x
cd /work/wt/S2
B=target/release/srql
R=bench-results/span-search-gin
mkdir -p $R
for i in 1 2; do
  for m in off on; do
    rm -rf /var/tmp/s2-bench/otlp-$m
    SRQL_SPAN_SEARCH_INDEXES=$m $B bench-otlp --spans 200000 --data-dir /var/tmp/s2-bench/otlp-$m > $R/otlp-indexes-$m-$i.txt 2>&1
    rm -rf /var/tmp/s2-bench/otlp-$m
  done
done
for m in off on; do
  rm -rf /var/tmp/s2-bench/pg-$m
  SRQL_SPAN_SEARCH_INDEXES=$m $B bench --scales S,M --summary-runs 50 --on-the-fly-runs 1 --on-the-fly-target-runs 1 --on-the-fly-budget 1 \
     --data-dir /var/tmp/s2-bench/pg-$m --out-dir $R/indexes-$m --markdown /var/tmp/s2-bench/$m.md > $R/bench-indexes-$m.txt 2>&1
  echo "exit $?" >> $R/bench-indexes-$m.txt
  [ $m = off ] && rm -rf /var/tmp/s2-bench/pg-$m
done
echo ALLDONE
