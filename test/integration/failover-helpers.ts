/**
 * Helpers for the failover integration tests (failover.test.ts) and the failover bench
 * (bench/failover.ts): a continuous idempotent acks=all load that records every send and every
 * ack, the checks that a partition's final log holds exactly what was acked (once, in order, at
 * the acked offsets, nothing never sent), replica comparison, broker /metrics reads and
 * percentiles.
 *
 * No node:test imports here: bench/ uses these too.
 */
import http from 'node:http';
import { setTimeout as delay } from 'node:timers/promises';
import { performance } from 'node:perf_hooks';
import { waitFor } from '../../common/wait.js';
import type { Admin, Consumer, PartitionDescription, Producer, Tributary } from '../../client/index.js';
import type { ControllerChannel } from '../../client/controller-channel.js';
import { ApiKey } from '../../protocol/api-keys.js';
import { ERRORS, errorNameOf } from '../../protocol/errors.js';
import { batchLastOffset, batchLeaderEpoch, decodeBatchRecords, iterateBatches } from '../../protocol/record-batch.js';
import type { RpcConnection } from '../../protocol/transport/connection.js';
import { readReplica, replicaHighWatermark, segmentFilesMatchLeader, startDataCluster, type DataCluster, type DataClusterOptions } from './data-path-helpers.js';
import { Harness } from './harness.js';

// ---- the load ---------------------------------------------------------------------------------

export interface Ack {
  partition: number;
  /** Position of the record in this partition's send order (0, 1, 2, ...). */
  seq: number;
  value: string;
  offset: number;
  /** performance.now() when send() was called and when it resolved. */
  sentAt: number;
  ackedAt: number;
}

export interface SendFailure {
  partition: number;
  seq: number;
  value: string;
  at: number;
  error: string;
}

export interface ContinuousLoadOptions {
  /** Prefix of every value: `${label}-p${partition}-${seq}`. */
  label: string;
  /** Concurrent send() calls kept outstanding per partition. Default 4. */
  window?: number;
  /** Pause of each lane between its ack and its next send (a rate limit, not a wait). Default 10 ms. */
  paceMs?: number;
}

/**
 * Keeps `window` single-record send() calls outstanding on each given partition (explicit
 * partitions) until stop(). Sends are issued in seq order per partition; the producer keeps call
 * order per partition, so acked offsets must rise with seq.
 */
export class ContinuousLoad {
  readonly acks: Ack[] = [];
  readonly failures: SendFailure[] = [];
  private readonly acksByPartition = new Map<number, Ack[]>();
  private readonly nextSeq = new Map<number, number>();
  private readonly lanes: Array<Promise<void>> = [];
  private stopping = false;
  private started = false;
  private readonly window: number;
  private readonly paceMs: number;

  constructor(
    private readonly producer: Producer,
    readonly topic: string,
    readonly partitions: readonly number[],
    private readonly options: ContinuousLoadOptions,
  ) {
    this.window = options.window ?? 4;
    this.paceMs = options.paceMs ?? 10;
    for (const p of partitions) {
      this.acksByPartition.set(p, []);
      this.nextSeq.set(p, 0);
    }
  }

  valueOf(partition: number, seq: number): string {
    return `${this.options.label}-p${partition}-${seq}`;
  }

  /** (partition, seq) of a value this load sent, or undefined if it never sent it. */
  parse(value: string): { partition: number; seq: number } | undefined {
    const m = /^(.*)-p(\d+)-(\d+)$/.exec(value);
    if (m === null || m[1] !== this.options.label) return undefined;
    const partition = Number(m[2]);
    const seq = Number(m[3]);
    if (!this.nextSeq.has(partition) || seq >= this.nextSeq.get(partition)!) return undefined;
    return { partition, seq };
  }

  /** Records sent so far on a partition. */
  sentCount(partition: number): number {
    return this.nextSeq.get(partition) ?? 0;
  }

  acksOf(partition: number): readonly Ack[] {
    return this.acksByPartition.get(partition) ?? [];
  }

