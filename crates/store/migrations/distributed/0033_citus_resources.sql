-- Resources stored once (single-node migration 0032) on Citus: srql_resources becomes a
-- reference table, a copy on every node, so that srql_spans' join with it runs on each
-- worker beside the span shards. Writers resolve resource ids on the coordinator
-- (srql_resource_ids); unseen resources are rare (one per process started), so the
-- two-phase commit a reference table write costs is paid rarely.
SET LOCAL citus.multi_shard_modify_mode TO 'sequential';
SELECT create_reference_table('srql_resources');
