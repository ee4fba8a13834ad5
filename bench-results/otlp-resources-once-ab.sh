#!/bin/bash
# Alternating before/after OTLP ingest runs on one embedded cluster dir each.
for i in 1 2 3; do
  for side in before after; do
    if [ $side = before ]; then bin=/work/srql-e; else bin=/work/bench/target/release/srql; fi
    echo "=== run $i $side ($bin) $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
    nice -n -10 $bin --data-dir /work/otlp-b/$side bench-otlp --spans 500000 --clients 8 --writers 2 2>&1 | grep -v "INFO\|WARN"
  done
done
