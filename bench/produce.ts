/**
 * `npm run bench -- produce [--seconds S] [--bytes 1024,100] [--partitions 1] [--window 256]
 *                           [--warmup 5] [--rate-half] [--no-peer]`
 *
 * Starts a local cluster (3 controllers + 3 brokers, separate processes, `tributary cluster up`),
 * creates a topic per pass with replication.factor=3 and min.insync.replicas=2 (deleted after the
 * pass, as the peer deletes its stream after each run), and runs the peer's own
 * workload (shared/bench/jetstream-bench.mjs) through the SDK: `window` single-record sends
 * outstanding with acks=all for S seconds, per-send ack latency, then every record read back.
 * First `--warmup` seconds (default 5) of the same load on a scratch topic, not measured.
 * One JSON line per record size, in the peer's shape. `--rate-half` adds, per size, a second
 * pass rate-limited to half the measured peak (the latency-at-load figure). Unless --no-peer, the
 * peer (NATS JetStream, 3 nodes, R3 and R1) then runs in the same invocation via
 * ../shared/bench/peer.sh, and its lines are passed through as they are.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tributary } from '../client/index.js';
import type { BenchArgs } from './run.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(REPO, 'bin', 'tributary.js');

function flag(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
}

/** A base port with 6 free ports after it (cluster up interleaves brokers and controllers). */
async function freeBasePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20000 + Math.floor(Math.random() * 30000);
    const ok = await Promise.all(
      Array.from({ length: 6 }, (_, i) => new Promise<boolean>((resolve) => {
        const s = createServer();
        s.once('error', () => resolve(false));
        s.listen(base + i, '127.0.0.1', () => s.close(() => resolve(true)));
      })),
    );
    if (ok.every(Boolean)) return base;
  }
  throw new Error('no free port range found');
}

export interface LocalCluster {
  bootstrap: string;
  controllers: string;
  /** Process id of `tributary cluster up` (its children are the brokers and controllers). */
  pid: number | undefined;
  stop(): Promise<void>;
}

/** CPU seconds (user + system) used so far, by role: this process, brokers, controllers. */
export interface CpuSample {
  client: number;
  brokers: number;
  /**
   * The brokers' kernel time alone (part of `brokers`). Its swings between runs are the page
   * cache: on these VMs, appending into memory the host has not backed yet costs several times
   * what appending into recently freed pages does (docs/BENCHMARKS.md, "slow phases").
   */
  brokers_kernel: number;
  controllers: number;
}

const CLOCK_TICKS_PER_S = 100; // USER_HZ on Linux

/**
 * Read from /proc (Linux only; zeros elsewhere) so a run can say what a message costs in CPU,
 * a figure much less disturbed by other load on the machine than the throughput is.
 */
export function sampleCpu(clusterPid: number | undefined): CpuSample {
  const usage = process.cpuUsage();
  const sample: CpuSample = { client: (usage.user + usage.system) / 1e6, brokers: 0, brokers_kernel: 0, controllers: 0 };
  if (clusterPid === undefined || !existsSync('/proc/self/stat')) return sample;
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) !== clusterPid) continue; // ppid
      const seconds = (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_S; // utime + stime
      const cmdline = readFileSync(`/proc/${name}/cmdline`, 'utf8');
      if (cmdline.includes('\0broker\0')) {
        sample.brokers += seconds;
        sample.brokers_kernel += Number(fields[12]) / CLOCK_TICKS_PER_S;
      } else if (cmdline.includes('\0controller\0')) sample.controllers += seconds;
    } catch {
      // the process exited meanwhile
    }
  }
  return sample;
}

/** µs of CPU per acknowledged record between two samples, per role. */
function cpuPerMsg(before: CpuSample, after: CpuSample, acked: number): CpuSample {
  const per = (role: keyof CpuSample) => +(((after[role] - before[role]) * 1e6) / Math.max(1, acked)).toFixed(1);
  return { client: per('client'), brokers: per('brokers'), brokers_kernel: per('brokers_kernel'), controllers: per('controllers') };
}

