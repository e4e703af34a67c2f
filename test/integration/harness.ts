/**
 * Integration-test harness: real `tributary` processes on ephemeral loopback ports, with temp
 * data dirs, that tests can kill -9, pause (SIGSTOP), resume and restart with the same data.
 *
 * - `Harness` owns one temp dir and every process and proxy started through it; `cleanup()`
 *   kills (SIGKILL) and removes everything, and is safe to call from `after`/`finally` whatever
 *   state the test left things in. A process-exit hook kills any child a crashed test left.
 * - `ManagedProcess` is generic (a name, `tributary` arguments, ports, a data dir): controllers
 *   today, brokers tomorrow. Its stdout+stderr go to `<dir>/<name>.log`; `logTail()` shows the end.
 * - `ControllerQuorum` starts N `tributary controller` processes, optionally with a TcpProxy on
 *   every (from → to) link so tests can partition them, and asks each one DescribeQuorum directly.
 *
 * No node:test imports here: bench/ uses the harness too.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { waitFor } from '../../common/wait.js';
import { parseVoters } from '../../common/properties.js';
import { ControllerChannel, type ControllerChannelOptions } from '../../client/controller-channel.js';
import { ApiKey } from '../../protocol/api-keys.js';
import type { DescribeQuorumResponse } from '../../protocol/apis/describe-quorum.js';
import { ConnectionPool } from '../../protocol/transport/pool.js';
import { TcpProxy, type CutMode } from './tcp-proxy.js';

/** The repository root (this file is dist/test/integration/harness.js once compiled). */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
/** The `tributary` command; it imports dist/, so `tsc` must have run. */
export const TRIBUTARY_BIN = path.join(REPO_ROOT, 'bin', 'tributary.js');

// ---- ports ------------------------------------------------------------------------------------

/** A port that was free a moment ago: listen on port 0, note the port, close. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** `n` distinct free ports (held open together while choosing, so they differ). */
export async function freePorts(n: number, host = '127.0.0.1'): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const server = net.createServer();
      servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, host, () => resolve());
      });
    }
    return servers.map((s) => (s.address() as net.AddressInfo).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}

/** GET http://host:port/path → status code (rejects on connection errors or after timeoutMs). */
export function httpStatus(host: string, port: number, urlPath: string, timeoutMs = 1000): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host, port, path: urlPath, timeout: timeoutMs, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${urlPath} timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

// ---- processes --------------------------------------------------------------------------------

