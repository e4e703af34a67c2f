/**
 * A seeded, deterministic simulation of a Raft controller quorum.
 *
 * One run = one seed. Time moves in ticks; within a tick the simulator may inject a fault, ticks
 * every live node, lets clients propose, read and compact, and delivers every message that is
 * due. Each of those is an event; after every event the driver handles the node's Ready and the
 * InvariantChecker runs. Everything random comes from Randoms seeded from the run's seed, so
 * the same seed replays the same run byte for byte (see `trace`).
 *
 * Scenarios:
 *  - chaos: loss, duplication, delay/reordering, symmetric and one-way partitions, crashes at
 *    any point of the Ready hand-off, restarts, proposals, reads and compactions throughout;
 *    then every fault heals and a proposal must commit on every node within healTicksMax.
 *  - prevote_rejoin: a healthy cluster elects a leader, one follower is cut off (from everyone,
 *    or only from the leader) for many election timeouts and rejoins; no node's term may move,
 *    the leader must stay, and the follower must catch up.
 */
import type { RaftLimits, RaftTestFaults } from '../../controller/raft/config.js';
import { createRandom } from '../../controller/raft/random.js';
import type { Random } from '../../controller/raft/random.js';
import type { NodeId, RaftMessage } from '../../controller/raft/types.js';
import { InvariantChecker, SimViolation, violationFrom } from './checker.js';
import type { CheckerStats } from './checker.js';
import { SimNetwork } from './network.js';
import type { NetworkFaults } from './network.js';
import { SIM_RAFT_LIMITS, SimNode } from './sim_node.js';
import type { CrashPoint, ReadyIo } from './sim_node.js';
import { encodeCommand } from './state_machine.js';

export type Scenario = 'chaos' | 'prevote_rejoin';

export interface SimOptions {
  readonly seed: number;
  /** Default: drawn from the seed (3 or 5). */
  readonly nodeCount?: 3 | 5;
  readonly scenario?: Scenario;
  /** Ticks of faults before everything heals. */
  readonly chaosTicks?: number;
  /** Liveness bound: after healing, a proposal must be applied on a majority within this. */
  readonly healTicksMax?: number;
  /** ... and on every node within this (catching up may take many round trips). */
  readonly catchUpTicksMax?: number;
  readonly testFaults?: RaftTestFaults;
  /** Receives one line per event when set. */
  readonly trace?: (line: string) => void;
}

export interface SimStats extends CheckerStats {
  ticks: number;
  events: number;
  messagesSent: number;
  messagesDropped: number;
  messagesDuplicated: number;
  crashes: number;
  crashesMidReady: number;
  restarts: number;
  partitions: number;
  proposalsAccepted: number;
  compactions: number;
  snapshotsSent: number;
  /** Ticks from healing to the liveness proposal being applied on a majority. */
  healTicks: number;
  /** Ticks from healing to it being applied on every node. */
  catchUpTicks: number;
}

export type SimResult =
  | { readonly ok: true; readonly seed: number; readonly nodeCount: number; readonly stats: SimStats }
  | {
      readonly ok: false;
      readonly seed: number;
      readonly nodeCount: number;
      readonly tick: number;
      readonly violation: SimViolation;
      readonly stats: SimStats;
    };

export const DEFAULT_CHAOS_TICKS = 250;
export const DEFAULT_HEAL_TICKS_MAX = 30 * SIM_RAFT_LIMITS.electionTicks;
export const DEFAULT_CATCH_UP_TICKS_MAX = 150 * SIM_RAFT_LIMITS.electionTicks;
const FULL_LOG_CHECK_INTERVAL_TICKS = 25;
const MARKER_COMMAND_BASE = 0x7000_0000;

export function runSimulation(options: SimOptions): SimResult {
  return new Simulation(options).run();
}

class Simulation {
  private readonly random: Random;
  private readonly nodeCount: 3 | 5;
  private readonly voterIds: NodeId[];
  private readonly quorum: number;
  private readonly nodes: SimNode[];
  private readonly network: SimNetwork;
  private readonly checker: InvariantChecker;
  private readonly trace: ((line: string) => void) | undefined;
  private readonly stats: SimStats;
  private readonly readyIo: ReadyIo;
  private tick = 0;
  private nextCommandId = 1;
  private nextReadId = 1;
  /** Index of the first liveness marker command applied anywhere, once one is. */
  private markerAppliedIndex = 0;

  // Per-seed chaos intensity.
  private readonly faultRate: number;
  private readonly proposeRate: number;
  private readonly readRate: number;
  private readonly compactRate: number;