export async function startLocalCluster(dataDir: string): Promise<LocalCluster> {
  const basePort = await freeBasePort();
  const child: ChildProcess = spawn(process.execPath, [BIN, 'cluster', 'up', '--data', dataDir, '--base-port', String(basePort)], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, TRIBUTARY_LOG_LEVEL: process.env.TRIBUTARY_LOG_LEVEL ?? 'warn' },
  });
  let out = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`cluster did not start: ${out}`)), 60_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('Ctrl-C')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => reject(new Error(`cluster up exited with ${code}: ${out}`)));
  });
  return {
    bootstrap: `ws://127.0.0.1:${basePort}`,
    controllers: [1, 2, 3].map((i) => `${i}@127.0.0.1:${basePort + 2 * (i - 1) + 1}`).join(','),
    pid: child.pid,
    stop: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

/**
 * The producer's linger for the bench. 0 measured best since the accumulator keeps a batch open
 * while its partition has 5 in flight (batches still grow under load, without the wait): 1 KiB
 * 78.4k/77.4k msg/s at 0 ms vs 59.0k/59.3k at 1 ms and 45.1k/46.6k at 2 ms; 100 B 139k/148k vs
 * 88.8k/91.6k; 100 partitions 55.9k/56.1k vs 45.6k/46.4k (2026-12-03, alternating runs). Before
 * that change 1 ms was best (0: 27.6k, 1: 31.5k, 2: 28.3k).
 */
const LINGER_MS = Number(process.env.BENCH_LINGER_MS ?? 0);

/**
 * Seconds of full-rate produce to a scratch topic (deleted after) before the first measured pass,
 * as the OpenMessaging Benchmark warms up before its test phase: V8 tiers the hot paths up over
 * the first seconds of load (a cold 10 s pass averaged 75.0-78.9k msg/s, one after 5 s of warm-up
 * 81.0-86.5k, 2026-12-03, alternating runs). `--warmup 0` measures a cold cluster.
 */
const WARMUP_SECONDS = 5;

/** The producer's batchBytesMax for the bench: the SDK's default unless BENCH_BATCH_BYTES (experiments). */
const BATCH_BYTES = process.env.BENCH_BATCH_BYTES === undefined ? undefined : Number(process.env.BENCH_BATCH_BYTES);

function quantile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return +sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!.toFixed(2);
}

interface RunResult {
  acked: number;
  failed: number;
  seconds: number;
  latenciesMs: number[];
}

/** Keep `window` sends outstanding (or a fixed rate) for `seconds`. */
async function produceFor(t: Tributary, topic: string, bytes: number, seconds: number, window: number, ratePerSec?: number): Promise<RunResult> {
  const producer = t.producer({ acks: 'all', lingerMs: LINGER_MS, ...(BATCH_BYTES === undefined ? {} : { batchBytesMax: BATCH_BYTES }) });
  await producer.connect();
  const value = Buffer.alloc(bytes, 120);
  const latenciesMs: number[] = [];
  let acked = 0;
  let failed = 0;
  const t0 = performance.now();
  const deadline = t0 + seconds * 1000;
  let inflight = 0;
  let sent = 0;
  await new Promise<void>((resolve) => {
    const one = () => {
      inflight++;
      sent++;
      const start = performance.now();
      producer.send({ topic, messages: [{ value }] }).then(
        () => {
          acked++;
          latenciesMs.push(performance.now() - start);
        },
        () => {
          failed++;
        },
      ).finally(() => {
        inflight--;
        if (performance.now() < deadline) pump();
        else if (inflight === 0) resolve();
      });
    };
    const pump = () => {
      if (ratePerSec === undefined) {
        while (inflight < window && performance.now() < deadline) one();
        return;
      }
      // Rate-limited: as many as the schedule allows by now, never more than the window.
      const due = Math.floor(((performance.now() - t0) / 1000) * ratePerSec);
      while (sent < due && inflight < window && performance.now() < deadline) one();
    };
    if (ratePerSec !== undefined) {
      const timer = setInterval(() => {
        if (performance.now() >= deadline) {
          clearInterval(timer);
          if (inflight === 0) resolve();
          return;
        }
        pump();
      }, 1);
    } else pump();
  });
  const elapsed = (performance.now() - t0) / 1000;
  await producer.disconnect();
  return { acked, failed, seconds: elapsed, latenciesMs };
}

async function consumeAll(t: Tributary, topic: string, expected: number): Promise<number> {
  const consumer = t.consumer({ readFrom: 'leader' });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  const t0 = performance.now();
  let got = 0;
  const deadline = t0 + 120_000;
  for await (const _ of consumer) {
    got++;
    if (got >= expected || performance.now() > deadline) break;
  }
  const seconds = (performance.now() - t0) / 1000;
  await consumer.disconnect();
  return Math.round(got / seconds);
}

