/**
 * One fixed example request and response per API. The golden frames (golden/*.json) are these
 * examples encoded; the round-trip tests decode them back. Typed by the API schemas, so a schema
 * change that breaks an example fails to compile before it fails a test.
 *
 * Examples set optional fields in some places and leave them out in others, so both wire forms
 * are pinned.
 */
import { ApiKey, type ApiKeyNumber, type ApiName, type RequestOf, type ResponseOf } from '../../protocol/index.js';

export interface ApiExample<K extends ApiKeyNumber> {
  readonly apiKey: K;
  /** The version the example is encoded at; default 0. */
  readonly apiVersion?: number;
  readonly request: RequestOf<K>;
  readonly response: ResponseOf<K>;
}

function example<K extends ApiKeyNumber>(value: ApiExample<K>): ApiExample<K> {
  return value;
}

/** Stand-in record-batch bytes: the codec never looks inside them. */
const BATCH = Buffer.from('000000000000002a0000003c00000005020a1b2c3d', 'hex');
const TIMESTAMP_MS = 1_700_000_000_123; // beyond 32 bits: pins the int64 encoding
const BIG_OFFSET = 2 ** 40 + 7;

export const EXAMPLES = {
  Produce: example({
    apiKey: ApiKey.Produce,
    request: {
      transactionalId: null,
      acks: -1,
      timeoutMs: 30_000,
      topicData: [
        {
          name: 'orders',
          partitionData: [
            { index: 0, currentLeaderEpoch: 4, records: BATCH },
            { index: 2, currentLeaderEpoch: -1, records: Buffer.alloc(0) },
          ],
        },
      ],
    },
    response: {
      responses: [
        {
          name: 'orders',
          partitionResponses: [
            { index: 0, errorCode: 0, baseOffset: BIG_OFFSET, logAppendTimeMs: -1, logStartOffset: 0 },
            {
              index: 2,
              errorCode: 19,
              errorMessage: 'partition orders-2 has 1 in-sync replica, min.insync.replicas=2',
              baseOffset: -1,
              logAppendTimeMs: TIMESTAMP_MS,
              logStartOffset: 12,
            },
          ],
        },
      ],
      throttleTimeMs: 0,
    },
  }),
  Fetch: example({
    apiKey: ApiKey.Fetch,
    request: {
      replicaId: 2,
      replicaEpoch: 17,
      maxWaitMs: 500,
      minBytes: 1,
      maxBytes: 52_428_800,
      topics: [
        {
          topic: 'orders',
          partitions: [
            { partition: 0, currentLeaderEpoch: 4, fetchOffset: BIG_OFFSET, lastFetchedEpoch: 3, logStartOffset: 0, partitionMaxBytes: 1_048_576 },
            {
              partition: 1,
              currentLeaderEpoch: -1,
              fetchOffset: 0,
              lastFetchedEpoch: -1,
              logStartOffset: -1,
              partitionMaxBytes: 1_048_576,
              minOffset: 99,
            },
          ],
        },
      ],
    },
    response: {
      throttleTimeMs: 0,
      responses: [
        {
          topic: 'orders',
          partitions: [
            {
              partitionIndex: 0,
              errorCode: 0,
              highWatermark: BIG_OFFSET + 5,
              lastStableOffset: BIG_OFFSET + 5,
              logStartOffset: 0,
              preferredReadReplica: -1,
              records: BATCH,
            },
            {
              partitionIndex: 1,
              errorCode: 74,
              highWatermark: -1,
              lastStableOffset: -1,
              logStartOffset: -1,
              divergingEpoch: { epoch: 3, endOffset: 120 },
              currentLeader: { leaderId: 3, leaderEpoch: 5 },
              preferredReadReplica: -1,
              records: null,
            },
          ],
        },
      ],
    },
  }),
  ListOffsets: example({
    apiKey: ApiKey.ListOffsets,
    request: {
      replicaId: -1,
      topics: [
        {
          name: 'orders',
          partitions: [
            { partitionIndex: 0, currentLeaderEpoch: 4, timestamp: -1 },
            { partitionIndex: 1, currentLeaderEpoch: -1, timestamp: TIMESTAMP_MS },
          ],
        },
      ],
    },
    response: {
      throttleTimeMs: 0,
      topics: [
        {
          name: 'orders',
          partitions: [
            { partitionIndex: 0, errorCode: 0, timestamp: -1, offset: 1234, leaderEpoch: 4 },
            { partitionIndex: 1, errorCode: 0, timestamp: TIMESTAMP_MS, offset: 77, leaderEpoch: 2 },
          ],
        },
      ],
    },
  }),
  Metadata: example({
    apiKey: ApiKey.Metadata,
    request: { topics: ['orders', 'payments'] },
    response: {
      throttleTimeMs: 0,
      brokers: [
        { nodeId: 1, host: '127.0.0.1', port: 9092, url: 'ws://127.0.0.1:9092' },
        { nodeId: 2, host: '127.0.0.1', port: 9094, url: 'ws://127.0.0.1:9094' },
      ],
      clusterId: 'tributary-local',
      controllerId: 1,
      topics: [
        {
          errorCode: 0,
          name: 'orders',
          partitions: [
            { errorCode: 0, partitionIndex: 0, leaderId: 2, leaderEpoch: 4, replicaNodes: [2, 3, 1], isrNodes: [2, 3], offlineReplicas: [] },
            { errorCode: 5, partitionIndex: 1, leaderId: -1, leaderEpoch: 7, replicaNodes: [1, 2], isrNodes: [], offlineReplicas: [1, 2] },
          ],
        },
        { errorCode: 3, name: 'payments', partitions: [] },
      ],
    },
  }),
  OffsetCommit: example({
    apiKey: ApiKey.OffsetCommit,
    request: {
      groupId: 'billing',
      memberEpoch: 7,
      memberId: 'm-1f2e',
      topics: [
        {
          name: 'orders',
          partitions: [
            { partitionIndex: 0, committedOffset: BIG_OFFSET, committedLeaderEpoch: 3, committedMetadata: null },
            { partitionIndex: 1, committedOffset: 0, committedLeaderEpoch: -1, committedMetadata: 'host-a' },
          ],
        },
      ],
    },
    response: {
      throttleTimeMs: 0,
      topics: [{ name: 'orders', partitions: [{ partitionIndex: 0, errorCode: 0 }, { partitionIndex: 1, errorCode: 22 }] }],
    },
  }),
  OffsetFetch: example({
    apiKey: ApiKey.OffsetFetch,
    request: { groupId: 'billing', topics: [{ name: 'orders', partitionIndexes: [0, 1] }] },
    response: {
      throttleTimeMs: 0,
      errorCode: 0,
      topics: [
        {
          name: 'orders',
          partitions: [
            { partitionIndex: 0, committedOffset: BIG_OFFSET, committedLeaderEpoch: 3, metadata: null, errorCode: 0 },
            { partitionIndex: 1, committedOffset: -1, committedLeaderEpoch: -1, metadata: null, errorCode: 0 },
          ],
        },
      ],
    },
  }),
  FindCoordinator: example({
    apiKey: ApiKey.FindCoordinator,
    request: { keyType: 0, keys: ['billing', 'audit'] },
    response: {
      throttleTimeMs: 0,
      coordinators: [
        { key: 'billing', nodeId: 2, host: '127.0.0.1', port: 9094, url: 'ws://127.0.0.1:9094', errorCode: 0, errorMessage: null },
        { key: 'audit', nodeId: -1, host: '', port: 0, url: '', errorCode: 15, errorMessage: '__consumer_offsets-7 has no leader' },
      ],
    },
  }),
  ListGroups: example({
    apiKey: ApiKey.ListGroups,
    request: { statesFilter: [] },
    response: {
      throttleTimeMs: 0,
      errorCode: 0,
      groups: [{ groupId: 'billing', protocolType: 'consumer', groupState: 'stable', members: 3 }],
    },
  }),
  ApiVersions: example({
    apiKey: ApiKey.ApiVersions,
    request: {},
    response: {
      errorCode: 0,
      apiKeys: [
        { apiKey: 0, minVersion: 0, maxVersion: 0 },
        { apiKey: 1, minVersion: 0, maxVersion: 0 },
      ],
      throttleTimeMs: 0,
    },
  }),
  CreateTopics: example({
    apiKey: ApiKey.CreateTopics,
    request: {
      topics: [
        {
          name: 'orders',
          numPartitions: 3,
          replicationFactor: 3,
          configs: [
            { name: 'min.insync.replicas', value: '2' },
            { name: 'retention.ms', value: null },
          ],
        },
        { name: 'bad name!', numPartitions: -1, replicationFactor: -1, configs: [] },
      ],
      timeoutMs: 30_000,
      validateOnly: false,
    },
    response: {
      throttleTimeMs: 0,
      topics: [
        { name: 'orders', errorCode: 0, numPartitions: 3, replicationFactor: 3 },
        { name: 'bad name!', errorCode: 17, errorMessage: "topic name may only hold [a-zA-Z0-9._-], got ' '", numPartitions: -1, replicationFactor: -1 },
      ],
    },
  }),
  DeleteTopics: example({
    apiKey: ApiKey.DeleteTopics,
    request: { topicNames: ['orders', 'gone'], timeoutMs: 30_000 },
    response: {
      throttleTimeMs: 0,
      responses: [
        { name: 'orders', errorCode: 0 },
        { name: 'gone', errorCode: 3, errorMessage: 'no topic named gone' },
      ],
    },
  }),
  InitProducerId: example({
    apiKey: ApiKey.InitProducerId,
    request: { transactionalId: null, transactionTimeoutMs: -1, producerId: -1, producerEpoch: -1 },
    response: { throttleTimeMs: 0, errorCode: 0, producerId: 5_000_000_000, producerEpoch: 0 },
  }),
  OffsetForLeaderEpoch: example({
    apiKey: ApiKey.OffsetForLeaderEpoch,
    request: {
      replicaId: 3,
      topics: [{ topic: 'orders', partitions: [{ partition: 0, currentLeaderEpoch: 5, leaderEpoch: 3 }] }],
    },
    response: {
      throttleTimeMs: 0,
      topics: [{ topic: 'orders', partitions: [{ errorCode: 0, partition: 0, leaderEpoch: 3, endOffset: 120 }] }],
    },
  }),
  DescribeConfigs: example({
    apiKey: ApiKey.DescribeConfigs,
    request: {
      resources: [
        { resourceType: 2, resourceName: 'orders', configurationKeys: ['retention.ms'] },
        { resourceType: 4, resourceName: '1', configurationKeys: null },
      ],
    },
    response: {
      throttleTimeMs: 0,
      results: [
        {
          errorCode: 0,
          resourceType: 2,
          resourceName: 'orders',
          configs: [{ name: 'retention.ms', value: '604800000', readOnly: false, configSource: 5, isSensitive: false }],
        },
        { errorCode: 0, resourceType: 4, resourceName: '1', configs: [] },
      ],
    },
  }),
  ElectLeaders: example({
    apiKey: ApiKey.ElectLeaders,
    request: { electionType: 0, topicPartitions: [{ topic: 'orders', partitions: [0, 1] }], timeoutMs: 60_000 },
    response: {
      throttleTimeMs: 0,
      errorCode: 0,
      replicaElectionResults: [
        {
          topic: 'orders',
          partitionResult: [
            { partitionId: 0, errorCode: 0 },
            { partitionId: 1, errorCode: 84, errorMessage: 'orders-1 already has its preferred leader' },
          ],
        },
      ],
    },
  }),
  IncrementalAlterConfigs: example({
    apiKey: ApiKey.IncrementalAlterConfigs,
    request: {
      resources: [
        {
          resourceType: 2,
          resourceName: 'orders',
          configs: [
            { name: 'retention.ms', configOperation: 0, value: '86400000' },
            { name: 'cleanup.policy', configOperation: 1, value: null },
          ],
        },
      ],
      validateOnly: false,
    },
    response: {
      throttleTimeMs: 0,
      responses: [{ errorCode: 40, errorMessage: 'retention.ms must be >= -1', resourceType: 2, resourceName: 'orders' }],
    },
  }),
  AlterPartition: example({
    apiKey: ApiKey.AlterPartition,
    request: {
      brokerId: 2,
      brokerEpoch: 17,
      topics: [{ topic: 'orders', partitions: [{ partitionIndex: 0, leaderEpoch: 4, newIsr: [2, 3], partitionEpoch: 9 }] }],
    },
    response: {
      throttleTimeMs: 0,
      errorCode: 0,
      topics: [
        { topic: 'orders', partitions: [{ partitionIndex: 0, errorCode: 0, leaderId: 2, leaderEpoch: 4, isr: [2, 3], partitionEpoch: 10 }] },
      ],
    },
  }),
  DescribeCluster: example({
    apiKey: ApiKey.DescribeCluster,
    request: { includeFencedBrokers: true },
    response: {
      throttleTimeMs: 0,
      errorCode: 0,
      clusterId: 'tributary-local',
      controllerId: 1,
      brokers: [
        { brokerId: 1, host: '127.0.0.1', port: 9092, url: 'ws://127.0.0.1:9092', isFenced: false },
        { brokerId: 3, host: '127.0.0.1', port: 9096, url: 'ws://127.0.0.1:9096', isFenced: true },
      ],
    },
  }),
  BrokerRegistration: example({
    apiKey: ApiKey.BrokerRegistration,
    request: { brokerId: 2, incarnationId: '6f1c2a4e-8d3b-4c1a-9e2f-0b7d5a3c9e11', listenerUrl: 'ws://127.0.0.1:9094' },
    response: { throttleTimeMs: 0, errorCode: 0, brokerEpoch: 17 },
  }),
  BrokerHeartbeat: example({
    apiKey: ApiKey.BrokerHeartbeat,
    request: {
      brokerId: 2,
      brokerEpoch: 17,
      sentAtMs: TIMESTAMP_MS,
      wantShutDown: false,
      metadataOffset: 1_234,
      replicas: [
        { topic: 'orders', partition: 0, logEndOffset: BIG_OFFSET, leaderEpoch: 4 },
        { topic: 'orders', partition: 1, logEndOffset: 0, leaderEpoch: 5 },
      ],
    },
    response: { throttleTimeMs: 0, errorCode: 0, isFenced: false, shouldShutDown: false, leaseDurationMs: 9_000 },
  }),
  DescribeQuorum: example({
    apiKey: ApiKey.DescribeQuorum,
    request: {},
    response: {
      errorCode: 0,
      leaderId: 1,
      term: 3,
      commitIndex: BIG_OFFSET,
      voters: [
        { id: 1, address: '127.0.0.1:9093', role: 'leader', lastLogIndex: BIG_OFFSET, appliedIndex: BIG_OFFSET },
        { id: 2, address: '127.0.0.1:9095', role: 'follower', lastLogIndex: BIG_OFFSET - 3 },
        { id: 3, address: '127.0.0.1:9097', role: 'unknown', lastLogIndex: -1 },
      ],
    },
  }),
  AllocateProducerIds: example({
    apiKey: ApiKey.AllocateProducerIds,
    request: { brokerId: 2, brokerEpoch: 17 },
    response: { errorCode: 0, producerIdStart: BIG_OFFSET, producerIdLen: 1000 },
  }),
  ConsumerGroupHeartbeat: example({
    apiKey: ApiKey.ConsumerGroupHeartbeat,
    request: {
      groupId: 'billing',
      memberId: 'm-1f2e',
      memberEpoch: 7,
      clientId: 'app',
      rebalanceTimeoutMs: 300_000,
      subscribedTopicNames: null,
      ownedPartitions: [{ topic: 'orders', partitions: [0, 2] }],
    },
    response: {
      throttleTimeMs: 0,
      errorCode: 0,
      errorMessage: null,
      memberId: null,
      memberEpoch: 8,
      heartbeatIntervalMs: 1_000,
      assignment: { topicPartitions: [{ topic: 'orders', partitions: [0] }] },
    },
  }),
  ConsumerGroupDescribe: example({
    apiKey: ApiKey.ConsumerGroupDescribe,
    request: { groupIds: ['billing'] },
    response: {
      throttleTimeMs: 0,
      groups: [
        {
          errorCode: 0,
          errorMessage: null,
          groupId: 'billing',
          groupState: 'assigning',
          groupEpoch: 9,
          assignmentEpoch: 9,
          members: [
            {
              memberId: 'm-1f2e',
              clientId: 'app',
              memberEpoch: 8,
              subscribedTopicNames: ['orders'],
              assignment: [{ topic: 'orders', partitions: [0, 2] }],
              targetAssignment: [{ topic: 'orders', partitions: [0] }],
            },
          ],
          offsets: [{ topic: 'orders', partition: 0, committedOffset: 120, logEndOffset: BIG_OFFSET, lag: BIG_OFFSET - 120 }],
        },
      ],
    },
  }),
  RaftMessages: example({
    apiKey: ApiKey.RaftMessages,
    // One of each message type, so every case's wire layout is pinned.
    request: {
      fromId: 1,
      toId: 2,
      messages: [
        { type: 'PreVote', from: 1, to: 2, term: 4, lastLogIndex: 10, lastLogTerm: 3 },
        { type: 'PreVoteResp', from: 2, to: 1, term: 4, granted: true },
        { type: 'Vote', from: 1, to: 2, term: 4, lastLogIndex: 10, lastLogTerm: 3 },
        { type: 'VoteResp', from: 2, to: 1, term: 4, granted: false },
        {
          type: 'Append',
          from: 1,
          to: 2,
          term: 4,
          prevLogIndex: 10,
          prevLogTerm: 3,
          entries: [
            { term: 4, index: 11, type: 'noop', data: Buffer.alloc(0) },
            { term: 4, index: BIG_OFFSET, type: 'normal', data: BATCH },
          ],
          leaderCommit: 10,
        },
        { type: 'AppendResp', from: 2, to: 1, term: 4, success: false, matchIndex: 0, rejectedIndex: 10, hintIndex: 8, hintTerm: 2 },
        { type: 'Heartbeat', from: 1, to: 2, term: 4, leaderCommit: 11, readRound: 0 },
        { type: 'HeartbeatResp', from: 2, to: 1, term: 4, readRound: 7 },
        { type: 'InstallSnapshot', from: 1, to: 3, term: 4, snapshot: { lastIncludedIndex: 9, lastIncludedTerm: 3, data: BATCH } },
        { type: 'SnapshotResp', from: 3, to: 1, term: 4, matchIndex: 9 },
      ],
    },
    response: {},
  }),
  FetchMetadata: example({
    apiKey: ApiKey.FetchMetadata,
    request: { brokerId: 2, brokerEpoch: -1, fromIndex: 1, maxWaitMs: 500, maxBytes: 1_048_576 },
    response: {
      errorCode: 0,
      leaderId: 1,
      term: 3,
      highIndex: BIG_OFFSET,
      snapshot: BATCH,
      snapshotIndex: BIG_OFFSET - 2,
      records: [
        { index: BIG_OFFSET - 1, data: BATCH },
        { index: BIG_OFFSET, data: Buffer.alloc(0) },
      ],
    },
  }),
  DescribeFailovers: example({
    apiKey: ApiKey.DescribeFailovers,
    request: { limit: 100 },
    response: {
      entries: [
        {
          index: 12,
          timeMs: TIMESTAMP_MS,
          topic: 'orders',
          partition: 0,
          oldLeader: -1,
          newLeader: 2,
          leaderEpoch: 0,
          trigger: 'created',
          lagAtPromotion: 0,
          recordsLost: 0,
        },
        {
          index: BIG_OFFSET,
          timeMs: TIMESTAMP_MS + 9_000,
          topic: 'orders',
          partition: 0,
          oldLeader: 2,
          newLeader: 3,
          leaderEpoch: 1,
          trigger: 'unclean',
          lagAtPromotion: 40,
          recordsLost: 37,
        },
      ],
    },
  }),
} satisfies { readonly [N in ApiName]: ApiExample<(typeof ApiKey)[N]> };

/** The request header every golden request frame uses. */
/** Examples of versions above an API's first, each pinned as golden/<name>.json too. */
export const LATER_VERSIONS = {
  FetchV1: example({
    apiKey: ApiKey.Fetch,
    apiVersion: 1,
    request: { ...EXAMPLES.Fetch.request, sessionId: 1_234_567, sessionEpoch: 9, forgottenTopics: [{ topic: 'payments', partitions: [2, 5] }] },
    response: { ...EXAMPLES.Fetch.response, errorCode: 0, sessionId: 1_234_567 },
  }),
} satisfies Record<string, ApiExample<ApiKeyNumber>>;

export const EXAMPLE_HEADER = { apiVersion: 0, correlationId: 42, clientId: 'golden' } as const;

/** A whole-request failure, pinned as its own golden frame. */
export const EXAMPLE_ERROR_RESPONSE = {
  correlationId: 42,
  errorCode: 35,
  errorMessage: 'Fetch version 9 is not supported (this server speaks 0..0)',
} as const;
