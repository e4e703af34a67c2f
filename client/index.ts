/**
 * The package's main export: `import { Tributary, TributaryError } from 'tributary'`.
 * Public interfaces and classes only; see client/README.md.
 */
export { Tributary, type TributaryConfig } from './tributary.js';
export {
  Admin,
  type GroupDescription,
  type GroupListing,
  type GroupMemberDescription,
  type GroupOffsetDescription,
  type ResetTarget,
  type ClusterDescription, type CreateTopicsOptions, type PartitionDescription, type TopicDescription, type TopicSpec } from './admin.js';
export { Producer, type Acks, type Message, type ProduceAck, type ProducerOptions, type ProducerRecord, type RecordOffset } from './producer.js';
export {
  Consumer,
  type ConsumedMessage,
  type ConsumerOptions,
  type OffsetReset,
  type PartitionAssignment,
  type ReadFrom,
  type RunOptions,
  type SubscribeOptions,
} from './consumer.js';
export type { GroupEventName, GroupEvents, GroupListener, TopicPartition } from './group-membership.js';
export type { RetryOptions } from './cluster.js';
export { murmur2, partitionForKey, toPositive } from './partitioner.js';
export { ERRORS, TributaryError, type ErrorName } from './errors.js';
