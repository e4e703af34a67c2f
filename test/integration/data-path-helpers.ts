/**
 * Helpers for the data-path integration tests: a whole cluster (3 controllers + N brokers) as
 * real `tributary` processes, built on the process harness (harness.ts, used read-only), plus
 * direct reads of a partition from one chosen replica (a consumer Fetch sent to that broker) and
 * of its segment files on disk, so tests can compare replicas byte for byte.
 *
 * No node:test imports here.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { waitFor } from '../../common/wait.js';
import { Tributary, type Admin, type Consumer, type ConsumedMessage, type PartitionDescription } from '../../client/index.js';
import { ApiKey } from '../../protocol/api-keys.js';
import { TributaryError } from '../../protocol/errors.js';
import { batchLastOffset, iterateBatches } from '../../protocol/record-batch.js';
import { RpcConnection } from '../../protocol/transport/connection.js';
import { freePorts, Harness, REPO_ROOT, startControllerQuorum, TRIBUTARY_BIN, type ControllerQuorum, type ManagedProcess } from './harness.js';
import type { CutMode, TcpProxy } from './tcp-proxy.js';

export interface BrokerNode {
  id: number;
  host: string;
  port: number;
  /** ws://host:port */
  url: string;
  dataDir: string;
  process: ManagedProcess;
}

export interface DataClusterOptions {
  brokers?: number;
  /** Written to a --config file for every broker (flags still set id/listen/controllers/data). */
  brokerProperties?: Record<string, string>;
  /** Written to a --config file for every controller (e.g. broker.session.timeout.ms). */
  controllerProperties?: Record<string, string>;
  /**
   * Each broker reaches each controller through its own TcpProxy, so a test can cut one broker
   * off from the controllers only (cutControllers / healControllers). Default false.
   */
  proxiedControllers?: boolean;
}

/** 3 controllers + N brokers, separate OS processes on loopback, in one Harness. */
export class DataCluster {
  readonly brokers = new Map<number, BrokerNode>();
  /** Broker id → the proxies it dials to reach the controllers (with proxiedControllers). */
  readonly controllerLinks = new Map<number, TcpProxy[]>();
  private readonly connections: RpcConnection[] = [];

  constructor(
    readonly harness: Harness,
    readonly quorum: ControllerQuorum,
  ) {
    harness.track({ close: () => this.closeConnections() });
  }

  broker(id: number): BrokerNode {
    const b = this.brokers.get(id);
    if (b === undefined) throw new Error(`no broker ${id}`);
    return b;
  }

  get brokerIds(): number[] {
    return [...this.brokers.keys()];
  }

  /** Every broker url (what clients bootstrap from). */
  get bootstrap(): string[] {
    return [...this.brokers.values()].map((b) => b.url);
  }

  /** An SDK client over every broker. */
  client(clientId: string): Tributary {
    return new Tributary({ clientId, bootstrap: this.bootstrap, requestTimeoutMs: 10_000, connectTimeoutMs: 2000, retry: { retries: 10, initialRetryTimeMs: 50, maxRetryTimeMs: 500 } });
  }

  /** A raw RPC connection to one broker, closed at cleanup. */
  async connect(id: number): Promise<RpcConnection> {
    const conn = await RpcConnection.connect(this.broker(id).url, { clientId: 'it-data-path', connectTimeoutMs: 2000, requestTimeoutMs: 10_000, keepAliveIntervalMs: 0 });
    this.connections.push(conn);
    return conn;
  }

  async kill(id: number): Promise<void> {
    await this.broker(id).process.kill();
  }

  /** Start a stopped broker again on the same id, port and data dir; waits for /healthz (serving). */
  async start(id: number, timeoutMs = 15_000): Promise<void> {
    const proc = this.broker(id).process;
    if (!proc.running) proc.start();
    await proc.waitHealthy(timeoutMs);
  }

  /** Every broker running and serving (restarts whichever a failed test left dead). */
  async ensureAllRunning(): Promise<void> {
    await Promise.all(this.brokerIds.map((id) => this.start(id)));
  }

  /** Cut broker `id` off from every controller (its links to other brokers and clients stay). */
  cutControllers(id: number, mode: CutMode = 'drop'): void {
    const links = this.controllerLinks.get(id);
    if (links === undefined) throw new Error(`broker ${id} does not reach the controllers through proxies (proxiedControllers)`);
    for (const link of links) link.cut(mode);
  }

  healControllers(id: number): void {
    for (const link of this.controllerLinks.get(id) ?? []) link.restore();
  }

  diagnostics(lines = 40): string {
    return `temp dir ${this.harness.root}\n${this.harness.diagnostics(lines)}`;
  }

