/**
 * `tributary cluster up|status|failovers`.
 */
import type { Argv, CommandModule } from 'yargs';
import { ConfigFileError, parseVoters } from '../../common/properties.js';
import { ControllerChannel } from '../../client/controller-channel.js';
import { ApiKey } from '../../protocol/api-keys.js';
import { UsageError } from '../usage-error.js';
import { clusterUp } from './cluster-up.js';

/** The local cluster's controllers (`tributary cluster up` with the default base port). */
export const DEFAULT_CONTROLLERS = '1@127.0.0.1:9093,2@127.0.0.1:9095,3@127.0.0.1:9097';

export function controllersFrom(flag: string | undefined): ControllerChannel {
  const raw = flag ?? process.env.TRIBUTARY_CONTROLLERS ?? DEFAULT_CONTROLLERS;
  try {
    return new ControllerChannel(parseVoters(raw, '--controllers'), { clientId: 'tributary-cli', requestTimeoutMs: 5000 });
  } catch (error) {
    if (error instanceof ConfigFileError) throw new UsageError(error.message);
    throw error;
  }
}

export interface ClusterStatus {
  controller: { leader: number | null; term: number; voters: Array<{ id: number; address: string; role: string; appliedIndex?: number }> };
  brokers: Array<{ id: number; address: string; state: 'alive' | 'fenced' }>;
  partitions: Array<{ topic: string; partition: number; leader: number | null; leaderEpoch: number; replicas: number[]; isr: number[] }>;
  underReplicated: number;
  offline: number;
}

export async function clusterStatus(channel: ControllerChannel): Promise<ClusterStatus> {
  const views = await channel.describeVoters();
  if (views.every((v) => v.quorum === undefined)) {
    throw new Error(`no controller answered: ${views.map((v) => `${v.id}@${v.address}: ${v.error ?? ''}`).join('; ')}`);
  }
  let leader: number | null = null;
  let term = 0;
  for (const v of views) {
    if (v.quorum !== undefined && v.quorum.term >= term) {
      term = v.quorum.term;
      if (v.quorum.leaderId !== -1) leader = v.quorum.leaderId;
    }
  }
  const voters = views.map((v) => {
    const self = v.quorum?.voters.find((x) => x.id === v.id);
    return { id: v.id, address: v.address, role: self?.role ?? 'unreachable', ...(self?.appliedIndex !== undefined ? { appliedIndex: self.appliedIndex } : {}) };
  });
  const status: ClusterStatus = { controller: { leader, term, voters }, brokers: [], partitions: [], underReplicated: 0, offline: 0 };
  if (leader === null) return status;
  const [cluster, metadata] = await Promise.all([
    channel.request(ApiKey.DescribeCluster, { includeFencedBrokers: true }),
    channel.request(ApiKey.Metadata, { topics: null }),
  ]);
  status.brokers = cluster.brokers.map((b) => ({ id: b.brokerId, address: `${b.host}:${b.port}`, state: b.isFenced ? 'fenced' : 'alive' }));
  for (const t of metadata.topics) {
    for (const p of t.partitions) {
      status.partitions.push({ topic: t.name, partition: p.partitionIndex, leader: p.leaderId === -1 ? null : p.leaderId, leaderEpoch: p.leaderEpoch, replicas: p.replicaNodes, isr: p.isrNodes });
      if (p.leaderId === -1) status.offline++;
      else if (p.isrNodes.length < p.replicaNodes.length) status.underReplicated++;
    }
  }
  return status;
}

function printStatus(s: ClusterStatus): void {
  const out: string[] = [];
  out.push(`controller quorum: leader ${s.controller.leader ?? 'none'}, term ${s.controller.term}`);
  for (const v of s.controller.voters) out.push(`  ${v.id}  ${v.address.padEnd(22)} ${v.role}`);
  out.push(`brokers: ${s.brokers.filter((b) => b.state === 'alive').length} alive, ${s.brokers.filter((b) => b.state === 'fenced').length} fenced`);
  for (const b of s.brokers) out.push(`  ${b.id}  ${b.address.padEnd(22)} ${b.state}`);
  out.push(`partitions: ${s.partitions.length}, under-replicated ${s.underReplicated}, offline ${s.offline}`);
  for (const p of s.partitions) out.push(`  ${`${p.topic}-${p.partition}`.padEnd(24)} leader ${String(p.leader ?? 'none').padEnd(4)} epoch ${String(p.leaderEpoch).padEnd(4)} replicas [${p.replicas}] isr [${p.isr}]`);
  process.stdout.write(out.join('\n') + '\n');
}

interface StatusArgs {
  json: boolean;
  controllers?: string;
}

interface FailoversArgs extends StatusArgs {
  limit: number;
}

interface ElectArgs {
  controllers?: string;
  topic?: string;
  partition?: number;
  json: boolean;
}

interface UpArgs {
  controllers: number;
  brokers: number;
  data: string;
  basePort: number;
}