  get ackCount(): number {
    return this.acks.length;
  }

  start(): void {
    if (this.started) throw new Error('already started');
    this.started = true;
    for (const p of this.partitions) for (let lane = 0; lane < this.window; lane++) this.lanes.push(this.lane(p));
  }

  private async lane(partition: number): Promise<void> {
    while (!this.stopping) {
      const seq = this.nextSeq.get(partition)!;
      this.nextSeq.set(partition, seq + 1);
      const value = this.valueOf(partition, seq);
      const sentAt = performance.now();
      try {
        const r = await this.producer.sendWithOffsets({ topic: this.topic, messages: [{ partition, value }] });
        const rec = r.records[0]!;
        const ack: Ack = { partition: rec.partition, seq, value, offset: rec.offset, sentAt, ackedAt: performance.now() };
        this.acks.push(ack);
        this.acksByPartition.get(partition)!.push(ack);
      } catch (error) {
        this.failures.push({ partition, seq, value, at: performance.now(), error: error instanceof Error ? error.message : String(error) });
      }
      if (this.paceMs > 0 && !this.stopping) await delay(this.paceMs);
    }
  }

  /** Stop issuing sends and wait until every outstanding one has settled. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.lanes);
  }

  /** Until `n` more acks than now have arrived (on any partition, or on `partition`). */
  async waitMoreAcks(n: number, timeoutMs: number, partition?: number): Promise<void> {
    const count = () => (partition === undefined ? this.acks.length : this.acksOf(partition).length);
    const target = count() + n;
    await waitFor(`${n} more acks${partition === undefined ? '' : ` on partition ${partition}`} (have ${count()})`, () => count() >= target, { timeoutMs, intervalMs: 10 });
  }

  /** The first ack on `partition` that arrived after `t` and satisfies `accept`. */
  firstAckAfter(partition: number, t: number, accept: (a: Ack) => boolean = () => true): Ack | undefined {
    let best: Ack | undefined;
    for (const a of this.acksOf(partition)) if (a.ackedAt > t && accept(a) && (best === undefined || a.ackedAt < best.ackedAt)) best = a;
    return best;
  }

  /**
   * The longest gap between consecutive acks (any partition of this load, by arrival time) in the
   * window starting at the last ack at or before `from` and ending at the first ack after `until`.
   */
  longestGap(from: number, until: number, partition?: number): number {
    const times = (partition === undefined ? this.acks : this.acksOf(partition)).map((a) => a.ackedAt).sort((a, b) => a - b);
    let start = 0;
    while (start + 1 < times.length && times[start + 1]! <= from) start++;
    let gap = 0;
    for (let i = start + 1; i < times.length; i++) {
      gap = Math.max(gap, times[i]! - times[i - 1]!);
      if (times[i]! > until) break;
    }
    return gap;
  }
}

// ---- checking a partition's final log ---------------------------------------------------------

export interface LogRecord {
  offset: number;
  value: string | null;
  /** The partition leader epoch of the batch holding the record. */
  epoch: number;
}

/** Decode the whole batches read from a replica into records (offset, value, batch epoch). */
export function recordsOf(bytes: Buffer): LogRecord[] {
  const out: LogRecord[] = [];
  for (const { pos } of iterateBatches(bytes)) {
    const epoch = batchLeaderEpoch(bytes, pos);
    for (const r of decodeBatchRecords(bytes, pos)) out.push({ offset: r.offset, value: r.value === null ? null : r.value.toString('utf8'), epoch });
  }
  return out;
}

/**
 * The problems (empty when none) with `records` as partition `partition`'s complete log written by
 * `load`: offsets dense from 0; every record a value the load sent to this partition, at most once,
 * in send order; every ack present at its acked offset with its value; nothing beyond the acks
 * unless a send failed (a failed send may or may not have been written).
 */
