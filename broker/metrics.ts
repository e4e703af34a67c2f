/**
 * The broker's Prometheus metrics (prom-client), one registry per broker so tests can run several
 * brokers in one process. Names follow Prometheus conventions with a `tributary_` prefix.
 */
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';

export function createBrokerMetrics(brokerId: number) {
  const registry = new Registry();
  registry.setDefaultLabels({ broker: String(brokerId) });
  collectDefaultMetrics({ register: registry });
  const registers = [registry];
  return {
    registry,
    recordsIn: new Counter({ name: 'tributary_broker_records_in_total', help: 'records appended as leader', registers }),
    bytesIn: new Counter({ name: 'tributary_broker_bytes_in_total', help: 'record bytes appended as leader', registers }),
    bytesOut: new Counter({ name: 'tributary_broker_bytes_out_total', help: 'record bytes served to consumers', registers }),
    produceErrors: new Counter({ name: 'tributary_broker_produce_errors_total', help: 'produce partition errors by code', labelNames: ['code'] as const, registers }),
    followerFetchRequests: new Counter({ name: 'tributary_broker_follower_fetch_requests_total', help: 'fetch requests from follower replicas answered, by kind: full (opened a fetch session), incremental (in a session), sessionless', labelNames: ['kind'] as const, registers }),
    fetchSessions: new Gauge({ name: 'tributary_broker_fetch_sessions', help: 'incremental fetch sessions held (KIP-227)', registers }),
    fetchSessionEvictions: new Counter({ name: 'tributary_broker_fetch_session_evictions_total', help: 'fetch sessions evicted to make room for a new one (max.incremental.fetch.session.cache.slots)', registers }),
    consumerFetchRequests: new Counter({ name: 'tributary_broker_consumer_fetch_requests_total', help: 'consumer fetch requests, by whether this broker served as leader or follower', labelNames: ['served_by'] as const, registers }),
    duplicateBatches: new Counter({ name: 'tributary_broker_duplicate_batches_total', help: 'idempotent retries answered with their original offset instead of being written again', registers }),
    followerAppends: new Counter({ name: 'tributary_broker_follower_appends_total', help: 'batches of records appended as follower', registers }),
    partitions: new Gauge({ name: 'tributary_broker_partitions', help: 'partition replicas hosted', registers }),
    leaderPartitions: new Gauge({ name: 'tributary_broker_leader_partitions', help: 'partitions this broker leads', registers }),
    underReplicated: new Gauge({ name: 'tributary_broker_under_replicated_partitions', help: 'led partitions whose ISR is smaller than the replica set', registers }),
    isrSize: new Gauge({ name: 'tributary_broker_isr_size', help: 'ISR size of each led partition', labelNames: ['partition'] as const, registers }),
    followerLagRecords: new Gauge({ name: 'tributary_broker_follower_lag_records', help: 'records a follower is behind the leader', labelNames: ['partition', 'follower'] as const, registers }),
    followerLagMs: new Gauge({ name: 'tributary_broker_follower_lag_ms', help: 'ms since a follower was last caught up', labelNames: ['partition', 'follower'] as const, registers }),
    hasLease: new Gauge({ name: 'tributary_broker_has_lease', help: '1 while the broker holds a valid lease from the controller', registers }),
    metadataAppliedIndex: new Gauge({ name: 'tributary_broker_metadata_applied_index', help: 'last metadata record applied', registers }),
    cleanerRuns: new Counter({ name: 'tributary_log_cleaner_runs_total', help: 'log cleaner rounds that rewrote segments of a compacted partition', registers }),
    cleanerRecordsRemoved: new Counter({ name: 'tributary_log_cleaner_records_removed_total', help: 'records the log cleaner removed (superseded by a later record with the same key, or expired tombstones)', registers }),
    cleanerBytesRemoved: new Counter({ name: 'tributary_log_cleaner_bytes_removed_total', help: 'bytes the log cleaner removed from compacted partitions', registers }),
    // Consumer groups: only for the groups this broker coordinates (series of others are removed).
    groupMembers: new Gauge({ name: 'tributary_group_members', help: 'members of each group this broker coordinates', labelNames: ['group'] as const, registers }),
    groupEpoch: new Gauge({ name: 'tributary_group_epoch', help: 'group epoch of each group this broker coordinates', labelNames: ['group'] as const, registers }),
    groupLag: new Gauge({ name: 'tributary_group_lag', help: 'log end offset (high watermark) minus committed offset, per group and partition', labelNames: ['group', 'topic', 'partition'] as const, registers }),
    groupRebalances: new Counter({ name: 'tributary_group_rebalances_total', help: 'target assignments computed (a member joined or left, a subscription or topic changed)', registers }),
  };
}

export type BrokerMetrics = ReturnType<typeof createBrokerMetrics>;
