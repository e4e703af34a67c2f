/**
 * Incremental fetch sessions (Kafka's KIP-227), leader side. A follower's fetcher carries every
 * partition the two brokers share; without a session each long poll would name them all and the
 * leader would re-read them all, so a fetch would cost as much as the partitions shared, not as
 * much as those that changed. With a session the leader keeps each partition's fetch state, a
 * request names only the partitions whose state changed, and a pass visits only the `pending`
 * targets: those named, those whose partition told the session of news (Partition.wakeFetchWaiters),
 * and those not settled (replica-manager.ts). Wire format: Fetch v1 (protocol/apis/fetch.ts).
 *
 * The rules of the wire (protocol/apis/fetch.ts):
 * - epoch -1 (or absent): a full fetch without a session; a given session id is closed.
 * - epoch 0: a full fetch that opens a session (closing a given one first). When no slot is free
 *   the answer carries session id 0 and the fetcher goes on with full fetches.
 * - epoch n > 0: an incremental fetch of session `sessionId`, whose expected epoch must be n.
 *   Unknown id: FETCH_SESSION_ID_NOT_FOUND. Other epoch, or a request of the session still
 *   waiting: INVALID_FETCH_SESSION_EPOCH. Either way the fetcher opens a new session.
 * A session belongs to the connection that opened it: another connection's request cannot use or
 * close it, and it is dropped when that connection closes. Only follower fetches get sessions for
 * now; a consumer asking for one is answered as if no slot were free (session id 0), which the
 * protocol allows.
 */
import type { FetchRequest } from '../../protocol/apis/fetch.js';

/** One partition's fetch state, as the last request that named it left it. */
export interface FetchTarget {
  readonly topic: string;
  readonly partition: number;
  /** `${topic}-${partition}`, the replica manager's key. */
  readonly key: string;
  currentLeaderEpoch: number;
  fetchOffset: number;
  lastFetchedEpoch: number;
  logStartOffset: number;
  partitionMaxBytes: number;
  minOffset: number | undefined;
  /** Named by the request being served: read in full on its first pass. */
  fresh: boolean;
  /** The last answer about it had no error and no divergence (a pass may skip it while quiet). */
  settled: boolean;
  /** The session holding it; undefined for the targets of a fetch without a session. */
  session?: FetchSession;
  /** The partition it listens to (for appends, high-watermark moves, leadership changes), if any. */
  watched?: WatchedPartition;
  /**
   * The leader state this target's fetch offset was last reported to (LeaderState.onFollowerFetch).
   * A target first answered with an error, then served on a later pass of the same request, is
   * reported then: nothing else would report it while it stays quiet.
   */
  reportedTo?: object;
}

/** A partition a session's target listens to: the replica manager's Partition. */
export interface WatchedPartition {
  unwatch(target: FetchTarget): void;
}

export class FetchSession {
  readonly targets = new Map<string, FetchTarget>();
  /**
   * The targets the next pass must look at: named by a request, told of news by their partition,
   * or not settled. The others are quiet and cost nothing, so a fetch costs as much as what
   * changed, not as much as the partitions in the session.
   */
  readonly pending = new Set<FetchTarget>();
  /** The epoch the next incremental request must carry. */
  epoch = 1;
  /** A request of this session is being served (parked in a long poll, say). */
  busy = false;
  /** When the last request of this session arrived (the replica manager's monotonic clock). */
  lastRequestMs = 0;
  /** Wakes the session's parked fetch, if one is parked. */
  wake: (() => void) | undefined;

  constructor(
    readonly id: number,
    readonly replicaId: number,
    readonly connectionId: number,
  ) {}

  /** The target's partition has news (records, a high watermark, a leadership change). */
  notify(target: FetchTarget): void {
    this.pending.add(target);
    this.wake?.();
  }

  add(target: FetchTarget): void {
    // A request naming a partition twice: the later entry replaces the earlier one everywhere.
    if (this.targets.get(target.key) !== undefined) this.forget(target.key);
    target.session = this;
    this.targets.set(target.key, target);
    this.pending.add(target);
  }