export function checkPartitionLog(load: ContinuousLoad, partition: number, records: readonly LogRecord[], options: { othersAllowed?: (value: string | null) => boolean } = {}): string[] {
  const problems: string[] = [];
  const seen = new Map<string, number>();
  let lastSeq = -1;
  let expected = 0;
  for (const r of records) {
    if (r.offset !== expected) problems.push(`offset ${r.offset} where ${expected} was expected (gap or reordering)`);
    expected = r.offset + 1;
    if (options.othersAllowed?.(r.value) === true) continue;
    const parsed = r.value === null ? undefined : load.parse(r.value);
    if (parsed === undefined || parsed.partition !== partition) {
      problems.push(`offset ${r.offset}: ${JSON.stringify(r.value)} was never sent to partition ${partition}`);
      continue;
    }
    const before = seen.get(r.value!);
    if (before !== undefined) problems.push(`${r.value} present twice, at ${before} and ${r.offset}`);
    seen.set(r.value!, r.offset);
    if (parsed.seq <= lastSeq) problems.push(`offset ${r.offset}: seq ${parsed.seq} after seq ${lastSeq} (out of send order)`);
    lastSeq = Math.max(lastSeq, parsed.seq);
  }
  for (const a of load.acksOf(partition)) {
    const at = seen.get(a.value);
    if (at === undefined) problems.push(`acked ${a.value} (offset ${a.offset}) is missing`);
    else if (at !== a.offset) problems.push(`acked ${a.value} at offset ${a.offset} but found at ${at}`);
  }
  const failedHere = load.failures.filter((f) => f.partition === partition).length;
  const ours = [...seen.keys()].length;
  if (failedHere === 0 && ours !== load.acksOf(partition).length) problems.push(`${ours} of this load's records in the log but ${load.acksOf(partition).length} acked and none failed`);
  return problems.slice(0, 20).concat(problems.length > 20 ? [`... and ${problems.length - 20} more`] : []);
}

// ---- replicas ---------------------------------------------------------------------------------

/**
 * Every replica of the partition serves the same bytes as the leader, from 0 to the leader's high
 * watermark `end` (waiting for followers to reach it), and holds the same segment files on disk.
 * Returns the leader's bytes. Throws naming the first difference.
 */
export async function assertReplicasIdentical(cluster: DataCluster, view: ControllerView, topic: string, partition: number): Promise<{ bytes: Buffer; end: number; leader: number; replicas: number[] }> {
  const p = (await view.partitions(topic))[partition]!;
  if (p.leader === null) throw new Error(`${topic}-${partition} has no leader`);
  const leader = p.leader;
  const leaderConn = await cluster.connect(leader);
  const leaderRead = await readReplica(leaderConn, topic, partition);
  const end = leaderRead.highWatermark;
  if (leaderRead.nextOffset !== end) throw new Error(`${topic}-${partition}: leader ${leader} served up to ${leaderRead.nextOffset}, high watermark ${end}`);
  for (const r of p.replicas) {
    if (r === leader) continue;
    const conn: RpcConnection = await cluster.connect(r);
    await waitFor(`follower ${r} of ${topic}-${partition} to reach high watermark ${end}`, async () => (await replicaHighWatermark(conn, topic, partition)) >= end, { timeoutMs: 15_000, intervalMs: 50 });
    const read = await readReplica(conn, topic, partition);
    const theirs = read.bytes.subarray(0, leaderRead.bytes.length);
    if (read.nextOffset < end || !theirs.equals(leaderRead.bytes)) {
      throw new Error(`${topic}-${partition}: follower ${r} serves ${read.bytes.length} bytes up to offset ${read.nextOffset} that differ from leader ${leader}'s ${leaderRead.bytes.length} bytes up to ${end}`);
    }
  }
  // On disk, once nothing writes the partition: the same segment files byte for byte.
  await waitFor(
    `the segment files of ${topic}-${partition} to be identical on replicas ${p.replicas.join(',')}`,
    () => segmentFilesMatchLeader(cluster, leader, p.replicas, topic, partition),
    { timeoutMs: 10_000, intervalMs: 50 },
  );
  return { bytes: leaderRead.bytes, end, leader, replicas: [...p.replicas] };
}

