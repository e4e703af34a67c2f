/**
 * Controller failover benchmark (a measurement, not a test): three `tributary controller`
 * processes with default settings on loopback. Each round finds the leader (DescribeQuorum
 * through a ControllerChannel), kill -9s it, and measures from the kill until another voter
 * reports itself leader and a write through the same ControllerChannel succeeds (a
 * BrokerRegistration: a Raft record that must commit). Then the killed controller is restarted
 * on its data dir and the next round waits until it has applied everything the leader has.
 *
 *   node dist/bench/controller-failover.js [--rounds 20]
 *
 * Prints one JSON line: {"bench":"controller-failover","system":"tributary","rounds":N,"p50_ms":..,"p99_ms":..,"max_ms":..}
 * (percentiles by nearest rank). Per-round figures go to stderr.
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { waitFor } from '../common/wait.js';
import type { ControllerChannel } from '../client/controller-channel.js';
import { ApiKey } from '../protocol/api-keys.js';
import { Harness, startControllerQuorum } from '../test/integration/harness.js';
import { isMainModule, positiveIntFlag, runAsScript } from './args.js';
import { latencySummary } from './stats.js';

export interface ControllerFailoverOptions {
  rounds: number;
}

/** The voter that reports itself leader in the highest term, asked through the channel. */
async function leaderOf(channel: ControllerChannel): Promise<{ leaderId: number; term: number } | undefined> {
  const views = await channel.describeVoters(1000);
  let best: { leaderId: number; term: number } | undefined;
  let maxTerm = 0;
  for (const v of views) if (v.quorum !== undefined) maxTerm = Math.max(maxTerm, v.quorum.term);
  for (const v of views) {
    const self = v.quorum?.voters.find((x) => x.id === v.id);
    if (v.quorum !== undefined && self?.role === 'leader' && v.quorum.term === maxTerm) best = { leaderId: v.id, term: v.quorum.term };
  }
  return best;
}


export async function controllerFailoverBench(options: ControllerFailoverOptions): Promise<void> {
  const rounds = options.rounds;
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`rounds must be a positive integer, got ${rounds}`);
  const harness = new Harness('bench-controller-failover');
  try {
    const quorum = await startControllerQuorum(harness);
    const channel = quorum.channel({ clientId: 'bench', requestTimeoutMs: 30_000, retryBackoffMs: 10 });
    let brokerId = 0;
    const write = () => channel.request(ApiKey.BrokerRegistration, { brokerId: ++brokerId, incarnationId: randomUUID(), listenerUrl: 'ws://127.0.0.1:1' });
    const samples: number[] = [];
    for (let round = 1; round <= rounds; round++) {
      const leader = await waitFor('a controller leader', () => leaderOf(channel), { timeoutMs: 30_000 });
      await write(); // the channel is connected to the leader, as a running client would be

      const killedAt = performance.now();
      await quorum.kill(leader.leaderId);
      await write();
      const servedAt = performance.now();
      const now = await leaderOf(channel);
      if (now === undefined || now.leaderId === leader.leaderId || now.term <= leader.term) {
        throw new Error(`round ${round}: a write succeeded after killing ${leader.leaderId} (term ${leader.term}), but the quorum reports ${JSON.stringify(now)}`);
      }
      const ms = servedAt - killedAt;
      samples.push(ms);

      await quorum.start(leader.leaderId);
      const caught = await quorum.waitCaughtUp(leader.leaderId, { timeoutMs: 30_000 });
      process.stderr.write(`round ${round}: killed ${leader.leaderId} (term ${leader.term}), ${now.leaderId} served a write after ${ms.toFixed(1)} ms (term ${now.term}); ${leader.leaderId} caught up to ${caught.appliedIndex}\n`);
    }
    process.stdout.write(
      JSON.stringify({
        bench: 'controller-failover',
        system: 'tributary',
        rounds,
        ...latencySummary(samples),
      }) + '\n',
    );
  } finally {
    await harness.cleanup();
  }
}

if (isMainModule(import.meta.url)) await runAsScript((argv) => controllerFailoverBench({ rounds: positiveIntFlag(argv, 'rounds', 20) }));