  constructor(private readonly options: SimOptions) {
    this.random = createRandom(options.seed);
    this.nodeCount = options.nodeCount ?? (this.random.nextInt(2) === 0 ? 3 : 5);
    this.voterIds = Array.from({ length: this.nodeCount }, (_, k) => k + 1);
    this.quorum = Math.floor(this.nodeCount / 2) + 1;
    // Small, varied replication limits so Appends split, windows fill and backtracking runs.
    const limits: RaftLimits = {
      ...SIM_RAFT_LIMITS,
      entriesPerAppendMax: [1, 2, 8][this.random.nextInt(3)]!,
      inflightAppendsMax: [1, 2, 4][this.random.nextInt(3)]!,
    };
    this.nodes = this.voterIds.map((id) => new SimNode(id, this.voterIds, limits, options.testFaults));
    const faults: NetworkFaults = options.scenario === 'prevote_rejoin'
      ? { lossRate: 0, duplicateRate: 0, delayTicksMax: 2, longDelayRate: 0 }
      : {
          lossRate: this.random.nextFloat() * 0.15,
          duplicateRate: this.random.nextFloat() * 0.05,
          delayTicksMax: 1 + this.random.nextInt(3),
          longDelayRate: this.random.nextFloat() * 0.05,
        };
    this.network = new SimNetwork(createRandom(this.random.nextUint32()), faults);
    this.checker = new InvariantChecker(this.nodes);
    this.trace = options.trace;
    this.faultRate = 0.02 + this.random.nextFloat() * 0.3;
    this.proposeRate = 0.2 + this.random.nextFloat() * 0.6;
    this.readRate = 0.05 + this.random.nextFloat() * 0.25;
    this.compactRate = 0.02 + this.random.nextFloat() * 0.1;
    this.readyIo = {
      checker: this.checker,
      send: (message) => this.network.send(message, this.tick),
      onCrash: (node, point) => {
        this.stats.crashesMidReady++;
        this.crash(node, point);
      },
      onPersisted: (node) => {
        if (this.trace !== undefined) this.traceReady(node);
      },
      onApplied: (_node, entry, commandId) => {
        if (commandId >= MARKER_COMMAND_BASE && this.markerAppliedIndex === 0) this.markerAppliedIndex = entry.index;
      },
    };
    this.stats = {
      ...this.checker.stats,
      ticks: 0, events: 0, messagesSent: 0, messagesDropped: 0, messagesDuplicated: 0,
      crashes: 0, crashesMidReady: 0, restarts: 0, partitions: 0, proposalsAccepted: 0,
      compactions: 0, snapshotsSent: 0, healTicks: 0, catchUpTicks: 0,
    };
  }

  run(): SimResult {
    this.log(() => `seed=${this.options.seed} nodes=${this.nodeCount} scenario=${this.options.scenario ?? 'chaos'} ` +
      `loss=${this.network.faults.lossRate.toFixed(3)} dup=${this.network.faults.duplicateRate.toFixed(3)} ` +
      `delayMax=${this.network.faults.delayTicksMax}`);
    try {
      for (const node of this.nodes) this.startNode(node);
      if (this.options.scenario === 'prevote_rejoin') this.runPreVoteRejoin();
      else this.runChaos();
      this.checker.checkLogMatchingFull();
    } catch (error) {
      const violation = violationFrom(error);
      this.log(() => `VIOLATION ${violation.message}`);
      return { ok: false, seed: this.options.seed, nodeCount: this.nodeCount, tick: this.tick, violation, stats: this.finishStats() };
    }
    return { ok: true, seed: this.options.seed, nodeCount: this.nodeCount, stats: this.finishStats() };
  }

  private finishStats(): SimStats {
    Object.assign(this.stats, this.checker.stats);
    this.stats.ticks = this.tick;
    this.stats.messagesSent = this.network.sentCount;
    this.stats.messagesDropped = this.network.droppedCount;
    this.stats.messagesDuplicated = this.network.duplicatedCount;
    return this.stats;
  }

  // ---------------------------------------------------------------------------------------------
  // Scenarios