/** The offset after the last record of the batches in `bytes` (0 when empty). */
export function endOfBatches(bytes: Buffer): number {
  let next = 0;
  for (const { pos } of iterateBatches(bytes)) next = batchLastOffset(bytes, pos) + 1;
  return next;
}

// ---- the controller's view --------------------------------------------------------------------

/**
 * Partitions and broker fencing as the active controller sees them (Metadata and DescribeCluster
 * sent to the controller quorum, not to a broker): the SDK admin rotates over brokers and would
 * wait out its request timeout on one that is stopped (SIGSTOP).
 */
export class ControllerView {
  constructor(private readonly channel: ControllerChannel) {}

  async partitions(topic: string): Promise<PartitionDescription[]> {
    const r = await this.channel.request(ApiKey.Metadata, { topics: [topic] }, { timeoutMs: 3000 });
    const t = r.topics.find((x) => x.name === topic);
    if (t === undefined || t.errorCode !== 0) throw new Error(`the controller does not describe ${topic} (error ${t?.errorCode})`);
    return t.partitions
      .map((p) => ({ partition: p.partitionIndex, leader: p.leaderId < 0 ? null : p.leaderId, leaderEpoch: p.leaderEpoch, replicas: [...p.replicaNodes], isr: [...p.isrNodes] }))
      .sort((a, b) => a.partition - b.partition);
  }

  async fenced(brokerId: number): Promise<boolean | undefined> {
    const r = await this.channel.request(ApiKey.DescribeCluster, { includeFencedBrokers: true }, { timeoutMs: 3000 });
    return r.brokers.find((b) => b.brokerId === brokerId)?.isFenced;
  }

  /** Until every partition has a leader and its whole replica set in sync. */
  waitFullIsr(topic: string, timeoutMs = 20_000): Promise<PartitionDescription[]> {
    return waitFor(
      `every partition of ${topic} to have a leader and its full replica set in sync (controller's view)`,
      async () => {
        const parts = await this.partitions(topic);
        return parts.every((p) => p.leader !== null && p.isr.length === p.replicas.length && p.replicas.every((r) => p.isr.includes(r))) ? parts : undefined;
      },
      { timeoutMs, intervalMs: 25 },
    );
  }
}

// ---- broker metrics ---------------------------------------------------------------------------

/** GET http://host:port/metrics as text. */
export function fetchMetrics(host: string, port: number, timeoutMs = 2000): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host, port, path: '/metrics', timeout: timeoutMs, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => (res.statusCode === 200 ? resolve(Buffer.concat(chunks).toString('utf8')) : reject(new Error(`GET /metrics: ${res.statusCode}`))));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET /metrics timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

/** The value of one sample (`name` with every label in `labels`) in Prometheus text; 0 if absent. */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || !line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (m === null || m[1] !== name) continue;
    const have = new Map<string, string>();
    for (const part of (m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) have.set(part[1]!, part[2]!);
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) return Number(m[4]);
  }
  return 0;
}

// ---- figures ----------------------------------------------------------------------------------

export { percentile } from '../../bench/stats.js';

// ---- checks shared by the failover suites ----------------------------------------------------

/**
 * After a load stopped: every replica of each of its partitions identical (served and on disk) and
 * each partition's log exactly what the load acked (checkPartitionLog). Returns the problems
 * (empty when none) and each partition's final records.
 */
export async function checkAckedLogs(cluster: DataCluster, view: ControllerView, load: ContinuousLoad): Promise<{ problems: string[]; logs: Map<number, LogRecord[]> }> {
  await view.waitFullIsr(load.topic, 30_000);
  const problems: string[] = [];
  const logs = new Map<number, LogRecord[]>();
  for (const p of load.partitions) {
    const { bytes, end } = await assertReplicasIdentical(cluster, view, load.topic, p);
    const records = recordsOf(bytes);
    if (records.length !== end) problems.push(`${load.topic}-${p}: ${records.length} records in the leader's batches, high watermark ${end}`);
    for (const problem of checkPartitionLog(load, p, records)) problems.push(`${load.topic}-${p}: ${problem}`);
    logs.set(p, records);
  }
  return { problems, logs };
}