  forget(key: string): void {
    const target = this.targets.get(key);
    if (target === undefined) return;
    this.targets.delete(key);
    this.pending.delete(target);
    target.watched?.unwatch(target);
  }

  /** The session leaves the cache: its targets stop listening. */
  release(): void {
    for (const t of this.targets.values()) t.watched?.unwatch(t);
    this.pending.clear();
  }

  /** Partitions with data go to the back, so a small maxBytes cannot starve the later ones. */
  moveToBack(target: FetchTarget): void {
    this.targets.delete(target.key);
    this.targets.set(target.key, target);
    // Passes visit `pending` in its order: that is the order that shares out maxBytes.
    if (this.pending.delete(target)) this.pending.add(target);
  }
}

export type SessionOutcome =
  | { readonly kind: 'none'; readonly targets: FetchTarget[] }
  | { readonly kind: 'session'; readonly session: FetchSession }
  | { readonly kind: 'error'; readonly code: 'FETCH_SESSION_ID_NOT_FOUND' | 'INVALID_FETCH_SESSION_EPOCH' | 'INVALID_REQUEST'; readonly message: string };

const INT32_MAX = 0x7fffffff;

export function nextSessionEpoch(epoch: number): number {
  return epoch >= INT32_MAX ? 1 : epoch + 1;
}

/** The request's partitions as fetch targets (all fresh). */
export function targetsOf(request: FetchRequest): FetchTarget[] {
  const out: FetchTarget[] = [];
  for (const t of request.topics) {
    for (const p of t.partitions) {
      out.push({
        topic: t.topic, partition: p.partition, key: `${t.topic}-${p.partition}`, currentLeaderEpoch: p.currentLeaderEpoch, fetchOffset: p.fetchOffset,
        lastFetchedEpoch: p.lastFetchedEpoch, logStartOffset: p.logStartOffset, partitionMaxBytes: p.partitionMaxBytes, minOffset: p.minOffset, fresh: true, settled: false,
      });
    }
  }
  return out;
}

export interface FetchSessionCacheOptions {
  /** Sessions held at once (max.incremental.fetch.session.cache.slots). */
  slots: number;
  /** Partitions one session may hold. */
  partitionsMax: number;
}

export class FetchSessionCache {
  /** In least-recently-used order: a session is moved to the back whenever a request uses it. */
  private readonly sessions = new Map<number, FetchSession>();
  private readonly byConnection = new Map<number, Set<FetchSession>>();
  private nextId = 1 + Math.floor(Math.random() * 0x3fffffff);

  constructor(private readonly options: FetchSessionCacheOptions & { onEvict?: () => void }) {}

  get size(): number {
    return this.sessions.size;
  }

