/**
 * Views of a metadata image in the shapes the APIs answer with, shared by controllers (which
 * answer `cluster status` without any broker) and brokers (which answer clients).
 */
import { ERRORS } from '../errors.js';
import type { MetadataResponse } from '../apis/metadata.js';
import type { MetadataImage } from './image.js';

export function brokerUrlParts(url: string): { host: string; port: number } {
  const m = /^wss?:\/\/\[?([^\]/]+?)\]?:(\d+)/.exec(url);
  return m === null ? { host: url, port: 0 } : { host: m[1]!, port: Number(m[2]) };
}

/** The Metadata API's answer from an image: every topic when `topics` is null. */
export function metadataResponseFromImage(image: MetadataImage, topics: readonly string[] | null, controllerId: number): MetadataResponse {
  const brokers = [...image.brokers.values()]
    .filter((b) => !b.fenced)
    .sort((a, b) => a.brokerId - b.brokerId)
    .map((b) => ({ nodeId: b.brokerId, ...brokerUrlParts(b.address), url: b.address }));
  const names = topics ?? [...image.topics.keys()].sort();
  return {
    throttleTimeMs: 0,
    brokers,
    clusterId: null,
    controllerId,
    topics: names.map((name) => {
      const topic = image.topics.get(name);
      if (topic === undefined) return { errorCode: ERRORS.UNKNOWN_TOPIC_OR_PARTITION.code, name, partitions: [] };
      return {
        errorCode: 0,
        name,
        partitions: topic.partitions.map((p) => ({
          errorCode: p.leader === -1 ? ERRORS.LEADER_NOT_AVAILABLE.code : 0,
          partitionIndex: p.partition,
          leaderId: p.leader,
          leaderEpoch: p.leaderEpoch,
          replicaNodes: p.replicas.slice(),
          isrNodes: p.isr.slice(),
          offlineReplicas: p.replicas.filter((id) => image.brokers.get(id)?.fenced !== false),
        })),
      };
    }),
  };
}