export async function produceBench(args: BenchArgs): Promise<void> {
  const seconds = args.seconds ?? 10;
  const sizes = (flag(args.argv, 'bytes') ?? '1024,100').split(',').map(Number);
  const partitions = Number(flag(args.argv, 'partitions') ?? '1');
  const window = Number(flag(args.argv, 'window') ?? '256');
  const warmupSeconds = Number(flag(args.argv, 'warmup') ?? String(WARMUP_SECONDS));
  const rateHalf = args.argv.includes('--rate-half');
  const noPeer = args.argv.includes('--no-peer');
  if (sizes.some((b) => !Number.isInteger(b) || b < 1) || !Number.isInteger(partitions) || partitions < 1 || !Number.isInteger(window) || window < 1) {
    throw new Error('--bytes, --partitions and --window take positive integers');
  }
  if (!Number.isInteger(warmupSeconds) || warmupSeconds < 0) throw new Error('--warmup takes a whole number of seconds (0: none)');
  const dataDir = mkdtempSync(join(tmpdir(), 'trib-bench-'));
  const cluster = await startLocalCluster(dataDir);
  try {
    const t = new Tributary({ clientId: 'bench', bootstrap: [cluster.bootstrap] });
    const admin = t.admin();
    await admin.connect();
    // Each measured pass writes to a topic of its own, deleted after it, as the peer's script does
    // with its streams: no pass starts on what an earlier one left (see docs/BENCHMARKS.md for
    // what gigabytes of earlier appends cost on this machine's page cache).
    let passes = 0;
    const freshTopic = async (bytes: number): Promise<string> => {
      const topic = `bench-${bytes}-${process.pid}-${passes++}`;
      await admin.createTopics([{ topic, partitions, replicationFactor: 3, config: { 'min.insync.replicas': '2' } }]);
      return topic;
    };
    if (warmupSeconds > 0) {
      const topic = await freshTopic(sizes[0]!);
      const warm = await produceFor(t, topic, sizes[0]!, warmupSeconds, window);
      process.stderr.write(`warm-up: ${warmupSeconds} s at ${Math.round(warm.acked / warm.seconds)} msg/s of ${sizes[0]} B records (not measured)\n`);
      await admin.deleteTopics([topic]);
    }
    for (const bytes of sizes) {
      const topic = await freshTopic(bytes);
      const cpuBefore = sampleCpu(cluster.pid);
      const peak = await produceFor(t, topic, bytes, seconds, window);
      const cpuAfter = sampleCpu(cluster.pid);
      const consumeRate = await consumeAll(t, topic, peak.acked);
      peak.latenciesMs.sort((a, b) => a - b);
      const msgsPerSec = Math.round(peak.acked / peak.seconds);
      process.stdout.write(JSON.stringify({
        bench: 'produce', system: 'tributary', record_bytes: bytes, replicas: 3, min_insync: 2, partitions, window, linger_ms: LINGER_MS, batch_bytes_max: BATCH_BYTES ?? 'default', warmup_s: warmupSeconds,
        msgs_per_s: msgsPerSec, mb_per_s: +((peak.acked * bytes) / peak.seconds / 1048576).toFixed(1),
        p50_ms: quantile(peak.latenciesMs, 0.5), p99_ms: quantile(peak.latenciesMs, 0.99), max_ms: +(peak.latenciesMs.at(-1) ?? 0).toFixed(2),
        acked: peak.acked, failed: peak.failed, consume_msgs_per_s: consumeRate,
        cpu_us_per_msg: cpuPerMsg(cpuBefore, cpuAfter, peak.acked),
      }) + '\n');
      await admin.deleteTopics([topic]);
      if (rateHalf) {
        const rate = Math.max(1, Math.floor(msgsPerSec / 2));
        const halfTopic = await freshTopic(bytes);
        const halfCpuBefore = sampleCpu(cluster.pid);
        const half = await produceFor(t, halfTopic, bytes, seconds, window, rate);
        const halfCpuAfter = sampleCpu(cluster.pid);
        half.latenciesMs.sort((a, b) => a - b);
        process.stdout.write(JSON.stringify({
          bench: 'produce-at-half-peak', system: 'tributary', record_bytes: bytes, target_msgs_per_s: rate,
          msgs_per_s: Math.round(half.acked / half.seconds), p50_ms: quantile(half.latenciesMs, 0.5), p99_ms: quantile(half.latenciesMs, 0.99),
          max_ms: +(half.latenciesMs.at(-1) ?? 0).toFixed(2), acked: half.acked, failed: half.failed,
          cpu_us_per_msg: cpuPerMsg(halfCpuBefore, halfCpuAfter, half.acked),
        }) + '\n');
        await admin.deleteTopics([halfTopic]);
      }
    }
    await admin.disconnect();
  } finally {
    await cluster.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
  if (!noPeer) {
    const peer = join(REPO, '..', 'shared', 'bench', 'peer.sh');
    if (!existsSync(peer)) {
      process.stderr.write(`peer script ${peer} not found; skipping the peer\n`);
      return;
    }
    const r = spawnSync('bash', [peer, ...sizes.map(String)], { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, PEER_SECONDS: String(seconds) } });
    if (r.status !== 0) process.stderr.write(`peer.sh exited with ${r.status}\n`);
  }
}