  private runChaos(): void {
    const chaosTicks = this.options.chaosTicks ?? DEFAULT_CHAOS_TICKS;
    while (this.tick < chaosTicks) this.runTick(true);
    this.healEverything();
    const healStartTick = this.tick;
    const healTicksMax = this.options.healTicksMax ?? DEFAULT_HEAL_TICKS_MAX;
    const catchUpTicksMax = this.options.catchUpTicksMax ?? DEFAULT_CATCH_UP_TICKS_MAX;
    let markerTerm = -1;
    while (this.countMarkerApplied() < this.quorum) {
      if (this.tick - healStartTick >= healTicksMax) {
        throw new SimViolation('liveness', `no proposal committed on a majority within ${healTicksMax} ticks after healing ` +
          `(marker applied at ${this.markerAppliedIndex || 'none'}, roles ${this.describeRoles()})`);
      }
      // Keep offering a marker to whoever leads a new term until one is applied somewhere.
      if (this.markerAppliedIndex === 0) {
        const leader = this.pickLeader();
        if (leader !== undefined && leader.core!.currentTerm !== markerTerm) {
          if (this.propose(leader, MARKER_COMMAND_BASE + this.nextCommandId++)) markerTerm = leader.core!.currentTerm;
        }
      }
      this.runTick(false);
    }
    this.stats.healTicks = this.tick - healStartTick;
    // Then every node must catch up (by entries or by snapshot); slower when a node is far
    // behind and limits are small, hence its own, larger bound.
    while (this.countMarkerApplied() < this.nodeCount) {
      if (this.tick - healStartTick >= catchUpTicksMax) {
        throw new SimViolation('liveness', `not every node applied the committed proposal at ${this.markerAppliedIndex} ` +
          `within ${catchUpTicksMax} ticks after healing (applied: ${this.nodes.map((node) => node.stateMachine?.appliedIndex).join(',')})`);
      }
      this.runTick(false);
    }
    this.stats.catchUpTicks = this.tick - healStartTick;
  }

  private runPreVoteRejoin(): void {
    // Traffic, then quiet so every log is equal when the follower is cut off: with no proposals
    // during the isolation, only the leader lease then stops the returning node's campaign.
    const settleTicks = 8 * SIM_RAFT_LIMITS.electionTicks;
    while (this.tick < settleTicks) this.runTick(false, this.tick < settleTicks - 3 * SIM_RAFT_LIMITS.electionTicks);
    const leaders = this.nodes.filter((node) => node.core!.currentRole === 'leader');
    if (leaders.length !== 1) throw new SimViolation('liveness', `no single leader after ${settleTicks} healthy ticks: ${this.describeRoles()}`);
    const leader = leaders[0]!;
    const leaderTerm = leader.core!.currentTerm;
    const followers = this.nodes.filter((node) => node !== leader);
    const isolated = followers[this.random.nextInt(followers.length)]!;
    const proposeWhileIsolated = this.random.nextInt(2) === 0;
    // Either cut off from everyone, or only from the leader: then its pre-votes still reach
    // (and are answered by) the other followers, and only their leader lease protects the leader.
    const cutFromLeaderOnly = this.random.nextInt(2) === 0;
    const others = this.nodes.filter((node) => node !== isolated).map((node) => node.id);
    this.network.partition([isolated.id], cutFromLeaderOnly ? [leader.id] : others);
    this.log(() => `isolate n${isolated.id} from ${cutFromLeaderOnly ? 'the leader' : 'everyone'} ` +
      `(leader n${leader.id} term ${leaderTerm}, proposals ${proposeWhileIsolated})`);
    const checkTerms = (): void => {
      for (const node of this.nodes) {
        const core = node.core!;
        if (core.currentTerm !== leaderTerm) {
          throw new SimViolation('prevote_term_stable', `n${node.id} moved to term ${core.currentTerm} (leader n${leader.id} leads term ${leaderTerm}; n${isolated.id} was isolated)`);
        }
      }
      if (leader.core!.currentRole !== 'leader') {
        throw new SimViolation('prevote_term_stable', `leader n${leader.id} of term ${leaderTerm} lost leadership: ${this.describeRoles()}`);
      }
    };
    const isolateUntilTick = this.tick + 20 * SIM_RAFT_LIMITS.electionTicks;
    while (this.tick < isolateUntilTick) {
      this.runTick(false, proposeWhileIsolated);
      checkTerms();
    }
    this.network.healPartitions();
    this.log(() => `rejoin n${isolated.id}`);
    // Traffic for a while, then quiet until the rejoined node has caught up exactly.
    const trafficUntilTick = this.tick + 7 * SIM_RAFT_LIMITS.electionTicks;
    while (this.tick < trafficUntilTick) {
      this.runTick(false, true);
      checkTerms();
    }
    const catchUpUntilTick = this.tick + 60 * SIM_RAFT_LIMITS.electionTicks;
    while (isolated.core!.commitIndex !== leader.core!.commitIndex) {
      if (this.tick >= catchUpUntilTick) {
        throw new SimViolation('liveness', `n${isolated.id} did not catch up after rejoining ` +
          `(commit ${isolated.core!.commitIndex} vs leader ${leader.core!.commitIndex})`);
      }
      this.runTick(false, false);
      checkTerms();
    }
  }

