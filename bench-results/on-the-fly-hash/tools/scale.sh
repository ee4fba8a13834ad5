#!/bin/bash
# usage: scale.sh NAME ROUNDS -- serves /tmp/NAMEdata, renders old/new SQL and plain at now, times
n=$1; rounds=$2; export D=/tmp/${n}data
B=/work/bench/target/release/srql
$B --data-dir $D --no-pg-cron --summary-mode incremental serve --seal-after off > /tmp/${n}serve.log 2>&1 &
sleep 6
N=$(date -u +%Y-%m-%dT%H:%M:%SZ); S=$(date -u -d "$N - 24 hours" +%Y-%m-%dT%H:%M:%SZ)
/tmp/otf/gen.sh /work/main /tmp/otf/new $N
CARGO_TARGET_DIR=/work/wt/old/target /tmp/otf/gen.sh /work/wt/old /tmp/otf/old $N
sed "s/2026-12-01T16:22:07Z/$S/; s/2026-12-02T16:22:07Z/$N/" /work/main/bench-results/on-the-fly-attr/sql-L/plain.sql > /tmp/plain.sql
/tmp/otf/timeit.sh $rounds attr_401 attr_200 attr_not401 attr_like attr_exists attr_cmp span_name root_service span_mixed slow by_duration > /tmp/otf/times-$n.txt 2>&1
pkill -INT -f "srql --data-dir $D"
sleep 3