  private async closeConnections(): Promise<void> {
    const conns = this.connections.splice(0);
    await Promise.allSettled(conns.map((c) => c.close()));
  }
}

export async function startDataCluster(harness: Harness, options: DataClusterOptions = {}): Promise<DataCluster> {
  const count = options.brokers ?? 3;
  const host = '127.0.0.1';
  const quorum = await startControllerQuorum(harness, { count: 3, ...(options.controllerProperties !== undefined ? { properties: options.controllerProperties } : {}) });
  const cluster = new DataCluster(harness, quorum);
  let configFile: string | undefined;
  if (options.brokerProperties !== undefined) {
    configFile = path.join(harness.dir('config'), 'broker.properties');
    fs.writeFileSync(configFile, Object.entries(options.brokerProperties).map(([k, v]) => `${k}=${v}`).join('\n') + '\n');
  }
  const ports = await freePorts(count, host);
  for (let i = 0; i < count; i++) {
    const id = i + 1;
    const port = ports[i]!;
    const dataDir = harness.dir(`broker-${id}`);
    let controllers = quorum.votersString;
    if (options.proxiedControllers === true) {
      const links: TcpProxy[] = [];
      const voters: string[] = [];
      for (const cid of quorum.ids) {
        const node = quorum.node(cid);
        const link = await harness.proxy({ host: node.host, port: node.port }, `broker-${id}→controller-${cid}`);
        links.push(link);
        voters.push(`${cid}@${link.address}`);
      }
      cluster.controllerLinks.set(id, links);
      controllers = voters.join(',');
    }
    const args = ['broker', '--id', String(id), '--listen', `${host}:${port}`, '--controllers', controllers, '--data', dataDir];
    if (configFile !== undefined) args.push('--config', configFile);
    const proc = harness.spawn({ name: `broker-${id}`, args, dataDir, health: { host, port } });
    cluster.brokers.set(id, { id, host, port, url: `ws://${host}:${port}`, dataDir, process: proc });
  }
  await Promise.all([...cluster.brokers.values()].map((b) => b.process.waitHealthy(20_000)));
  return cluster;
}

// ---- reading one replica directly ------------------------------------------------------------

export interface ReplicaRead {
  /** The whole batches from offset 0 up to the replica's high watermark, exactly as served. */
  bytes: Buffer;
  highWatermark: number;
  /** lastOffset + 1 of the last batch read (= highWatermark when complete). */
  nextOffset: number;
}

/**
 * Read a partition from one replica with consumer Fetches (replicaId -1) sent to that broker,
 * from offset 0 to the replica's high watermark (a follower serves up to its own). Throws the
 * partition's error.
 */
export async function readReplica(conn: RpcConnection, topic: string, partition: number): Promise<ReplicaRead> {
  const chunks: Buffer[] = [];
  let next = 0;
  let highWatermark = -1;
  for (let round = 0; round < 10_000; round++) {
    const r = await conn.request(ApiKey.Fetch, {
      replicaId: -1,
      replicaEpoch: -1,
      maxWaitMs: 0,
      minBytes: 0,
      maxBytes: 4 * 1024 * 1024,
      topics: [{ topic, partitions: [{ partition, currentLeaderEpoch: -1, fetchOffset: next, lastFetchedEpoch: -1, logStartOffset: -1, partitionMaxBytes: 1024 * 1024 }] }],
    });
    const p = r.responses[0]!.partitions[0]!;
    if (p.errorCode !== 0) throw TributaryError.fromWire(p.errorCode, `fetch ${topic}-${partition} at ${next} from ${conn.url}`);
    if (highWatermark === -1) highWatermark = p.highWatermark;
    const records = p.records === null ? Buffer.alloc(0) : Buffer.from(p.records);
    let end = 0;
    for (const { pos, size } of iterateBatches(records)) {
      next = batchLastOffset(records, pos) + 1;
      end = pos + size;
    }
    if (end > 0) chunks.push(records.subarray(0, end));
    if (end === 0 || next >= highWatermark) break;
  }
  return { bytes: Buffer.concat(chunks), highWatermark, nextOffset: next };
}

/** The high watermark a replica reports (from an empty consumer fetch at offset 0). */
export async function replicaHighWatermark(conn: RpcConnection, topic: string, partition: number): Promise<number> {
  const r = await conn.request(ApiKey.Fetch, {
    replicaId: -1,
    replicaEpoch: -1,
    maxWaitMs: 0,
    minBytes: 0,
    maxBytes: 0,
    topics: [{ topic, partitions: [{ partition, currentLeaderEpoch: -1, fetchOffset: 0, lastFetchedEpoch: -1, logStartOffset: -1, partitionMaxBytes: 0 }] }],
  });
  const p = r.responses[0]!.partitions[0]!;
  if (p.errorCode !== 0) throw TributaryError.fromWire(p.errorCode, `fetch ${topic}-${partition} from ${conn.url}`);
  return p.highWatermark;
}

