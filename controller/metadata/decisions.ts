/**
 * The controller's frontend: pure functions that look at the current metadata image and what the
 * active controller knows of broker liveness, validate a request, and decide which records to
 * propose. No IO, no clock (time is passed in), so every rule here is unit-tested directly.
 *
 *   request ──validate/decide (here)──► records ──Raft──► applyRecord (protocol/metadata) ──► image
 */
import { TributaryError } from '../../protocol/errors.js';
import type { MetadataImage, PartitionImage } from '../../protocol/metadata/image.js';
import { liveBrokerIds } from '../../protocol/metadata/image.js';
import type { ChangePartitionRecord, CreateTopicRecord, LeaderChangeTrigger, MetadataRecord } from '../../protocol/metadata/records.js';
import { topicConfigValue, validateTopicConfigs, validateTopicName } from '../../protocol/metadata/topic-config.js';

/** What the active controller knows beyond the image: who is alive and how long each log is. */
export interface LivenessView {
  /** Unfenced brokers whose session has not timed out. */
  isAlive(brokerId: number): boolean;
  /** Last log end offset the broker reported for this partition replica, if any. */
  logEndOffset(brokerId: number, topic: string, partition: number): number | undefined;
}

export interface CreateTopicRequest {
  name: string;
  numPartitions: number;
  replicationFactor: number;
  configs: Record<string, string>;
}

/** Broker-level defaults for new topics (Kafka's num.partitions, default.replication.factor, ...). */
export interface TopicDefaults {
  numPartitions: number;
  defaultReplicationFactor: number;
  /** topic-config defaults set at broker/controller level, e.g. min.insync.replicas */
  configs: Record<string, string>;
}

export const PARTITIONS_PER_TOPIC_MAX = 10_000;

/** Validate a CreateTopics entry and decide the replica assignment and first leaders. */
export function planCreateTopic(
  image: MetadataImage,
  request: CreateTopicRequest,
  defaults: TopicDefaults,
  topicId: string,
  timeMs: number,
  isAlive: (brokerId: number) => boolean = () => true,
): CreateTopicRecord {
  validateTopicName(request.name);
  if (image.topics.has(request.name)) throw new TributaryError('TOPIC_ALREADY_EXISTS', `topic ${request.name} already exists`);
  const numPartitions = request.numPartitions === -1 ? defaults.numPartitions : request.numPartitions;
  if (!Number.isInteger(numPartitions) || numPartitions < 1 || numPartitions > PARTITIONS_PER_TOPIC_MAX) {
    throw new TributaryError('INVALID_PARTITIONS', `partitions must be between 1 and ${PARTITIONS_PER_TOPIC_MAX}, got ${request.numPartitions}`);
  }
  const configs = validateTopicConfigs(request.configs);
  let replicationFactor = request.replicationFactor === -1 ? defaults.defaultReplicationFactor : request.replicationFactor;
  if (configs['replication.factor'] !== undefined) {
    const fromConfig = Number(configs['replication.factor']);
    if (request.replicationFactor !== -1 && fromConfig !== request.replicationFactor) {
      throw new TributaryError('INVALID_CONFIG', `replication.factor=${fromConfig} disagrees with the replication factor ${request.replicationFactor}`);
    }
    replicationFactor = fromConfig;
  }
  // Unfenced in the image AND alive now: a broker whose session just ran out but is not fenced
  // yet must not become a new partition's leader.
  const live = liveBrokerIds(image).filter(isAlive);
  if (!Number.isInteger(replicationFactor) || replicationFactor < 1) {
    throw new TributaryError('INVALID_REPLICATION_FACTOR', `replication factor must be at least 1, got ${replicationFactor}`);
  }
  if (replicationFactor > live.length) {
    throw new TributaryError('INVALID_REPLICATION_FACTOR', `replication factor ${replicationFactor} is larger than the ${live.length} available broker${live.length === 1 ? '' : 's'}`);
  }
  configs['replication.factor'] = String(replicationFactor);
  const minInsync = Number(topicConfigValue(configs, 'min.insync.replicas', defaults.configs));
  if (minInsync > replicationFactor) {
    throw new TributaryError('INVALID_CONFIG', `min.insync.replicas=${minInsync} is larger than the replication factor ${replicationFactor}`);
  }
  if (configs['min.insync.replicas'] === undefined && defaults.configs['min.insync.replicas'] !== undefined) {
    // Pin the default in effect at creation, so describe shows what the topic really requires.
    configs['min.insync.replicas'] = String(minInsync);
  }

  // Round-robin from a start that moves with the number of partitions already in the cluster, so
  // leaders (first replicas) spread evenly across brokers and across topics.
  let existing = 0;
  for (const t of image.topics.values()) existing += t.partitions.length;
  const assignments: number[][] = [];
  for (let p = 0; p < numPartitions; p++) {
    const replicas: number[] = [];
    for (let r = 0; r < replicationFactor; r++) replicas.push(live[(existing + p + r) % live.length]!);
    assignments.push(replicas);
  }
  return {
    type: 'CreateTopic',
    name: request.name,
    topicId,
    configs,
    assignments,
    leaders: assignments.map((replicas) => replicas[0]!),
    isrs: assignments.map((replicas) => replicas.slice()),
    timeMs,
  };
}