  // ---------------------------------------------------------------------------------------------
  // One tick

  private runTick(chaos: boolean, clientTraffic = chaos): void {
    const now = this.tick;
    if (chaos && this.random.nextFloat() < this.faultRate) this.injectFault();
    for (const node of this.nodes) {
      const core = node.core;
      if (core === null) continue;
      core.tick();
      this.afterInput(node);
    }
    if (clientTraffic) {
      if (this.random.nextFloat() < this.proposeRate) {
        const leader = this.pickLeader();
        if (leader !== undefined) this.propose(leader, this.nextCommandId++);
      }
      if (this.random.nextFloat() < this.readRate) {
        const leader = this.pickLeader();
        if (leader !== undefined) this.read(leader);
      }
      if (this.random.nextFloat() < this.compactRate) this.compact(this.nodes[this.random.nextInt(this.nodes.length)]!);
    }
    for (let message = this.network.nextDue(now); message !== undefined; message = this.network.nextDue(now)) {
      const node = this.nodes[message.to - 1]!;
      if (node.core === null) continue;
      if (this.trace !== undefined) this.log(() => `deliver ${describeMessage(message)}`);
      if (message.type === 'InstallSnapshot') this.stats.snapshotsSent++;
      node.core.step(message);
      this.afterInput(node);
    }
    if (now % FULL_LOG_CHECK_INTERVAL_TICKS === 0) this.checker.checkLogMatchingFull();
    this.tick++;
  }

  /** Drives the node's Ready hand-off and checks invariants: the end of every event. */
  private afterInput(node: SimNode): void {
    this.stats.events++;
    node.drive(this.readyIo);
    this.checker.afterEvent();
  }

  // ---------------------------------------------------------------------------------------------
  // Clients

  private pickLeader(): SimNode | undefined {
    const leaders = this.nodes.filter((node) => node.core !== null && node.core.currentRole === 'leader');
    if (leaders.length === 0) return undefined;
    return leaders[this.random.nextInt(leaders.length)];
  }

  private propose(node: SimNode, commandId: number): boolean {
    const result = node.core!.propose(encodeCommand(commandId));
    if (result.ok) this.stats.proposalsAccepted++;
    this.log(() => `propose c${commandId} at n${node.id}: ${result.ok ? `index ${result.index} term ${result.term}` : result.reason}`);
    this.afterInput(node);
    return result.ok;
  }

  private read(node: SimNode): void {
    const readId = this.nextReadId++;
    const result = node.core!.readIndex(readId);
    if (result.ok) this.checker.onReadIssued(readId);
    this.log(() => `read r${readId} at n${node.id}: ${result.ok ? 'started' : result.reason}`);
    this.afterInput(node);
  }

  private compact(node: SimNode): void {
    const core = node.core;
    if (core === null || node.pendingCrash !== null) return;
    const stateMachine = node.stateMachine!;
    const index = stateMachine.appliedIndex;
    if (index < core.status().firstLogIndex) return;
    const result = core.compact(index, stateMachine.snapshotData());
    if (result.ok) this.stats.compactions++;
    this.log(() => `compact n${node.id} to ${index}: ${result.ok ? 'ok' : result.reason}`);
    this.afterInput(node);
  }

  // ---------------------------------------------------------------------------------------------
  // Faults