/** ListOffsets latest at the partition's leader: its high watermark. */
export async function leaderEndOffset(conn: RpcConnection, topic: string, partition: number): Promise<number> {
  const r = await conn.request(ApiKey.ListOffsets, { replicaId: -1, topics: [{ name: topic, partitions: [{ partitionIndex: partition, currentLeaderEpoch: -1, timestamp: -1 }] }] });
  const p = r.topics[0]!.partitions[0]!;
  if (p.errorCode !== 0) throw TributaryError.fromWire(p.errorCode, `list offsets ${topic}-${partition} at ${conn.url}`);
  return p.offset;
}

/** The segment files (*.log) of one replica's partition directory, by name. */
export function segmentFiles(dataDir: string, topic: string, partition: number): Map<string, Buffer> {
  const dir = path.join(dataDir, `${topic}-${partition}`);
  const out = new Map<string, Buffer>();
  for (const name of fs.readdirSync(dir).sort()) if (name.endsWith('.log')) out.set(name, fs.readFileSync(path.join(dir, name)));
  return out;
}

/** True when every replica's segment files of `topic-partition` equal the leader's, byte for byte. */
export function segmentFilesMatchLeader(cluster: DataCluster, leader: number, replicas: readonly number[], topic: string, partition: number): boolean {
  const mine = segmentFiles(cluster.broker(leader).dataDir, topic, partition);
  for (const r of replicas) {
    if (r === leader) continue;
    const theirs = segmentFiles(cluster.broker(r).dataDir, topic, partition);
    if (theirs.size !== mine.size) return false;
    for (const [name, bytes] of mine) if (!theirs.get(name)?.equals(bytes)) return false;
  }
  return true;
}

// ---- SDK conveniences ---------------------------------------------------------------------------

export async function describePartitions(admin: Admin, topic: string): Promise<PartitionDescription[]> {
  const [d] = await admin.describeTopics([topic]);
  return d!.partitions;
}

/** Until every partition of `topic` has a leader and an ISR equal (as a set) to its replicas. */
export async function waitFullIsr(admin: Admin, topic: string, timeoutMs = 15_000): Promise<PartitionDescription[]> {
  return waitFor(
    `every partition of ${topic} to have its full replica set in sync`,
    async () => {
      const parts = await describePartitions(admin, topic);
      return parts.every((p) => p.leader !== null && p.isr.length === p.replicas.length && p.replicas.every((r) => p.isr.includes(r))) ? parts : undefined;
    },
    { timeoutMs, intervalMs: 50 },
  );
}

/**
 * Take `n` messages from a consumer, failing (with how many arrived) if they do not all arrive
 * within `timeoutMs`. The consumer is disconnected on timeout.
 */
export async function consumeN(consumer: Consumer, n: number, timeoutMs: number): Promise<ConsumedMessage[]> {
  const out: ConsumedMessage[] = [];
  const it = consumer[Symbol.asyncIterator]();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    void consumer.disconnect();
  }, timeoutMs);
  try {
    while (out.length < n) {
      const r = await it.next();
      if (r.done === true) break;
      out.push(r.value);
    }
  } finally {
    clearTimeout(timer);
  }
  if (out.length < n) throw new Error(`consumed ${out.length} of ${n} messages${timedOut ? ` before the ${timeoutMs} ms deadline` : ' (the consumer ended)'}`);
  return out;
}

/** Run `promise` expecting a TributaryError; returns it (fails naming what happened otherwise). */
export async function expectTributaryError(promise: Promise<unknown>, what: string): Promise<TributaryError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof TributaryError) return error;
    throw new Error(`${what}: expected a TributaryError, got ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`);
  }
  throw new Error(`${what}: expected a TributaryError, but it succeeded`);
}

// ---- the CLI with stdin ---------------------------------------------------------------------------

export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** `node bin/tributary.js ...args` with `stdin` written to it; killed after timeoutMs. */
export function runCliWithInput(args: string[], stdin: string, timeoutMs = 20_000): Promise<CliRun> {
  const env: NodeJS.ProcessEnv = { ...process.env, TRIBUTARY_LOG_LEVEL: 'warn' };
  delete env.NODE_TEST_CONTEXT;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [TRIBUTARY_BIN, ...args], { cwd: REPO_ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
    child.stdin.on('error', () => undefined); // EPIPE if it died early: the exit status says why
    child.stdin.end(stdin);
  });
}
