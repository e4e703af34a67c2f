/**
 * A cluster driven by hand, for scenario tests after the Raft paper's figures: the test decides
 * which messages arrive, which are dropped, who ticks and who crashes. Every node runs the same
 * driver as the simulator, and the InvariantChecker runs after every event.
 */
import type { RaftLimits, RaftTestFaults } from '../../controller/raft/config.js';
import type { RaftNode } from '../../controller/raft/raft_node.js';
import type { MemoryStorage } from '../../controller/raft/storage.js';
import type { Entry, NodeId, RaftMessage, ReadState } from '../../controller/raft/types.js';
import { InvariantChecker } from './checker.js';
import { SIM_RAFT_LIMITS, SimNode } from './sim_node.js';
import type { ReadyIo } from './sim_node.js';
import { encodeCommand } from './state_machine.js';

export interface ScriptedClusterOptions {
  readonly nodeCount: number;
  readonly limits?: Partial<RaftLimits>;
  readonly testFaults?: RaftTestFaults;
  /** Fill a node's storage before it starts (an earlier history, as in the paper's figures). */
  readonly preload?: (id: NodeId, storage: MemoryStorage) => void;
  readonly seed?: number;
}

export type MessageFilter = (message: RaftMessage) => boolean;

export class ScriptedCluster {
  readonly nodes: SimNode[];
  readonly checker: InvariantChecker;
  /** Sent and not yet delivered or dropped, in send order. */
  pending: RaftMessage[] = [];
  readonly delivered: RaftMessage[] = [];
  readonly readsServed: (ReadState & { nodeId: NodeId })[] = [];
  private readonly readyIo: ReadyIo;
  private nextSeed: number;

  constructor(options: ScriptedClusterOptions) {
    const voterIds = Array.from({ length: options.nodeCount }, (_, k) => k + 1);
    const limits: RaftLimits = { ...SIM_RAFT_LIMITS, heartbeatTicks: 1, ...options.limits };
    this.nodes = voterIds.map((id) => new SimNode(id, voterIds, limits, options.testFaults));
    this.checker = new InvariantChecker(this.nodes);
    this.readyIo = {
      checker: this.checker,
      send: (message) => void this.pending.push(message),
      onReadServed: (node, read) => void this.readsServed.push({ nodeId: node.id, ...read }),
    };
    this.nextSeed = options.seed ?? 1;
    for (const node of this.nodes) {
      options.preload?.(node.id, node.storage);
      this.start(node);
    }
  }

  core(id: NodeId): RaftNode {
    const core = this.nodes[id - 1]!.core;
    if (core === null) throw new Error(`n${id} is down`);
    return core;
  }

  node(id: NodeId): SimNode {
    return this.nodes[id - 1]!;
  }

  /** Runs fn against a node's core, then its driver and the checker: one event. */
  act<T>(id: NodeId, fn: (core: RaftNode) => T): T {
    const result = fn(this.core(id));
    this.settle(id);
    return result;
  }

  tick(id: NodeId, times = 1): void {
    for (let k = 0; k < times; k++) this.act(id, (core) => core.tick());
  }

  /** Ticks id until predicate holds; throws after ticksMax. */
  tickUntil(id: NodeId, predicate: () => boolean, ticksMax = 100): void {
    for (let k = 0; k < ticksMax; k++) {
      if (predicate()) return;
      this.tick(id);
    }
    if (!predicate()) throw new Error(`condition not reached after ${ticksMax} ticks of n${id}`);
  }

  propose(id: NodeId, commandId: number): ReturnType<RaftNode['propose']> {
    return this.act(id, (core) => core.propose(encodeCommand(commandId)));
  }

  readIndex(id: NodeId, readId: number): ReturnType<RaftNode['readIndex']> {
    return this.act(id, (core) => {
      const result = core.readIndex(readId);
      if (result.ok) this.checker.onReadIssued(readId);
      return result;
    });
  }

  /** Delivers pending messages that pass the filter (and those they cause) until none are left. */
  deliver(filter: MessageFilter = () => true, messagesMax = 10_000): number {
    let count = 0;
    for (;;) {
      const position = this.pending.findIndex((message) => filter(message) && this.nodes[message.to - 1]!.isUp);
      if (position < 0) return count;
      if (++count > messagesMax) throw new Error(`more than ${messagesMax} messages: no quiescence`);
      const [message] = this.pending.splice(position, 1) as [RaftMessage];
      this.delivered.push(message);
      this.act(message.to, (core) => core.step(message));
    }
  }

  /** Drops pending messages that pass the filter. */
  drop(filter: MessageFilter): number {
    const before = this.pending.length;
    this.pending = this.pending.filter((message) => !filter(message));
    return before - this.pending.length;
  }

  crash(id: NodeId): void {
    this.node(id).crash();
    this.drop((message) => message.to === id);
  }

  restart(id: NodeId): void {
    this.start(this.node(id));
  }

  /** Times id out and delivers everything among `reachable` until it leads. */
  elect(id: NodeId, reachable: NodeId[] = this.nodes.map((node) => node.id)): void {
    this.tickUntil(id, () => this.core(id).currentRole === 'precandidate', 100);
    this.deliver(among(...reachable));
    if (this.core(id).currentRole !== 'leader') throw new Error(`n${id} did not win: ${this.core(id).currentRole}`);
  }

  /** One heartbeat round from the leader, delivered among `reachable`. */
  heartbeat(leaderId: NodeId, reachable: NodeId[] = this.nodes.map((node) => node.id)): void {
    this.tick(leaderId);
    this.deliver(among(...reachable));
  }

  leaders(): NodeId[] {
    return this.nodes.filter((node) => node.core?.currentRole === 'leader').map((node) => node.id);
  }

  private start(node: SimNode): void {
    node.start(this.nextSeed++);
    this.checker.afterRestart(node);
    this.settle(node.id);
  }

  private settle(id: NodeId): void {
    this.node(id).drive(this.readyIo);
    this.checker.afterEvent();
  }
}

/** Messages between nodes that are both in `ids`. */
export function among(...ids: NodeId[]): MessageFilter {
  return (message) => ids.includes(message.from) && ids.includes(message.to);
}

export function commandEntry(index: number, term: number, commandId: number): Entry {
  return { index, term, type: 'normal', data: encodeCommand(commandId) };
}