const statusCommand: CommandModule<object, StatusArgs> = {
  command: 'status',
  describe: 'controller quorum, brokers and partitions',
  builder: (y) =>
    y
      .option('json', { type: 'boolean', default: false, describe: 'print JSON' })
      .option('controllers', { type: 'string', describe: `controller quorum to ask (default $TRIBUTARY_CONTROLLERS or ${DEFAULT_CONTROLLERS})` }) as never,
  handler: async (args) => {
    const channel = controllersFrom(args.controllers);
    try {
      const status = await clusterStatus(channel);
      if (args.json) process.stdout.write(JSON.stringify(status) + '\n');
      else printStatus(status);
    } finally {
      await channel.close();
    }
  },
};

const failoversCommand: CommandModule<object, FailoversArgs> = {
  command: 'failovers',
  describe: 'the failover log: every leadership change, newest last',
  builder: (y) =>
    y
      .option('json', { type: 'boolean', default: false, describe: 'print one JSON object per change' })
      .option('limit', { type: 'number', default: 1000, describe: 'at most this many, the most recent' })
      .option('controllers', { type: 'string', describe: 'controller quorum to ask' }) as never,
  handler: async (args) => {
    if (!Number.isInteger(args.limit) || args.limit < 1) throw new UsageError(`--limit must be a positive integer, got ${args.limit}`);
    const channel = controllersFrom(args.controllers);
    try {
      const { entries } = await channel.request(ApiKey.DescribeFailovers, { limit: args.limit });
      for (const e of entries) {
        const line = args.json
          ? JSON.stringify({ ...e, time: new Date(e.timeMs).toISOString() })
          : `${new Date(e.timeMs).toISOString()}  ${`${e.topic}-${e.partition}`.padEnd(24)} ${String(e.oldLeader === -1 ? 'none' : e.oldLeader).padStart(4)} -> ${String(e.newLeader === -1 ? 'none' : e.newLeader).padEnd(4)} epoch ${String(e.leaderEpoch).padEnd(4)} ${e.trigger.padEnd(19)} lag ${e.lagAtPromotion}${e.recordsLost > 0 ? ` lost ${e.recordsLost}` : ''}`;
        process.stdout.write(line + '\n');
      }
    } finally {
      await channel.close();
    }
  },
};

const electCommand: CommandModule<object, ElectArgs> = {
  command: 'elect-leaders',
  describe: 'move leadership back to each partition\'s preferred (first) replica where it is in sync',
  builder: (y) =>
    y
      .option('topic', { type: 'string', describe: 'only this topic (default: every partition)' })
      .option('partition', { type: 'number', describe: 'only this partition of --topic' })
      .option('json', { type: 'boolean', default: false, describe: 'print JSON' })
      .option('controllers', { type: 'string', describe: 'controller quorum to ask' }) as never,
  handler: async (args) => {
    if (args.partition !== undefined && (args.topic === undefined || !Number.isInteger(args.partition) || args.partition < 0)) {
      throw new UsageError('--partition needs --topic and a non-negative integer');
    }
    const channel = controllersFrom(args.controllers);
    try {
      let topicPartitions: Array<{ topic: string; partitions: number[] }> | null = null;
      if (args.topic !== undefined) {
        const md = await channel.request(ApiKey.Metadata, { topics: [args.topic] });
        const t = md.topics[0];
        if (t === undefined || t.errorCode !== 0) throw new UsageError(`no topic ${args.topic}`);
        const all = t.partitions.map((p) => p.partitionIndex);
        if (args.partition !== undefined && !all.includes(args.partition)) throw new UsageError(`${args.topic} has no partition ${args.partition}`);
        topicPartitions = [{ topic: args.topic, partitions: args.partition !== undefined ? [args.partition] : all }];
      }
      const r = await channel.request(ApiKey.ElectLeaders, { electionType: 0, topicPartitions, timeoutMs: 10_000 });
      const results = r.replicaElectionResults.flatMap((t) => t.partitionResult.map((p) => ({ topic: t.topic, partition: p.partitionId, preferredLeader: p.errorCode === 0 })));
      if (args.json) process.stdout.write(JSON.stringify(results) + '\n');
      else {
        for (const x of results) process.stdout.write(`${`${x.topic}-${x.partition}`.padEnd(24)} ${x.preferredLeader ? 'preferred leader' : 'preferred replica not in sync or not alive: unchanged'}\n`);
      }
      if (results.some((x) => !x.preferredLeader)) process.exitCode = 1;
    } finally {
      await channel.close();
    }
  },
};

const upCommand: CommandModule<object, UpArgs> = {
  command: 'up',
  describe: 'run a local cluster: controllers and brokers as separate processes (npm start)',
  builder: (y) =>
    y
      .option('controllers', { type: 'number', default: 3, describe: 'controller processes (1, 3 or 5)' })
      .option('brokers', { type: 'number', default: 3, describe: 'broker processes' })
      .option('data', { type: 'string', default: './data', describe: 'data directory (reused across runs)' })
      .option('base-port', { type: 'number', default: 9092, describe: 'broker 1 listens here, controller 1 on the next port, and so on' }) as never,
  handler: async (args) => {
    await clusterUp({ controllers: args.controllers, brokers: args.brokers, data: args.data, basePort: args.basePort, brokerCommandAvailable: true });
  },
};

export const clusterCommand: CommandModule = {
  command: 'cluster <command>',
  describe: 'run and inspect a cluster',
  builder: (y: Argv) => y.command(upCommand).command(statusCommand).command(failoversCommand).command(electCommand).demandCommand(1, 'name a cluster command'),
  handler: () => undefined,
};
