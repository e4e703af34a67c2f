/**
 * A controller's configuration: from a Kafka-style properties file and/or flags (flags win).
 *
 * Timing defaults aim at failover in about a second (Kafka's defaults aim at ~10 s):
 * - Raft ticks every 50 ms; an election timeout is [500, 1000) ms (electionTicks = 10), leaders
 *   heartbeat every tick, so a dead controller leader is replaced in well under a second.
 * - Brokers heartbeat every 100 ms; a broker silent for 1000 ms (broker.session.timeout.ms) is
 *   fenced and its partitions re-elected; leases last 900 ms, so lease × 1.05 < session timeout
 *   (see quorum-controller.ts for the argument).
 */
import { ConfigFileError, boolOption, intOption, parseHostPort, parseVoters, readPropertiesFile } from '../common/properties.js';

export interface ControllerConfig {
  nodeId: number;
  listen: { host: string; port: number };
  voters: Map<number, { host: string; port: number }>;
  dataDir: string;
  tickMs: number;
  electionTicks: number;
  heartbeatTicks: number;
  sessionTimeoutMs: number;
  leaseDurationMs: number;
  heartbeatIntervalMs: number;
  autoLeaderRebalance: boolean;
  numPartitions: number;
  defaultReplicationFactor: number;
  minInsyncReplicas: number;
  snapshotEveryEntries: number;
}

export interface ControllerFlags {
  config?: string | undefined;
  id?: number | undefined;
  listen?: string | undefined;
  voters?: string | undefined;
  data?: string | undefined;
}

export const CONTROLLER_DEFAULTS = {
  tickMs: 50,
  electionTimeoutMs: 500,
  sessionTimeoutMs: 1000,
  heartbeatIntervalMs: 100,
} as const;

export function loadControllerConfig(flags: ControllerFlags): ControllerConfig {
  const props = flags.config !== undefined ? readPropertiesFile(flags.config) : new Map<string, string>();
  const nodeId = flags.id ?? intOption(props, 'node.id', -1, 1, 0x7fffffff);
  if (nodeId < 1) throw new ConfigFileError('node id missing: pass --id N or set node.id in --config');
  const listenRaw = flags.listen ?? props.get('listeners');
  if (listenRaw === undefined) throw new ConfigFileError('listen address missing: pass --listen HOST:PORT or set listeners');
  const votersRaw = flags.voters ?? props.get('controller.quorum.voters');
  if (votersRaw === undefined) throw new ConfigFileError('voters missing: pass --voters 1@HOST:PORT,... or set controller.quorum.voters');
  const dataDir = flags.data ?? props.get('log.dirs');
  if (dataDir === undefined || dataDir === '') throw new ConfigFileError('data directory missing: pass --data DIR or set log.dirs');
  const voters = parseVoters(votersRaw, 'controller.quorum.voters');
  if (!voters.has(nodeId)) throw new ConfigFileError(`node ${nodeId} is not among the voters ${[...voters.keys()].join(',')}`);
  if (voters.size !== 1 && voters.size !== 3 && voters.size !== 5) throw new ConfigFileError(`the quorum needs 1, 3 or 5 voters, got ${voters.size}`);

  const tickMs = intOption(props, 'controller.tick.ms', CONTROLLER_DEFAULTS.tickMs, 5, 10_000);
  const electionTimeoutMs = intOption(props, 'controller.quorum.election.timeout.ms', CONTROLLER_DEFAULTS.electionTimeoutMs, tickMs * 2, 600_000);
  const sessionTimeoutMs = intOption(props, 'broker.session.timeout.ms', CONTROLLER_DEFAULTS.sessionTimeoutMs, 100, 600_000);
  const heartbeatIntervalMs = intOption(props, 'broker.heartbeat.interval.ms', CONTROLLER_DEFAULTS.heartbeatIntervalMs, 10, 60_000);
  if (heartbeatIntervalMs * 2 > sessionTimeoutMs) {
    throw new ConfigFileError(`broker.heartbeat.interval.ms=${heartbeatIntervalMs} must be at most half of broker.session.timeout.ms=${sessionTimeoutMs}`);
  }
  const minInsyncReplicas = intOption(props, 'min.insync.replicas', 1, 1, 32);
  return {
    nodeId,
    listen: parseHostPort(listenRaw, 'listen'),
    voters,
    dataDir,
    tickMs,
    electionTicks: Math.max(2, Math.round(electionTimeoutMs / tickMs)),
    heartbeatTicks: 1,
    sessionTimeoutMs,
    // 90% of the session: leaves a 10% margin for clock drift and the heartbeat's flight time.
    leaseDurationMs: Math.floor(sessionTimeoutMs * 0.9),
    heartbeatIntervalMs,
    autoLeaderRebalance: boolOption(props, 'auto.leader.rebalance.enable', true),
    numPartitions: intOption(props, 'num.partitions', 1, 1, 10_000),
    defaultReplicationFactor: intOption(props, 'default.replication.factor', 1, 1, 32),
    minInsyncReplicas,
    snapshotEveryEntries: intOption(props, 'metadata.snapshot.every.entries', 10_000, 10),
  };
}