  private injectFault(): void {
    const up = this.nodes.filter((node) => node.core !== null);
    const down = this.nodes.filter((node) => node.core === null);
    const roll = this.random.nextInt(11);
    if (roll < 2 && up.length > 0) {
      const node = up[this.random.nextInt(up.length)]!;
      const points: (CrashPoint | 'now')[] = ['now', 'before_persist', 'after_persist', 'after_send'];
      const point = points[this.random.nextInt(points.length)]!;
      if (point === 'now') this.crash(node, 'now');
      else {
        node.pendingCrash = point;
        this.log(() => `n${node.id} will crash ${point.replace('_', ' ')} of its next Ready`);
      }
    } else if (roll < 5 && down.length > 0) {
      this.restart(down[this.random.nextInt(down.length)]!);
    } else if (roll < 6) {
      const sideA = this.voterIds.filter(() => this.random.nextInt(2) === 0);
      const sideB = this.voterIds.filter((id) => !sideA.includes(id));
      if (sideA.length === 0 || sideB.length === 0) return;
      this.network.partition(sideA, sideB);
      this.stats.partitions++;
      this.log(() => `partition {${sideA.join(',')}} | {${sideB.join(',')}}`);
    } else if (roll < 7) {
      const from = this.voterIds[this.random.nextInt(this.nodeCount)]!;
      const to = this.voterIds[this.random.nextInt(this.nodeCount)]!;
      if (from === to) return;
      this.network.blockLink(from, to);
      this.stats.partitions++;
      this.log(() => `block one-way ${from}->${to}`);
    } else if (roll < 8) {
      const isolated = this.voterIds[this.random.nextInt(this.nodeCount)]!;
      this.network.partition([isolated], this.voterIds.filter((id) => id !== isolated));
      this.stats.partitions++;
      this.log(() => `isolate n${isolated}`);
    } else {
      this.network.healPartitions();
      this.log(() => 'heal partitions');
    }
  }

  private crash(node: SimNode, point: CrashPoint | 'now'): void {
    this.stats.crashes++;
    this.log(() => `crash n${node.id} (${point})`);
    node.crash();
  }

  private startNode(node: SimNode): void {
    node.start(this.random.nextUint32());
    this.checker.afterRestart(node);
    this.afterInput(node);
  }

  private restart(node: SimNode): void {
    this.stats.restarts++;
    this.log(() => `restart n${node.id} from persisted term ${node.storage.hardState().term} commit ${node.storage.hardState().commitIndex} ` +
      `log [${node.storage.firstIndex()}, ${node.storage.lastIndex()}]`);
    this.startNode(node);
  }

  private healEverything(): void {
    this.network.healPartitions();
    this.network.faults = { lossRate: 0, duplicateRate: 0, delayTicksMax: this.network.faults.delayTicksMax, longDelayRate: 0 };
    for (const node of this.nodes) {
      node.pendingCrash = null;
      if (node.core === null) this.restart(node);
    }
    this.log(() => 'heal everything');
  }

  private countMarkerApplied(): number {
    if (this.markerAppliedIndex === 0) return 0;
    return this.nodes.filter((node) => node.stateMachine !== null && node.stateMachine.appliedIndex >= this.markerAppliedIndex).length;
  }

  // ---------------------------------------------------------------------------------------------
  // Tracing

  private log(line: () => string): void {
    if (this.trace !== undefined) this.trace(`t=${this.tick} ${line()}`);
  }

  private traceReady(node: SimNode): void {
    const status = node.core!.status();
    this.log(() => `n${node.id} ${status.role} term=${status.term} vote=${status.votedFor ?? '-'} leader=${status.leaderId ?? '-'} ` +
      `commit=${status.commitIndex} applied=${status.appliedIndex} log=[${status.firstLogIndex},${status.lastLogIndex}]`);
  }

  private describeRoles(): string {
    return this.nodes
      .map((node) => (node.core === null ? `n${node.id}:down` : `n${node.id}:${node.core.currentRole}@${node.core.currentTerm}`))
      .join(' ');
  }
}

export function describeMessage(message: RaftMessage): string {
  const head = `${message.from}->${message.to} ${message.type} term=${message.term}`;
  switch (message.type) {
    case 'PreVote':
    case 'Vote':
      return `${head} last=${message.lastLogIndex}/${message.lastLogTerm}`;
    case 'PreVoteResp':
    case 'VoteResp':
      return `${head} granted=${message.granted}`;
    case 'Append': {
      const entries = message.entries;
      const range = entries.length === 0 ? 'none' : `${entries[0]!.index}..${entries[entries.length - 1]!.index}`;
      return `${head} prev=${message.prevLogIndex}/${message.prevLogTerm} entries=${range} commit=${message.leaderCommit}`;
    }
    case 'AppendResp':
      return message.success
        ? `${head} ok match=${message.matchIndex}`
        : `${head} reject at=${message.rejectedIndex} hint=${message.hintIndex}/${message.hintTerm}`;
    case 'Heartbeat':
      return `${head} commit=${message.leaderCommit} round=${message.readRound}`;
    case 'HeartbeatResp':
      return `${head} round=${message.readRound}`;
    case 'InstallSnapshot':
      return `${head} snapshot=${message.snapshot.lastIncludedIndex}/${message.snapshot.lastIncludedTerm}`;
    case 'SnapshotResp':
      return `${head} match=${message.matchIndex}`;
  }
}