/** Every child alive in this process, so an exit hook can kill what a crashed test left. */
const liveChildren = new Set<ChildProcess>();
/** Temp dirs of harnesses not yet cleaned up. */
const liveRoots = new Set<string>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  const killAll = () => {
    for (const child of liveChildren) {
      try {
        child.kill('SIGCONT'); // a stopped child would not act on anything else but SIGKILL
        child.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
    if (process.env.TRIBUTARY_KEEP_TEST_DATA !== '1') for (const dir of liveRoots) fs.rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', killAll);
  // A runner that terminates us (a timeout, ^C) would otherwise leave the children running.
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    process.once(sig, () => {
      killAll();
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    });
  }
}

export interface ProcessSpec {
  /** Unique within the harness: names the log file (`<name>.log`). */
  name: string;
  /** Arguments after `bin/tributary.js` (e.g. `['controller', '--id', '1', ...]`). */
  args: string[];
  /** Extra environment (TRIBUTARY_LOG_LEVEL defaults to `warn`). */
  env?: Record<string, string>;
  /** The process's data dir, if it has one (kept across restarts). */
  dataDir?: string;
  /** Host and port serving GET /healthz, if any. */
  health?: { host: string; port: number };
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export class ManagedProcess {
  private child: ChildProcess | undefined;
  private exitPromise: Promise<ExitStatus> = Promise.resolve({ code: null, signal: null });
  private pausedNow = false;
  /** How many times it was started. */
  starts = 0;
  readonly logFile: string;

  constructor(
    readonly spec: ProcessSpec,
    logDir: string,
  ) {
    this.logFile = path.join(logDir, `${spec.name}.log`);
  }

  get name(): string {
    return this.spec.name;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Started and not yet exited (a paused process is running). */
  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  get paused(): boolean {
    return this.running && this.pausedNow;
  }

  /** Resolves when the current incarnation exits. */
  get exited(): Promise<ExitStatus> {
    return this.exitPromise;
  }

  start(): void {
    if (this.running) throw new Error(`${this.name} is already running (pid ${this.pid})`);
    installExitHook();
    const fd = fs.openSync(this.logFile, 'a');
    this.starts++;
    fs.writeSync(fd, `--- start #${this.starts} at ${new Date().toISOString()}: tributary ${this.spec.args.join(' ')}\n`);
    const env: NodeJS.ProcessEnv = { ...process.env, TRIBUTARY_LOG_LEVEL: 'warn', ...this.spec.env };
    // Children are not node:test subprocesses; without this they would log nothing.
    delete env.NODE_TEST_CONTEXT;
    let child: ChildProcess;
    try {
      child = spawn(process.execPath, [TRIBUTARY_BIN, ...this.spec.args], { cwd: REPO_ROOT, env, stdio: ['ignore', fd, fd] });
    } finally {
      fs.closeSync(fd);
    }
    this.child = child;
    this.pausedNow = false;
    liveChildren.add(child);
    this.exitPromise = new Promise<ExitStatus>((resolve) => {
      child.once('exit', (code, signal) => {
        liveChildren.delete(child);
        resolve({ code, signal });
      });
      child.once('error', () => {
        liveChildren.delete(child);
        resolve({ code: null, signal: null });
      });
    });
  }

  /** Send a signal to the running process (no-op when it is not running). */
  signal(sig: NodeJS.Signals): void {
    if (!this.running) return;
    this.child!.kill(sig);
  }

  /** kill -9 and wait until it is gone. */
  async kill(): Promise<ExitStatus> {
    if (!this.running) return this.exitPromise;
    this.child!.kill('SIGKILL');
    const status = await this.exitPromise;
    this.pausedNow = false;
    return status;
  }

  /** SIGTERM (a clean shutdown); SIGKILL if it has not exited after `timeoutMs`. */
  async stop(timeoutMs = 5000): Promise<ExitStatus> {
    if (!this.running) return this.exitPromise;
    if (this.pausedNow) this.resume();
    this.child!.kill('SIGTERM');
    const timer = setTimeout(() => this.child?.kill('SIGKILL'), timeoutMs);
    try {
      return await this.exitPromise;
    } finally {
      clearTimeout(timer);
    }
  }

  /** SIGSTOP: the process keeps its sockets but runs nothing (a GC pause, a stuck VM). */
  pause(): void {
    if (!this.running) throw new Error(`${this.name} is not running`);
    this.child!.kill('SIGSTOP');
    this.pausedNow = true;
  }

  /** SIGCONT. */
  resume(): void {
    if (!this.running) return;
    this.child!.kill('SIGCONT');
    this.pausedNow = false;
  }

  /** Kill -9 if running, then start again with the same arguments and data dir. */
  async restart(): Promise<void> {
    await this.kill();
    this.start();
  }

  /** Until GET /healthz answers 200; fails at once (with the log tail) if the process exits. */
  async waitHealthy(timeoutMs = 30_000): Promise<void> {
    const health = this.spec.health;
    if (health === undefined) throw new Error(`${this.name} has no health endpoint`);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (!this.running) throw new Error(`${this.name} exited before serving /healthz: ${JSON.stringify(await this.exitPromise)}\n${this.logTail()}`);
      if ((await httpStatus(health.host, health.port, '/healthz', 500).catch(() => 0)) === 200) return;
      if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${this.name} /healthz on ${health.host}:${health.port}\n${this.logTail()}`);
      await delay(25);
    }
  }

  /** The last `lines` lines of the process's log. */
  logTail(lines = 30): string {
    let text = '';
    try {
      text = fs.readFileSync(this.logFile, 'utf8');
    } catch {
      return `(${this.name}: no log)`;
    }
    const all = text.trimEnd().split('\n');
    return `--- ${this.name} (${this.logFile}), last ${Math.min(lines, all.length)} of ${all.length} lines:\n${all.slice(-lines).join('\n')}`;
  }
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run the real CLI once (`node bin/tributary.js ...args`) and collect its output. */
export function runCli(args: string[], options: { env?: Record<string, string>; timeoutMs?: number } = {}): Promise<CliResult> {
  const env: NodeJS.ProcessEnv = { ...process.env, TRIBUTARY_LOG_LEVEL: 'warn', ...options.env };
  delete env.NODE_TEST_CONTEXT;
  return new Promise((resolve) => {
    execFile(process.execPath, [TRIBUTARY_BIN, ...args], { cwd: REPO_ROOT, env, timeout: options.timeoutMs ?? 15_000, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : null;
      resolve({ code, stdout, stderr });
    });
  });
}

export interface Closeable {
  close(): Promise<void> | void;
}

/** One test's world: a temp dir, its processes and proxies, and cleanup of all of them. */
export class Harness {
  readonly root: string;
  private readonly processes = new Map<string, ManagedProcess>();
  private readonly closeables: Closeable[] = [];
  private cleaned = false;

  constructor(label = 'it') {
    this.root = fs.mkdtempSync(path.join(os.tmpdir(), `tributary-${label.replace(/[^a-zA-Z0-9_-]/g, '-')}-`));
    liveRoots.add(this.root);
    installExitHook();
  }

  /** A directory under the harness root (created). */
  dir(name: string): string {
    const dir = path.join(this.root, name);
    fs.mkdirSync(dir, { recursive: true });
    return dir;
  }

  /** Create and start a process. */
  spawn(spec: ProcessSpec): ManagedProcess {
    if (this.processes.has(spec.name)) throw new Error(`a process named ${spec.name} already exists`);
    if (spec.dataDir !== undefined) fs.mkdirSync(spec.dataDir, { recursive: true });
    const proc = new ManagedProcess(spec, this.root);
    this.processes.set(spec.name, proc);
    proc.start();
    return proc;
  }

  process(name: string): ManagedProcess {
    const proc = this.processes.get(name);
    if (proc === undefined) throw new Error(`no process named ${name}`);
    return proc;
  }

  /** Closed at cleanup, before the processes are killed (channels, proxies, ...). */
  track<T extends Closeable>(closeable: T): T {
    this.closeables.push(closeable);
    return closeable;
  }

  /** A TCP proxy to `target`, closed at cleanup. */
  async proxy(target: { host: string; port: number }, name?: string): Promise<TcpProxy> {
    const proxy = this.track(new TcpProxy(target, name));
    await proxy.start();
    return proxy;
  }

  /** The log tails of every process, for a failing test's output. */
  diagnostics(lines = 30): string {
    return [...this.processes.values()].map((p) => p.logTail(lines)).join('\n');
  }

  /**
   * Kill everything (SIGKILL works on stopped processes too), close proxies and channels, and
   * remove the temp dir unless `keep` (e.g. to look at a failure; TRIBUTARY_KEEP_TEST_DATA=1).
   */
  async cleanup(options: { keep?: boolean } = {}): Promise<void> {
    if (this.cleaned) return;
    this.cleaned = true;
    await Promise.allSettled(this.closeables.map(async (c) => c.close()));
    await Promise.allSettled([...this.processes.values()].map((p) => p.kill()));
    const keep = options.keep ?? process.env.TRIBUTARY_KEEP_TEST_DATA === '1';
    liveRoots.delete(this.root);
    if (!keep) fs.rmSync(this.root, { recursive: true, force: true, maxRetries: 3 });
  }
}

// ---- controller quorum ------------------------------------------------------------------------

export interface ControllerNode {
  id: number;
  host: string;
  /** The port it really listens on (clients and tests reach it here). */
  port: number;
  address: string;
  dataDir: string;
  /** The --voters string it was started with (peers may be proxies). */
  voters: string;
  process: ManagedProcess;
}

export interface ControllerQuorumOptions {
  /** Voters: 1, 3 or 5. Default 3. */
  count?: number;
  /** Put a TcpProxy on every (from → to) link, so partition()/isolate() work. Default false. */
  proxied?: boolean;
  /** Properties written to a --config file for every controller (flags still set id/listen/voters/data). */
  properties?: Record<string, string>;
  /** Extra environment for the processes. */
  env?: Record<string, string>;
  /** Wait for every /healthz before returning. Default true. */
  waitHealthy?: boolean;
}

/** DescribeQuorum as one controller answered it, plus its own entry. */
export interface QuorumView {
  id: number;
  response: DescribeQuorumResponse;
  role: DescribeQuorumResponse['voters'][number]['role'];
  term: number;
  leaderId: number | null;
  appliedIndex: number;
  lastLogIndex: number;
}

export class ControllerQuorum {
  readonly nodes = new Map<number, ControllerNode>();
  /** `${from}->${to}` → the proxy `from` dials to reach `to` (when proxied). */
  readonly links = new Map<string, TcpProxy>();
  private readonly pool = new ConnectionPool({ clientId: 'it-harness', connectTimeoutMs: 1000, requestTimeoutMs: 2000, keepAliveIntervalMs: 0 });

  constructor(readonly harness: Harness) {
    harness.track({ close: () => this.pool.closeAll() });
  }

  get ids(): number[] {
    return [...this.nodes.keys()];
  }

  node(id: number): ControllerNode {
    const node = this.nodes.get(id);
    if (node === undefined) throw new Error(`no controller ${id}`);
    return node;
  }

  /** Every voter at its real address: what clients (and `--controllers`) use. */
  get votersString(): string {
    return [...this.nodes.values()].map((n) => `${n.id}@${n.address}`).join(',');
  }

  /** A ControllerChannel over the real addresses, closed at cleanup. */
  channel(options: ControllerChannelOptions = {}): ControllerChannel {
    const channel = new ControllerChannel(parseVoters(this.votersString), { clientId: 'it', requestTimeoutMs: 10_000, ...options });
    return this.harness.track(channel);
  }

  /** DescribeQuorum asked of controller `id` directly. */
  async describe(id: number, timeoutMs = 1000): Promise<QuorumView> {
    const node = this.node(id);
    const conn = await this.pool.get(`ws://${node.address}`);
    const response = await conn.request(ApiKey.DescribeQuorum, {}, { timeoutMs });
    const self = response.voters.find((v) => v.id === id);
    if (self === undefined) throw new Error(`controller ${id} does not list itself among its voters`);
    return {
      id,
      response,
      role: self.role,
      term: response.term,
      leaderId: response.leaderId === -1 ? null : response.leaderId,
      appliedIndex: self.appliedIndex ?? 0,
      lastLogIndex: self.lastLogIndex,
    };
  }

  /** DescribeQuorum of every running, unpaused controller (those that answer). */
  async describeAll(timeoutMs = 1000): Promise<Map<number, QuorumView>> {
    const out = new Map<number, QuorumView>();
    await Promise.all(
      [...this.nodes.values()]
        .filter((n) => n.process.running && !n.process.paused)
        .map(async (n) => {
          try {
            out.set(n.id, await this.describe(n.id, timeoutMs));
          } catch {
            // not answering: left out
          }
        }),
    );
    return out;
  }

  /**
   * Until one controller reports itself leader in the highest term any answering controller
   * reports (and, with `minTerm`, in at least that term; `exclude` may not be it).
   */
  async waitForLeader(options: { timeoutMs?: number; exclude?: readonly number[]; minTerm?: number } = {}): Promise<{ leaderId: number; term: number }> {
    return waitFor(
      `a controller leader${options.minTerm !== undefined ? ` in term >= ${options.minTerm}` : ''}${options.exclude?.length ? ` other than ${options.exclude.join(',')}` : ''}`,
      async () => {
        const views = await this.describeAll(500);
        let maxTerm = 0;
        for (const v of views.values()) maxTerm = Math.max(maxTerm, v.term);
        for (const v of views.values()) {
          if (v.role !== 'leader' || v.term !== maxTerm) continue;
          if (options.minTerm !== undefined && v.term < options.minTerm) continue;
          if (options.exclude?.includes(v.id)) continue;
          return { leaderId: v.id, term: v.term };
        }
        return undefined;
      },
      { timeoutMs: options.timeoutMs ?? 10_000, intervalMs: 10 },
    );
  }

  /** Until controller `id` has applied everything the current leader has applied. */
  async waitCaughtUp(id: number, options: { timeoutMs?: number } = {}): Promise<{ appliedIndex: number; leaderId: number }> {
    return waitFor(
      `controller ${id} to catch up with the leader`,
      async () => {
        const views = await this.describeAll(500);
        const me = views.get(id);
        const leader = [...views.values()].find((v) => v.role === 'leader');
        if (me === undefined || leader === undefined || leader.id === id) return undefined;
        if (me.leaderId !== leader.id || me.term !== leader.term) return undefined;
        return me.appliedIndex >= leader.appliedIndex && leader.appliedIndex > 0 ? { appliedIndex: me.appliedIndex, leaderId: leader.id } : undefined;
      },
      { timeoutMs: options.timeoutMs ?? 10_000, intervalMs: 20 },
    );
  }

  // The processes.
  kill(id: number): Promise<ExitStatus> {
    return this.node(id).process.kill();
  }
  stop(id: number): Promise<ExitStatus> {
    return this.node(id).process.stop();
  }
  pause(id: number): void {
    this.node(id).process.pause();
  }
  resume(id: number): void {
    this.node(id).process.resume();
  }
  /** Kill -9 (if running) and start again with the same data dir; waits for /healthz. */
  async restart(id: number): Promise<void> {
    const proc = this.node(id).process;
    await proc.restart();
    await proc.waitHealthy();
  }
  async start(id: number): Promise<void> {
    const proc = this.node(id).process;
    proc.start();
    await proc.waitHealthy();
  }

  // The network (proxied quorums only).
  link(from: number, to: number): TcpProxy {
    const proxy = this.links.get(`${from}->${to}`);
    if (proxy === undefined) throw new Error(`no proxy on ${from}->${to} (start the quorum with proxied: true)`);
    return proxy;
  }
  /** Cut every link between `id` and the other voters, both directions. */
  isolate(id: number, mode: CutMode = 'drop'): void {
    for (const other of this.ids) {
      if (other === id) continue;
      this.link(id, other).cut(mode);
      this.link(other, id).cut(mode);
    }
  }
  /** Restore every link between `id` and the others. */
  heal(id: number): void {
    for (const other of this.ids) {
      if (other === id) continue;
      this.link(id, other).restore();
      this.link(other, id).restore();
    }
  }
}

/** Start a controller quorum as separate `tributary controller` processes. */
export async function startControllerQuorum(harness: Harness, options: ControllerQuorumOptions = {}): Promise<ControllerQuorum> {
  const count = options.count ?? 3;
  const host = '127.0.0.1';
  const ports = await freePorts(count, host);
  const ids = ports.map((_, i) => i + 1);
  const quorum = new ControllerQuorum(harness);
  if (options.proxied === true) {
    for (const from of ids) {
      for (const to of ids) {
        if (from === to) continue;
        quorum.links.set(`${from}->${to}`, await harness.proxy({ host, port: ports[to - 1]! }, `link ${from}->${to}`));
      }
    }
  }
  let configFile: string | undefined;
  if (options.properties !== undefined) {
    configFile = path.join(harness.dir('config'), `controller-${randomUUID()}.properties`);
    fs.writeFileSync(configFile, Object.entries(options.properties).map(([k, v]) => `${k}=${v}`).join('\n') + '\n');
  }
  for (const id of ids) {
    const port = ports[id - 1]!;
    const voters = ids
      .map((other) => {
        if (other === id || options.proxied !== true) return `${other}@${host}:${ports[other - 1]}`;
        return `${other}@${quorum.link(id, other).address}`;
      })
      .join(',');
    const dataDir = harness.dir(`controller-${id}`);
    const args = ['controller', '--id', String(id), '--listen', `${host}:${port}`, '--voters', voters, '--data', dataDir];
    if (configFile !== undefined) args.push('--config', configFile);
    const proc = harness.spawn({ name: `controller-${id}`, args, dataDir, health: { host, port }, ...(options.env !== undefined ? { env: options.env } : {}) });
    quorum.nodes.set(id, { id, host, port, address: `${host}:${port}`, dataDir, voters, process: proc });
  }
  if (options.waitHealthy !== false) await Promise.all([...quorum.nodes.values()].map((n) => n.process.waitHealthy()));
  return quorum;
}

// ---- fake brokers (metadata writes that need no broker process) -------------------------------

/**
 * A broker that exists only as registrations and heartbeats sent from the test: enough for the
 * controller to count it alive (so topics can be placed on it). `stop()` ends the heartbeats; the
 * controller then fences it after broker.session.timeout.ms.
 */
export class FakeBroker {
  readonly incarnationId = randomUUID();
  brokerEpoch = -1;
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<unknown> = Promise.resolve();
  heartbeatErrors = 0;

  constructor(
    private readonly channel: ControllerChannel,
    readonly brokerId: number,
    readonly listenerUrl = `ws://127.0.0.1:${1 + brokerId}`,
  ) {}

  async register(): Promise<number> {
    const r = await this.channel.request(ApiKey.BrokerRegistration, { brokerId: this.brokerId, incarnationId: this.incarnationId, listenerUrl: this.listenerUrl });
    this.brokerEpoch = r.brokerEpoch;
    return r.brokerEpoch;
  }

  async heartbeat(): Promise<boolean> {
    const r = await this.channel.request(
      ApiKey.BrokerHeartbeat,
      { brokerId: this.brokerId, brokerEpoch: this.brokerEpoch, sentAtMs: Date.now(), wantShutDown: false, metadataOffset: Number.MAX_SAFE_INTEGER, replicas: [] },
      { timeoutMs: 2000 },
    );
    return !r.isFenced;
  }

  /** Register, heartbeat until unfenced, then keep heartbeating every `intervalMs` in the background. */
  async startAlive(intervalMs = 100): Promise<void> {
    await this.register();
    await waitFor(`broker ${this.brokerId} unfenced`, () => this.heartbeat(), { timeoutMs: 10_000, intervalMs: 50 });
    this.timer = setInterval(() => {
      this.inFlight = this.heartbeat().catch(() => {
        this.heartbeatErrors++;
      });
    }, intervalMs);
  }

  async close(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    await this.inFlight;
  }
}