/** Where leadership should go for a partition whose leader is gone or must move. */
export interface Election {
  leader: number;
  trigger: LeaderChangeTrigger;
  lagAtPromotion: number;
  recordsLost: number;
}

function reportedLeo(liveness: LivenessView, brokerId: number, p: PartitionImage): number {
  return liveness.logEndOffset(brokerId, p.topic, p.partition) ?? -1;
}

/**
 * Choose a leader among `candidates` (alive, excluding `excluded`): the most complete log first
 * (highest reported log end offset), lowest broker id on a tie. The seeds' rule, and Kafka's
 * intent: losing as little of the uncommitted tail as possible.
 */
function mostComplete(p: PartitionImage, candidates: readonly number[], liveness: LivenessView): number | undefined {
  let best: number | undefined;
  let bestLeo = -Infinity;
  for (const id of [...candidates].sort((a, b) => a - b)) {
    const leo = reportedLeo(liveness, id, p);
    if (leo > bestLeo) {
      best = id;
      bestLeo = leo;
    }
  }
  return best;
}

/**
 * Elect a leader for `p` from its live ISR members other than `excluded`. With none: an out-of-sync
 * live replica if `uncleanAllowed` (recording the records lost), else undefined (offline).
 */
export function electLeader(p: PartitionImage, liveness: LivenessView, options: { excluded?: number; uncleanAllowed: boolean; trigger: LeaderChangeTrigger }): Election | undefined {
  const eligible = (id: number) => id !== options.excluded && liveness.isAlive(id);
  const isrCandidates = p.isr.filter(eligible);
  const bestLeoOfAll = Math.max(-1, ...p.replicas.map((id) => reportedLeo(liveness, id, p)));
  const clean = mostComplete(p, isrCandidates, liveness);
  if (clean !== undefined) {
    const lag = Math.max(0, bestLeoOfAll - Math.max(0, reportedLeo(liveness, clean, p)));
    return { leader: clean, trigger: options.trigger, lagAtPromotion: lag, recordsLost: 0 };
  }
  if (!options.uncleanAllowed) return undefined;
  const unclean = mostComplete(p, p.replicas.filter(eligible), liveness);
  if (unclean === undefined) return undefined;
  // Records the old ISR had that the new leader lacks: the best log end offset any ISR member
  // ever reported, minus the new leader's.
  const isrBest = Math.max(-1, ...p.isr.map((id) => reportedLeo(liveness, id, p)));
  const mine = Math.max(0, reportedLeo(liveness, unclean, p));
  return { leader: unclean, trigger: 'unclean', lagAtPromotion: Math.max(0, bestLeoOfAll - mine), recordsLost: Math.max(0, isrBest - mine) };
}

