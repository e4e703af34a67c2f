/**
 * API keys: Kafka's numbers for every API Kafka has, so a packet capture or a log line reads the
 * same as in Kafka. A new API takes Kafka's number if Kafka has that API, else a number from
 * 1000 up (Kafka will not reach it), and gets its own file in apis/.
 */
import type { ProtocolLimits } from './frame.js';
import type { Schema } from './schema.js';

export const ApiKey = {
  Produce: 0,
  Fetch: 1,
  ListOffsets: 2,
  Metadata: 3,
  OffsetCommit: 8,
  OffsetFetch: 9,
  FindCoordinator: 10,
  ListGroups: 16,
  ApiVersions: 18,
  CreateTopics: 19,
  DeleteTopics: 20,
  InitProducerId: 22,
  OffsetForLeaderEpoch: 23,
  DescribeConfigs: 32,
  ElectLeaders: 43,
  IncrementalAlterConfigs: 44,
  DescribeQuorum: 55,
  AlterPartition: 56,
  DescribeCluster: 60,
  BrokerRegistration: 62,
  BrokerHeartbeat: 63,
  AllocateProducerIds: 67,
  ConsumerGroupHeartbeat: 68,
  ConsumerGroupDescribe: 69,
  // Ours (Kafka will not reach 1000).
  RaftMessages: 1000,
  FetchMetadata: 1001,
  DescribeFailovers: 1002,
} as const;

export type ApiName = keyof typeof ApiKey;
export type ApiKeyNumber = (typeof ApiKey)[ApiName];

/** Inclusive range of versions this build speaks for an API. */
export interface VersionRange {
  readonly min: number;
  readonly max: number;
}

/**
 * What each file in apis/ exports: the key, the versions, and the schemas, built from the limits
 * so that every array, string and byte field is bounded by the configured ProtocolLimits.
 */
export interface ApiDefinition<K extends number, Req, Res> {
  readonly apiKey: K;
  readonly name: ApiName;
  readonly versions: VersionRange;
  /**
   * The schemas of one version (every version in `versions` is asked for). A later version may
   * add fields; Req and Res are the newest version's types, so older versions' fields must be a
   * subset of them (a field an older version lacks is simply not carried).
   */
  schemas(limits: ProtocolLimits, version: number): { readonly request: Schema<Req>; readonly response: Schema<Res> };
}

/** Identity with inference: keeps the literal key and the request/response types. */
export function defineApi<K extends number, Req, Res>(definition: ApiDefinition<K, Req, Res>): ApiDefinition<K, Req, Res> {
  return definition;
}
