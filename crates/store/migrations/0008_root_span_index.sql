-- Root spans by time, carrying what `rollup_stats:summary` on spans reads (the traces
-- tab's cards: traces, errors, average and p95 root duration): the card reads about one
-- span in seven by index instead of every span of the range. Its predicate is the root
-- test the rollup renders, word for word, so the planner can match it. Partitions get
-- it from the parent; a bulk-load stage or a sealed day gets it when attached.
CREATE INDEX otel_traces_root_timestamp_idx ON otel_traces (timestamp DESC)
    INCLUDE (status_code, start_time_unix_nano, end_time_unix_nano, service_name)
    WHERE coalesce(parent_span_id, '') = '';