/**
 * A consumer reading a topic from the beginning in the background, as a user would, keeping what
 * it got by partition and offset; stop() ends it and says whether its iterator ever threw.
 */
export class BackgroundReader {
  /** partition → offset → value. */
  readonly got = new Map<number, Map<number, string | null>>();
  readonly problems: string[] = [];
  private error: unknown;
  private loop: Promise<void> | undefined;
  private stopping = false;

  constructor(private readonly consumer: Consumer) {}

  async start(topic: string): Promise<void> {
    await this.consumer.connect();
    await this.consumer.subscribe({ topics: [topic], fromBeginning: true });
    this.loop = (async () => {
      try {
        for await (const m of this.consumer) {
          let byOffset = this.got.get(m.partition);
          if (byOffset === undefined) this.got.set(m.partition, (byOffset = new Map()));
          if (byOffset.has(m.offset)) this.problems.push(`partition ${m.partition} offset ${m.offset} delivered twice`);
          byOffset.set(m.offset, m.value === null ? null : m.value.toString('utf8'));
        }
      } catch (error) {
        if (!this.stopping) this.error = error;
      }
    })();
  }

  count(partition: number): number {
    return this.got.get(partition)?.size ?? 0;
  }

  /** Until every ack of `load` has been read (at its offset, with its value). */
  async waitForAcks(load: ContinuousLoad, timeoutMs: number): Promise<void> {
    await waitFor(`the background consumer to read all ${load.ackCount} acked records`, () => {
      if (this.error !== undefined) throw this.error;
      return load.acks.every((a) => this.got.get(a.partition)?.has(a.offset) === true);
    }, { timeoutMs, intervalMs: 50 });
    for (const a of load.acks) {
      const v = this.got.get(a.partition)!.get(a.offset);
      if (v !== a.value) this.problems.push(`consumer read ${JSON.stringify(v)} at ${a.partition}:${a.offset}, acked ${a.value}`);
    }
  }

  /** Stop; returns the error its iterator threw, if any. */
  async stop(): Promise<unknown> {
    this.stopping = true;
    await this.consumer.disconnect();
    await this.loop;
    return this.error;
  }
}

/** What a failover suite works with: a data cluster, an SDK client with a connected admin, and a view of the controller. */
export interface FailoverSuite {
  harness: Harness;
  cluster: DataCluster;
  client: Tributary;
  admin: Admin;
  view: ControllerView;
}

/**
 * Start a suite's cluster (harness named `name`, SDK client id `clientId`). When the start fails,
 * the harness's diagnostics go to stderr and the temp dir is named, then the error is rethrown;
 * the caller's `after` still cleans up whatever was started.
 */
export async function startFailoverSuite(name: string, clientId: string, options: DataClusterOptions, started: (harness: Harness) => void): Promise<FailoverSuite> {
  const harness = new Harness(name);
  started(harness);
  try {
    const cluster = await startDataCluster(harness, options);
    const client = cluster.client(clientId);
    const admin = client.admin();
    await admin.connect();
    const view = new ControllerView(cluster.quorum.channel({ clientId: `${clientId}-view`, requestTimeoutMs: 5000 }));
    return { harness, cluster, client, admin, view };
  } catch (error) {
    process.stderr.write(`cluster start failed; temp dir ${harness.root}\n${harness.diagnostics(40)}\n`);
    throw error;
  }
}

/** Errors a leader without a lease, or a deposed one, may answer with; anything else (success above all) is a failure. */
export const DEPOSED_ERRORS: ReadonlySet<number> = new Set<number>([ERRORS.NOT_LEADER_OR_FOLLOWER.code, ERRORS.FENCED_LEADER_EPOCH.code, ERRORS.UNKNOWN_LEADER_EPOCH.code]);

/** An error number's name, with 0 read as 'success' (for assertion messages). */
export function errorName(code: number): string {
  return code === 0 ? 'success' : errorNameOf(code);
}
