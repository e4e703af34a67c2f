/**
 * Sets of topic-partitions as the coordinator keeps them: a `Set` of `topic:partition` keys (topic
 * names cannot hold ':' — see protocol/metadata/topic-config.ts), and conversions to and from the
 * wire's `[{ topic, partitions }]` lists, sorted so every output is deterministic.
 */

export type TopicPartitionKey = string;

export interface WireTopicPartitions {
  topic: string;
  partitions: number[];
}

export function tpKey(topic: string, partition: number): TopicPartitionKey {
  return `${topic}:${partition}`;
}

export function parseTpKey(key: TopicPartitionKey): { topic: string; partition: number } {
  const at = key.lastIndexOf(':');
  return { topic: key.slice(0, at), partition: Number(key.slice(at + 1)) };
}

export function topicOf(key: TopicPartitionKey): string {
  return key.slice(0, key.lastIndexOf(':'));
}

/** Keys in (topic, partition) order. */
export function sortKeys(keys: Iterable<TopicPartitionKey>): TopicPartitionKey[] {
  return [...keys].sort(compareKeys);
}

export function compareKeys(a: TopicPartitionKey, b: TopicPartitionKey): number {
  const pa = parseTpKey(a);
  const pb = parseTpKey(b);
  if (pa.topic !== pb.topic) return pa.topic < pb.topic ? -1 : 1;
  return pa.partition - pb.partition;
}

export function toWire(keys: Iterable<TopicPartitionKey>): WireTopicPartitions[] {
  const byTopic = new Map<string, number[]>();
  for (const key of keys) {
    const { topic, partition } = parseTpKey(key);
    let list = byTopic.get(topic);
    if (list === undefined) byTopic.set(topic, (list = []));
    list.push(partition);
  }
  return [...byTopic.keys()].sort().map((topic) => ({ topic, partitions: byTopic.get(topic)!.sort((a, b) => a - b) }));
}

export function fromWire(list: readonly { topic: string; partitions: readonly number[] }[]): Set<TopicPartitionKey> {
  const out = new Set<TopicPartitionKey>();
  for (const t of list) for (const p of t.partitions) out.add(tpKey(t.topic, p));
  return out;
}

export function setsEqual<T>(a: ReadonlySet<T>, b: ReadonlySet<T>): boolean {
  if (a.size !== b.size) return false;
  for (const x of a) if (!b.has(x)) return false;
  return true;
}
