/**
 * `tributary cluster up` (= `npm start`): a local cluster of separate OS processes on loopback.
 *
 * Ports from --base-port B (default 9092), interleaved so the contract's defaults hold (broker 1
 * at 9092 is the default bootstrap, controller 1 at 9093):
 *   broker i     → B + 2(i-1)        controller i → B + 2(i-1) + 1
 * Data under --data (default ./data): data/controller-N, data/broker-N. Running it again reuses
 * the data. Ctrl-C (SIGINT) or SIGTERM stops every child with SIGTERM (brokers first, so they hand
 * leadership over while the controllers still run), then waits for them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { request } from 'node:http';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError } from '../usage-error.js';

export interface ClusterUpOptions {
  controllers: number;
  brokers: number;
  data: string;
  basePort: number;
  /** Include brokers only when the broker command exists in this build. */
  brokerCommandAvailable: boolean;
}

interface Child {
  name: string;
  process: ChildProcess;
  healthUrl: string;
}

const BIN = fileURLToPath(new URL('../../../bin/tributary.js', import.meta.url));
const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;

export function clusterPorts(basePort: number, index: number): { broker: number; controller: number } {
  return { broker: basePort + 2 * (index - 1), controller: basePort + 2 * (index - 1) + 1 };
}

function healthy(url: string): Promise<boolean> {
  return new Promise((done) => {
    const req = request(url, { method: 'GET', timeout: 1000 }, (res) => {
      res.resume();
      done(res.statusCode === 200);
    });
    req.on('error', () => done(false));
    req.on('timeout', () => {
      req.destroy();
      done(false);
    });
    req.end();
  });
}

/**
 * V8 flags for every child. A local cluster puts all its processes on one machine, usually with
 * fewer cores than processes; V8's parallel GC helper threads then wait for a core while the main
 * thread waits for them (a 12 MB heap's mark-compact took 194 ms of wall time for 3 ms of CPU).
 * One GC thread per process measured better on the 2-core standard machine, alternating runs of
 * the produce bench: peak 30.4k/34.9k/38.8k vs 30.5k/29.8k/21.4k msg/s, acks=all p99 at half
 * peak 14.7/14.5/15.1 vs 26.9/22.4/27.8 ms. A broker alone on its machine keeps V8's default.
 */
const CHILD_NODE_FLAGS = ['--single-threaded-gc'];

function spawnChild(name: string, args: string[], healthUrl: string): Child {
  const child = spawn(process.execPath, [...CHILD_NODE_FLAGS, BIN, ...args], { stdio: ['ignore', 'inherit', 'inherit'], env: process.env });
  return { name, process: child, healthUrl };
}

export async function clusterUp(options: ClusterUpOptions): Promise<void> {
  if (options.controllers !== 1 && options.controllers !== 3 && options.controllers !== 5) throw new UsageError('--controllers must be 1, 3 or 5');
  if (!Number.isInteger(options.brokers) || options.brokers < 0 || options.brokers > 32) throw new UsageError('--brokers must be between 0 and 32');
  const count = Math.max(options.controllers, options.brokers);
  if (!Number.isInteger(options.basePort) || options.basePort < 1024 || options.basePort + 2 * count > 65535) throw new UsageError('--base-port must leave room for every process below 65536 (and be >= 1024)');
  const dataDir = resolve(options.data);
  mkdirSync(dataDir, { recursive: true });
  const voters = Array.from({ length: options.controllers }, (_, i) => `${i + 1}@127.0.0.1:${clusterPorts(options.basePort, i + 1).controller}`).join(',');
  const children: Child[] = [];
  let stopping = false;

  const stopAll = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<void> => {
    if (stopping) return;
    stopping = true;
    process.stderr.write('\nstopping the cluster...\n');
    // Brokers first: a controlled shutdown needs the controllers alive.
    const order = [...children.filter((c) => c.name.startsWith('broker')), ...children.filter((c) => c.name.startsWith('controller'))];
    for (const group of [order.filter((c) => c.name.startsWith('broker')), order.filter((c) => c.name.startsWith('controller'))]) {
      await Promise.all(
        group.map(
          (c) =>
            new Promise<void>((done) => {
              if (c.process.exitCode !== null || c.process.signalCode !== null) return done();
              const timer = setTimeout(() => c.process.kill('SIGKILL'), STOP_TIMEOUT_MS);
              c.process.once('exit', () => {
                clearTimeout(timer);
                done();
              });
              c.process.kill(signal);
            }),
        ),
      );
    }
  };

  // The first Ctrl-C stops the cluster cleanly; a second one (or a SIGTERM meanwhile) kills what
  // is left at once. Either way no child outlives us.
  const onSignal = () => {
    if (stopping) {
      for (const c of children) if (c.process.exitCode === null && c.process.signalCode === null) c.process.kill('SIGKILL');
      process.exit(130);
    }
    void stopAll().then(() => process.exit(0));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', () => {
    for (const c of children) if (c.process.exitCode === null && c.process.signalCode === null) c.process.kill('SIGKILL');
  });

  for (let i = 1; i <= options.controllers; i++) {
    const port = clusterPorts(options.basePort, i).controller;
    const dir = join(dataDir, `controller-${i}`);
    children.push(spawnChild(`controller-${i}`, ['controller', '--id', String(i), '--listen', `127.0.0.1:${port}`, '--voters', voters, '--data', dir], `http://127.0.0.1:${port}/healthz`));
  }
  if (options.brokerCommandAvailable) {
    for (let i = 1; i <= options.brokers; i++) {
      const port = clusterPorts(options.basePort, i).broker;
      const dir = join(dataDir, `broker-${i}`);
      children.push(spawnChild(`broker-${i}`, ['broker', '--id', String(i), '--listen', `127.0.0.1:${port}`, '--controllers', voters, '--data', dir], `http://127.0.0.1:${port}/healthz`));
    }
  }
  // A child that dies is reported, not avenged: a local cluster is where people try failover,
  // so the others keep running. When every child is gone, so are we.
  let running = children.length;
  for (const c of children) {
    c.process.once('exit', (code, signal) => {
      running--;
      if (stopping) return;
      process.stderr.write(`tributary: ${c.name} exited (${signal ?? `code ${code}`}); the rest of the cluster keeps running\n`);
      if (running === 0) {
        process.stderr.write('tributary: every process of the cluster has exited\n');
        process.exit(1);
      }
    });
  }

  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (const c of children) {
    while (!(await healthy(c.healthUrl))) {
      if (stopping) return;
      if (Date.now() > deadline) {
        await stopAll();
        throw new Error(`${c.name} did not become healthy within ${READY_TIMEOUT_MS} ms (${c.healthUrl})`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const firstBroker = `ws://127.0.0.1:${clusterPorts(options.basePort, 1).broker}`;
  process.stdout.write(
    [
      `Tributary cluster up: ${options.controllers} controllers${options.brokerCommandAvailable ? `, ${options.brokers} brokers` : ' (brokers arrive with the data-path issue)'}; data in ${dataDir}`,
      `controllers: ${voters}`,
      ...(options.brokerCommandAvailable && options.brokers > 0
        ? [`bootstrap:   ${firstBroker}`, `dashboard:   http://127.0.0.1:${clusterPorts(options.basePort, 1).broker}/`]
        : []),
      'Ctrl-C stops it.',
      '',
    ].join('\n'),
  );
  await new Promise<void>(() => undefined); // run until a signal stops us
}