/**
 * A broker is fenced (session timed out, or it re-registered as a new process): it leaves every
 * ISR (unless it is the last member: the ISR is never empty, as in Kafka, so we know who may lead
 * when it returns), and every partition it led gets a new leader or goes offline.
 */
export function planFenceBroker(
  image: MetadataImage,
  brokerId: number,
  reason: 'session_timeout' | 'reregistered' | 'controlled_shutdown',
  liveness: LivenessView,
  timeMs: number,
): MetadataRecord[] {
  const broker = image.brokers.get(brokerId);
  if (broker === undefined) return [];
  const records: MetadataRecord[] = [];
  if (!broker.fenced) records.push({ type: 'FenceBroker', brokerId, brokerEpoch: broker.brokerEpoch, reason, timeMs });
  const trigger: LeaderChangeTrigger = reason === 'controlled_shutdown' ? 'controlled_shutdown' : 'fenced';
  for (const topic of image.topics.values()) {
    const unclean = topicConfigValue(topic.configs, 'unclean.leader.election.enable') === 'true';
    for (const p of topic.partitions) {
      const change = partitionWithout(p, brokerId, liveness, unclean, trigger, timeMs);
      if (change !== undefined) records.push(change);
    }
  }
  return records;
}

function partitionWithout(p: PartitionImage, brokerId: number, liveness: LivenessView, uncleanAllowed: boolean, trigger: LeaderChangeTrigger, timeMs: number): ChangePartitionRecord | undefined {
  const inIsr = p.isr.includes(brokerId);
  const leads = p.leader === brokerId;
  if (!inIsr && !leads) return undefined;
  const isrWithout = p.isr.filter((id) => id !== brokerId);
  if (!leads) {
    if (isrWithout.length === 0) return undefined;
    return { type: 'ChangePartition', topic: p.topic, partition: p.partition, isr: isrWithout, timeMs };
  }
  const election = electLeader(p, liveness, { excluded: brokerId, uncleanAllowed, trigger });
  if (election === undefined) {
    // Offline: keep the last ISR member(s) so a clean election can happen when one returns.
    return { type: 'ChangePartition', topic: p.topic, partition: p.partition, leader: -1, isr: isrWithout.length > 0 ? isrWithout : p.isr.slice(), trigger: 'offline', timeMs };
  }
  const isr = election.trigger === 'unclean' ? [election.leader] : isrWithout;
  return {
    type: 'ChangePartition', topic: p.topic, partition: p.partition, leader: election.leader, isr,
    trigger: election.trigger, lagAtPromotion: election.lagAtPromotion, recordsLost: election.recordsLost, timeMs,
  };
}

/**
 * A broker came back (unfenced): offline partitions whose ISR holds a live member get a leader
 * again. Preferred-leader moves are a separate decision (planPreferredLeaders).
 */
export function planRecoverOffline(image: MetadataImage, liveness: LivenessView, timeMs: number): ChangePartitionRecord[] {
  const records: ChangePartitionRecord[] = [];
  for (const topic of image.topics.values()) {
    const unclean = topicConfigValue(topic.configs, 'unclean.leader.election.enable') === 'true';
    for (const p of topic.partitions) {
      if (p.leader !== -1) continue;
      const election = electLeader(p, liveness, { uncleanAllowed: unclean, trigger: 'recovered' });
      if (election === undefined) continue;
      records.push({
        type: 'ChangePartition', topic: p.topic, partition: p.partition, leader: election.leader,
        isr: election.trigger === 'unclean' ? [election.leader] : p.isr.slice(),
        trigger: election.trigger, lagAtPromotion: election.lagAtPromotion, recordsLost: election.recordsLost, timeMs,
      });
    }
  }
  return records;
}