  /**
   * Resolve the request's session fields. `onConnectionClosed` registers the cleanup the first
   * time a connection opens a session (the caller wires it to the connection's abort signal).
   */
  open(request: FetchRequest, connectionId: number, onConnectionClosed: (drop: () => void) => void): SessionOutcome {
    const sessionId = request.sessionId ?? 0;
    const epoch = request.sessionEpoch ?? -1;
    if (epoch <= 0) {
      if (sessionId !== 0) {
        const old = this.sessions.get(sessionId);
        if (old !== undefined && old.connectionId === connectionId) this.remove(old);
      }
      if (epoch === 0 && request.replicaId >= 0) {
        // A fetcher starting over on this connection may not have learned the id of a session it
        // opened (its answer was lost): that replica's other idle sessions here are orphans.
        for (const s of this.byConnection.get(connectionId) ?? []) if (s.replicaId === request.replicaId && !s.busy) this.remove(s);
      }
      const targets = targetsOf(request);
      if (epoch < 0 || request.replicaId < 0) return { kind: 'none', targets };
      if (targets.length > this.options.partitionsMax) return { kind: 'none', targets };
      const session = this.create(request.replicaId, connectionId, onConnectionClosed);
      if (session === undefined) return { kind: 'none', targets };
      for (const t of targets) session.add(t);
      return { kind: 'session', session };
    }
    const session = this.sessions.get(sessionId);
    if (session === undefined || session.connectionId !== connectionId || session.replicaId !== request.replicaId) {
      return { kind: 'error', code: 'FETCH_SESSION_ID_NOT_FOUND', message: `fetch session ${sessionId} is not known on this connection` };
    }
    if (session.busy || epoch !== session.epoch) {
      const why = session.busy ? 'another request of the session is still being served' : `expected epoch ${session.epoch}, got ${epoch}`;
      return { kind: 'error', code: 'INVALID_FETCH_SESSION_EPOCH', message: `fetch session ${sessionId}: ${why}` };
    }
    // Upserts, then forgets (Kafka's order: a partition in both lists leaves the session).
    for (const t of targetsOf(request)) {
      const had = session.targets.get(t.key);
      if (had === undefined) session.add(t);
      else {
        had.currentLeaderEpoch = t.currentLeaderEpoch;
        had.fetchOffset = t.fetchOffset;
        had.lastFetchedEpoch = t.lastFetchedEpoch;
        had.logStartOffset = t.logStartOffset;
        had.partitionMaxBytes = t.partitionMaxBytes;
        had.minOffset = t.minOffset;
        had.fresh = true;
        had.settled = false;
        delete had.reportedTo;
        session.pending.add(had);
      }
    }
    for (const t of request.forgottenTopics ?? []) {
      for (const p of t.partitions) session.forget(`${t.topic}-${p}`);
    }
    if (session.targets.size > this.options.partitionsMax) {
      this.remove(session);
      return { kind: 'error', code: 'INVALID_REQUEST', message: `a fetch session holds at most ${this.options.partitionsMax} partitions` };
    }
    session.epoch = nextSessionEpoch(epoch);
    this.sessions.delete(session.id);
    this.sessions.set(session.id, session);
    return { kind: 'session', session };
  }

  /** Drop every session of a connection (it closed). */
  dropConnection(connectionId: number): void {
    const owned = this.byConnection.get(connectionId);
    if (owned === undefined) return;
    for (const s of owned) {
      this.sessions.delete(s.id);
      s.release();
    }
    this.byConnection.delete(connectionId);
  }

  clear(): void {
    for (const s of this.sessions.values()) s.release();
    this.sessions.clear();
    this.byConnection.clear();
  }

  private create(replicaId: number, connectionId: number, onConnectionClosed: (drop: () => void) => void): FetchSession | undefined {
    if (this.sessions.size >= this.options.slots && !this.evictOne()) return undefined;
    let id = this.nextId;
    while (id === 0 || this.sessions.has(id)) id = id >= INT32_MAX ? 1 : id + 1;
    this.nextId = id >= INT32_MAX ? 1 : id + 1;
    const session = new FetchSession(id, replicaId, connectionId);
    this.sessions.set(id, session);
    let owned = this.byConnection.get(connectionId);
    const first = owned === undefined;
    if (owned === undefined) this.byConnection.set(connectionId, (owned = new Set()));
    owned.add(session);
    // After the add: a connection already closed drops the session at once.
    if (first) onConnectionClosed(() => this.dropConnection(connectionId));
    return session;
  }

  /** The least recently used session not being served; false when every one is busy. */
  private evictOne(): boolean {
    for (const s of this.sessions.values()) {
      if (s.busy) continue;
      this.remove(s);
      this.options.onEvict?.();
      return true;
    }
    return false;
  }

  private remove(session: FetchSession): void {
    if (this.sessions.get(session.id) === session) this.sessions.delete(session.id);
    session.release();
    // The connection's (possibly empty) set stays until it closes: its close listener is registered once.
    this.byConnection.get(session.connectionId)?.delete(session);
  }
}
