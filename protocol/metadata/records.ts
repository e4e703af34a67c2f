/**
 * The records of the cluster metadata log: what the active controller proposes to the Raft
 * quorum, what every controller applies, and what brokers fetch and fold into the same image.
 * They live in protocol/ because brokers and controllers share them only as bytes on the wire.
 *
 * Records are decisions, not requests: validation happened before the proposal (the
 * controller's frontend), so applying a record never fails for a reason the world caused. Every
 * value apply() needs is in the record (times included), so applying the same log gives the same
 * image on every node.
 *
 * Heartbeats are deliberately NOT records (as in Kafka's KRaft): liveness lives in the active
 * controller's memory and only its consequences (fence, unfence, leader changes) are logged.
 */

/** Why a partition's leadership changed: the failover log's `trigger`. */
export type LeaderChangeTrigger =
  | 'created' // first leader of a new partition
  | 'fenced' // the leader's broker was fenced (heartbeats stopped, or it re-registered)
  | 'controlled_shutdown' // the leader asked to shut down and handed leadership over first
  | 'preferred' // leadership returned to the first replica (auto rebalance or elect-leaders)
  | 'unclean' // no ISR member alive; an out-of-sync replica was elected (may lose records)
  | 'offline' // no eligible replica: the partition has no leader
  | 'recovered'; // an offline partition got a leader back from its ISR

export interface RegisterBrokerRecord {
  type: 'RegisterBroker';
  brokerId: number;
  /** A fresh id per process start; a new one fences the old process's registration. */
  incarnationId: string;
  /** Where clients and other brokers reach it, e.g. ws://127.0.0.1:9092 */
  address: string;
  timeMs: number;
}

export interface FenceBrokerRecord {
  type: 'FenceBroker';
  brokerId: number;
  brokerEpoch: number;
  reason: 'session_timeout' | 'reregistered' | 'controlled_shutdown';
  timeMs: number;
}

export interface UnfenceBrokerRecord {
  type: 'UnfenceBroker';
  brokerId: number;
  brokerEpoch: number;
  timeMs: number;
}

export interface CreateTopicRecord {
  type: 'CreateTopic';
  name: string;
  topicId: string;
  configs: Record<string, string>;
  /** replicas per partition, first = preferred leader */
  assignments: number[][];
  /** leader per partition (-1: none alive) and ISR per partition, decided by the controller */
  leaders: number[];
  isrs: number[][];
  timeMs: number;
}

export interface DeleteTopicRecord {
  type: 'DeleteTopic';
  name: string;
  timeMs: number;
}

export interface AlterTopicConfigsRecord {
  type: 'AlterTopicConfigs';
  name: string;
  /** keys set to null are removed (back to the default) */
  configs: Record<string, string | null>;
  timeMs: number;
}

/** A change of leader and/or ISR of one partition (Kafka's PartitionChangeRecord). */
export interface ChangePartitionRecord {
  type: 'ChangePartition';
  topic: string;
  partition: number;
  /** new leader (-1 for none); absent = unchanged */
  leader?: number;
  /** new ISR; absent = unchanged */
  isr?: number[];
  /** set when the leader changes */
  trigger?: LeaderChangeTrigger;
  /** records the new leader lacked at promotion (reported LEO gap to the most complete replica) */
  lagAtPromotion?: number;
  /** for unclean elections: records known to be lost (old high watermark minus new leader's LEO) */
  recordsLost?: number;
  timeMs: number;
}

export interface AllocateProducerIdsRecord {
  type: 'AllocateProducerIds';
  brokerId: number;
  /** block [firstProducerId, firstProducerId + count) */
  firstProducerId: number;
  count: number;
  timeMs: number;
}

/** Written by a new Raft leader; carries nothing but marks the term (Raft §8). */
export interface NoopRecord {
  type: 'Noop';
}

export type MetadataRecord =
  | RegisterBrokerRecord
  | FenceBrokerRecord
  | UnfenceBrokerRecord
  | CreateTopicRecord
  | DeleteTopicRecord
  | AlterTopicConfigsRecord
  | ChangePartitionRecord
  | AllocateProducerIdsRecord
  | NoopRecord;

export type MetadataRecordType = MetadataRecord['type'];