/**
 * Move leadership back to each partition's first replica where that replica is alive, in the ISR
 * and not already leading (Kafka's preferred leader election). `only` limits it to some partitions.
 */
export function planPreferredLeaders(image: MetadataImage, liveness: LivenessView, timeMs: number, only?: ReadonlySet<string>): ChangePartitionRecord[] {
  const records: ChangePartitionRecord[] = [];
  for (const topic of image.topics.values()) {
    for (const p of topic.partitions) {
      if (only !== undefined && !only.has(`${p.topic}-${p.partition}`)) continue;
      const preferred = p.replicas[0]!;
      if (p.leader === preferred || !p.isr.includes(preferred) || !liveness.isAlive(preferred)) continue;
      records.push({ type: 'ChangePartition', topic: p.topic, partition: p.partition, leader: preferred, trigger: 'preferred', timeMs });
    }
  }
  return records;
}

export interface AlterPartitionRequest {
  brokerId: number;
  brokerEpoch: number;
  topic: string;
  partition: number;
  leaderEpoch: number;
  partitionEpoch: number;
  newIsr: number[];
}

/**
 * A leader asks to change its partition's ISR (shrink a lagging follower, or expand one that
 * caught up). Accepted only from the current leader with the current epochs; a new member must
 * be a live replica. Returns the record to propose, or null when nothing changes.
 */
export function planAlterPartition(image: MetadataImage, request: AlterPartitionRequest, liveness: LivenessView, timeMs: number): ChangePartitionRecord | null {
  const broker = image.brokers.get(request.brokerId);
  if (broker === undefined || broker.brokerEpoch !== request.brokerEpoch) {
    throw new TributaryError('STALE_BROKER_EPOCH', `broker ${request.brokerId} epoch ${request.brokerEpoch} is not current`);
  }
  const p = image.topics.get(request.topic)?.partitions[request.partition];
  if (p === undefined) throw new TributaryError('UNKNOWN_TOPIC_OR_PARTITION', `no partition ${request.topic}-${request.partition}`);
  if (p.leader !== request.brokerId) throw new TributaryError('NOT_LEADER_OR_FOLLOWER', `broker ${request.brokerId} does not lead ${request.topic}-${request.partition} (leader ${p.leader})`);
  if (request.leaderEpoch < p.leaderEpoch) throw new TributaryError('FENCED_LEADER_EPOCH', `leader epoch ${request.leaderEpoch} < current ${p.leaderEpoch}`);
  if (request.leaderEpoch > p.leaderEpoch) throw new TributaryError('UNKNOWN_LEADER_EPOCH', `leader epoch ${request.leaderEpoch} > current ${p.leaderEpoch}`);
  if (request.partitionEpoch !== p.partitionEpoch) {
    throw new TributaryError('INVALID_UPDATE_VERSION', `partition epoch ${request.partitionEpoch} is not the current ${p.partitionEpoch} of ${request.topic}-${request.partition}`);
  }
  const isr = [...new Set(request.newIsr)].sort((a, b) => a - b);
  if (!isr.includes(p.leader)) throw new TributaryError('INVALID_REQUEST', `the new ISR [${isr}] must contain the leader ${p.leader}`);
  for (const id of isr) {
    if (!p.replicas.includes(id)) throw new TributaryError('INVALID_REQUEST', `broker ${id} is not a replica of ${request.topic}-${request.partition}`);
    if (!p.isr.includes(id) && !liveness.isAlive(id)) {
      throw new TributaryError('INELIGIBLE_REPLICA', `broker ${id} is fenced or not alive and cannot join the ISR`);
    }
  }
  const same = isr.length === p.isr.length && [...p.isr].sort((a, b) => a - b).every((id, i) => id === isr[i]);
  if (same) return null;
  return { type: 'ChangePartition', topic: request.topic, partition: request.partition, isr, timeMs };
}
