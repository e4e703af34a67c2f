/**
 * A controller's durable state in one SQLite file (better-sqlite3, WAL, synchronous=FULL):
 *
 * - Raft's hard state, log and snapshot (the RaftStorage the core reads, and the writes a Ready
 *   asks for, in one transaction per Ready: persist first, then send);
 * - the metadata state machine materialised as tables an operator can read with the sqlite3
 *   shell (`brokers`, `topics`, `partitions`, `failover_log`, `broker_liveness`), changed in the
 *   same transaction as `metadata_meta.applied_index`, so after a crash the tables and the index
 *   agree and replay resumes exactly after it.
 *
 * `broker_liveness` (last heartbeat, lease expiry) is written by the active controller only and
 * is not replicated: liveness is the active controller's view, as in Kafka's KRaft.
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { assert } from '../../common/assert.js';
import type { Entry, HardState, Snapshot } from '../raft/types.js';
import { EMPTY_HARD_STATE, EMPTY_SNAPSHOT } from '../raft/types.js';
import type { RaftStorage, RaftStorageWriter } from '../raft/storage.js';
import type { BrokerImage, FailoverEntry, MetadataImage, PartitionImage, TopicImage } from '../../protocol/metadata/image.js';
import { EMPTY_IMAGE, FAILOVER_LOG_ENTRIES_MAX } from '../../protocol/metadata/image.js';
import type { MetadataRecord } from '../../protocol/metadata/records.js';

type Db = Database.Database;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS raft_hard_state (
  id INTEGER PRIMARY KEY CHECK (id = 1), term INTEGER NOT NULL, voted_for INTEGER, commit_index INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS raft_log (
  idx INTEGER PRIMARY KEY, term INTEGER NOT NULL, type TEXT NOT NULL, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS raft_snapshot (
  id INTEGER PRIMARY KEY CHECK (id = 1), last_index INTEGER NOT NULL, last_term INTEGER NOT NULL, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS metadata_meta (
  id INTEGER PRIMARY KEY CHECK (id = 1), applied_index INTEGER NOT NULL, next_producer_id INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS brokers (
  broker_id INTEGER PRIMARY KEY, incarnation_id TEXT NOT NULL, address TEXT NOT NULL,
  broker_epoch INTEGER NOT NULL, fenced INTEGER NOT NULL, registered_at_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS topics (
  name TEXT PRIMARY KEY, topic_id TEXT NOT NULL, configs TEXT NOT NULL, partitions INTEGER NOT NULL, created_at_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS partitions (
  topic TEXT NOT NULL, partition INTEGER NOT NULL, replicas TEXT NOT NULL, isr TEXT NOT NULL,
  leader INTEGER NOT NULL, leader_epoch INTEGER NOT NULL, partition_epoch INTEGER NOT NULL,
  PRIMARY KEY (topic, partition));
CREATE TABLE IF NOT EXISTS failover_log (
  idx INTEGER NOT NULL, time_ms INTEGER NOT NULL, topic TEXT NOT NULL, partition INTEGER NOT NULL,
  old_leader INTEGER NOT NULL, new_leader INTEGER NOT NULL, leader_epoch INTEGER NOT NULL,
  trigger TEXT NOT NULL, lag_at_promotion INTEGER NOT NULL, records_lost INTEGER NOT NULL,
  PRIMARY KEY (idx, topic, partition));
CREATE TABLE IF NOT EXISTS broker_liveness (
  broker_id INTEGER PRIMARY KEY, last_heartbeat_ms INTEGER NOT NULL, lease_expiry_ms INTEGER NOT NULL);
`;

interface LogRow {
  idx: number;
  term: number;
  type: string;
  data: Buffer;
}

export class ControllerStore implements RaftStorage, RaftStorageWriter {
  readonly db: Db;
  private cachedHardState: HardState;
  private cachedSnapshot: Snapshot;
  private cachedLastIndex: number;
  private readonly stmts;

  constructor(dataDir: string) {
    mkdirSync(dataDir, { recursive: true });
    this.db = new Database(join(dataDir, 'controller.db'));
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.exec(SCHEMA);
    this.stmts = {
      getHardState: this.db.prepare('SELECT term, voted_for, commit_index FROM raft_hard_state WHERE id = 1'),
      setHardState: this.db.prepare('INSERT OR REPLACE INTO raft_hard_state (id, term, voted_for, commit_index) VALUES (1, ?, ?, ?)'),
      getSnapshot: this.db.prepare('SELECT last_index, last_term, data FROM raft_snapshot WHERE id = 1'),
      setSnapshot: this.db.prepare('INSERT OR REPLACE INTO raft_snapshot (id, last_index, last_term, data) VALUES (1, ?, ?, ?)'),
      lastIndex: this.db.prepare('SELECT MAX(idx) AS idx FROM raft_log'),
      entries: this.db.prepare('SELECT idx, term, type, data FROM raft_log WHERE idx >= ? AND idx < ? ORDER BY idx'),
      term: this.db.prepare('SELECT term FROM raft_log WHERE idx = ?'),
      deleteFrom: this.db.prepare('DELETE FROM raft_log WHERE idx >= ?'),
      deleteUpTo: this.db.prepare('DELETE FROM raft_log WHERE idx <= ?'),
      deleteAll: this.db.prepare('DELETE FROM raft_log'),
      insertEntry: this.db.prepare('INSERT INTO raft_log (idx, term, type, data) VALUES (?, ?, ?, ?)'),
      setMeta: this.db.prepare('INSERT OR REPLACE INTO metadata_meta (id, applied_index, next_producer_id) VALUES (1, ?, ?)'),
      getMeta: this.db.prepare('SELECT applied_index, next_producer_id FROM metadata_meta WHERE id = 1'),
      upsertBroker: this.db.prepare('INSERT OR REPLACE INTO brokers VALUES (?, ?, ?, ?, ?, ?)'),
      upsertTopic: this.db.prepare('INSERT OR REPLACE INTO topics VALUES (?, ?, ?, ?, ?)'),
      deleteTopic: this.db.prepare('DELETE FROM topics WHERE name = ?'),
      deletePartitions: this.db.prepare('DELETE FROM partitions WHERE topic = ?'),
      upsertPartition: this.db.prepare('INSERT OR REPLACE INTO partitions VALUES (?, ?, ?, ?, ?, ?, ?)'),
      insertFailover: this.db.prepare('INSERT OR REPLACE INTO failover_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)'),
      upsertLiveness: this.db.prepare('INSERT OR REPLACE INTO broker_liveness VALUES (?, ?, ?)'),
    };
    const hs = this.stmts.getHardState.get() as { term: number; voted_for: number | null; commit_index: number } | undefined;
    this.cachedHardState = hs === undefined ? EMPTY_HARD_STATE : { term: hs.term, votedFor: hs.voted_for, commitIndex: hs.commit_index };
    const snap = this.stmts.getSnapshot.get() as { last_index: number; last_term: number; data: Buffer } | undefined;
    this.cachedSnapshot = snap === undefined ? EMPTY_SNAPSHOT : { lastIncludedIndex: snap.last_index, lastIncludedTerm: snap.last_term, data: new Uint8Array(snap.data) };
    const last = (this.stmts.lastIndex.get() as { idx: number | null }).idx;
    this.cachedLastIndex = last ?? this.cachedSnapshot.lastIncludedIndex;
  }

  // --- RaftStorage -----------------------------------------------------------------------------

  hardState(): HardState {
    return this.cachedHardState;
  }

  firstIndex(): number {
    return this.cachedSnapshot.lastIncludedIndex + 1;
  }

  lastIndex(): number {
    return this.cachedLastIndex;
  }

  snapshot(): Snapshot {
    return this.cachedSnapshot;
  }

  term(index: number): number {
    if (index === this.cachedSnapshot.lastIncludedIndex) return this.cachedSnapshot.lastIncludedTerm;
    const row = this.stmts.term.get(index) as { term: number } | undefined;
    assert(row !== undefined, `term(${index}) outside [${this.cachedSnapshot.lastIncludedIndex}, ${this.cachedLastIndex}]`);
    return row.term;
  }

  entries(lo: number, hi: number): Entry[] {
    assert(lo >= this.firstIndex() && lo <= hi && hi <= this.cachedLastIndex + 1, `entries(${lo}, ${hi}) outside the log`);
    const rows = this.stmts.entries.all(lo, hi) as LogRow[];
    return rows.map((r) => ({ index: r.idx, term: r.term, type: r.type as Entry['type'], data: new Uint8Array(r.data.buffer, r.data.byteOffset, r.data.byteLength) }));
  }

  // --- RaftStorageWriter (each call is its own transaction; persistReady groups them) ----------

  setHardState(hardState: HardState): void {
    this.stmts.setHardState.run(hardState.term, hardState.votedFor, hardState.commitIndex);
    this.cachedHardState = hardState;
  }

  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const first = entries[0]!.index;
    assert(first >= this.firstIndex() && first <= this.cachedLastIndex + 1, `append at ${first} would leave a gap in [${this.firstIndex()}, ${this.cachedLastIndex}]`);
    this.stmts.deleteFrom.run(first);
    for (const e of entries) this.stmts.insertEntry.run(e.index, e.term, e.type, Buffer.from(e.data.buffer, e.data.byteOffset, e.data.byteLength));
    this.cachedLastIndex = entries[entries.length - 1]!.index;
  }

  applySnapshot(snapshot: Snapshot): void {
    assert(snapshot.lastIncludedIndex >= this.cachedSnapshot.lastIncludedIndex, 'snapshot older than the stored one');
    this.stmts.deleteAll.run();
    this.writeSnapshot(snapshot);
    this.cachedLastIndex = snapshot.lastIncludedIndex;
  }

  compact(snapshot: Snapshot): void {
    if (snapshot.lastIncludedIndex <= this.cachedSnapshot.lastIncludedIndex) return;
    assert(snapshot.lastIncludedIndex <= this.cachedLastIndex, 'compact beyond the last index');
    this.stmts.deleteUpTo.run(snapshot.lastIncludedIndex);
    this.writeSnapshot(snapshot);
  }

  private writeSnapshot(snapshot: Snapshot): void {
    this.stmts.setSnapshot.run(snapshot.lastIncludedIndex, snapshot.lastIncludedTerm, Buffer.from(snapshot.data.buffer, snapshot.data.byteOffset, snapshot.data.byteLength));
    this.cachedSnapshot = snapshot;
  }

  /** Persist everything a Ready asks for in one transaction (one fsync). */
  persist(write: { hardState?: HardState | undefined; entries: readonly Entry[]; snapshot?: Snapshot | undefined; compaction?: Snapshot | undefined }): void {
    const run = this.db.transaction(() => {
      if (write.snapshot !== undefined) this.applySnapshot(write.snapshot);
      if (write.compaction !== undefined) this.compact(write.compaction);
      this.append(write.entries);
      if (write.hardState !== undefined) this.setHardState(write.hardState);
    });
    run();
  }

  // --- The materialised metadata ------------------------------------------------------------

  /**
   * Write what `record` changed (image `after`, at `index`) and the applied index. Called inside
   * `applyInTransaction` so a batch of committed entries lands in one transaction.
   */
  materialize(record: MetadataRecord | null, after: MetadataImage, index: number): void {
    if (record !== null) {
      switch (record.type) {
        case 'RegisterBroker':
        case 'FenceBroker':
        case 'UnfenceBroker': {
          const b = after.brokers.get(record.brokerId);
          if (b !== undefined) this.writeBroker(b);
          break;
        }
        case 'CreateTopic':
        case 'AlterTopicConfigs': {
          const t = after.topics.get(record.name);
          if (t !== undefined) {
            this.writeTopic(t);
            if (record.type === 'CreateTopic') for (const p of t.partitions) this.writePartition(p);
          }
          break;
        }
        case 'DeleteTopic':
          this.stmts.deleteTopic.run(record.name);
          this.stmts.deletePartitions.run(record.name);
          break;
        case 'ChangePartition': {
          const p = after.topics.get(record.topic)?.partitions[record.partition];
          if (p !== undefined) this.writePartition(p);
          break;
        }
        case 'AllocateProducerIds':
        case 'Noop':
          break;
      }
      // Failover entries made by this record carry its index.
      for (let i = after.failovers.length - 1; i >= 0 && after.failovers[i]!.index === index; i--) this.writeFailover(after.failovers[i]!);
    }
    this.stmts.setMeta.run(index, after.nextProducerId);
  }

  /** Run `fn` (which calls materialize) in one transaction. */
  applyInTransaction(fn: () => void): void {
    this.db.transaction(fn)();
  }

  /** Replace all metadata tables with `image` (after installing a snapshot). */
  materializeWhole(image: MetadataImage): void {
    this.db.transaction(() => {
      for (const table of ['brokers', 'topics', 'partitions', 'failover_log']) this.db.exec(`DELETE FROM ${table}`);
      for (const b of image.brokers.values()) this.writeBroker(b);
      for (const t of image.topics.values()) {
        this.writeTopic(t);
        for (const p of t.partitions) this.writePartition(p);
      }
      for (const f of image.failovers) this.writeFailover(f);
      this.stmts.setMeta.run(image.appliedIndex, image.nextProducerId);
    })();
  }

  /** The image the tables hold (what was applied before a restart). */
  loadImage(): MetadataImage {
    const meta = this.stmts.getMeta.get() as { applied_index: number; next_producer_id: number } | undefined;
    if (meta === undefined) return EMPTY_IMAGE;
    const brokers = new Map<number, BrokerImage>();
    for (const r of this.db.prepare('SELECT * FROM brokers').all() as Array<Record<string, number | string>>) {
      brokers.set(r.broker_id as number, {
        brokerId: r.broker_id as number, incarnationId: r.incarnation_id as string, address: r.address as string,
        brokerEpoch: r.broker_epoch as number, fenced: r.fenced === 1, registeredAtMs: r.registered_at_ms as number,
      });
    }
    const partitionsByTopic = new Map<string, PartitionImage[]>();
    for (const r of this.db.prepare('SELECT * FROM partitions ORDER BY topic, partition').all() as Array<Record<string, number | string>>) {
      const list = partitionsByTopic.get(r.topic as string) ?? [];
      list.push({
        topic: r.topic as string, partition: r.partition as number, replicas: JSON.parse(r.replicas as string) as number[],
        isr: JSON.parse(r.isr as string) as number[], leader: r.leader as number, leaderEpoch: r.leader_epoch as number,
        partitionEpoch: r.partition_epoch as number,
      });
      partitionsByTopic.set(r.topic as string, list);
    }
    const topics = new Map<string, TopicImage>();
    for (const r of this.db.prepare('SELECT * FROM topics').all() as Array<Record<string, number | string>>) {
      const name = r.name as string;
      topics.set(name, {
        name, topicId: r.topic_id as string, configs: JSON.parse(r.configs as string) as Record<string, string>,
        partitions: partitionsByTopic.get(name) ?? [], createdAtMs: r.created_at_ms as number,
      });
    }
    const failovers = (this.db.prepare('SELECT * FROM failover_log ORDER BY idx, topic, partition').all() as Array<Record<string, number | string>>)
      .slice(-FAILOVER_LOG_ENTRIES_MAX)
      .map((r): FailoverEntry => ({
        index: r.idx as number, timeMs: r.time_ms as number, topic: r.topic as string, partition: r.partition as number,
        oldLeader: r.old_leader as number, newLeader: r.new_leader as number, leaderEpoch: r.leader_epoch as number,
        trigger: r.trigger as FailoverEntry['trigger'], lagAtPromotion: r.lag_at_promotion as number, recordsLost: r.records_lost as number,
      }));
    return { appliedIndex: meta.applied_index, brokers, topics, nextProducerId: meta.next_producer_id, failovers };
  }

  /**
   * The active controller's liveness view, for operators (not replicated), written without an
   * fsync: the commit runs at synchronous=NORMAL (in WAL mode: no sync at commit; checkpoints
   * still sync), then the connection is back at FULL for Raft. Nothing depends on these rows
   * surviving a crash, and a synchronous commit on the event loop waits for the disk: on the
   * shared disk of a local cluster under a produce load, a 100-byte fdatasync took up to 561 ms
   * (p99 114 ms), three of them a second held heartbeat answers back, and every broker's 900 ms
   * lease expired at once (all leaders stepped down; a ~470 ms stall of acks=all).
   */
  recordLiveness(brokerId: number, lastHeartbeatMs: number, leaseExpiryMs: number): void {
    this.db.pragma('synchronous = NORMAL');
    try {
      this.stmts.upsertLiveness.run(brokerId, lastHeartbeatMs, leaseExpiryMs);
    } finally {
      this.db.pragma('synchronous = FULL');
    }
  }

  /** The connection's synchronous level (2 = FULL), for tests. */
  get synchronousLevel(): number {
    return this.db.pragma('synchronous', { simple: true }) as number;
  }

  close(): void {
    this.db.close();
  }

  private writeBroker(b: BrokerImage): void {
    this.stmts.upsertBroker.run(b.brokerId, b.incarnationId, b.address, b.brokerEpoch, b.fenced ? 1 : 0, b.registeredAtMs);
  }

  private writeTopic(t: TopicImage): void {
    this.stmts.upsertTopic.run(t.name, t.topicId, JSON.stringify(t.configs), t.partitions.length, t.createdAtMs);
  }

  private writePartition(p: PartitionImage): void {
    this.stmts.upsertPartition.run(p.topic, p.partition, JSON.stringify(p.replicas), JSON.stringify(p.isr), p.leader, p.leaderEpoch, p.partitionEpoch);
  }

  private writeFailover(f: FailoverEntry): void {
    this.stmts.insertFailover.run(f.index, f.timeMs, f.topic, f.partition, f.oldLeader, f.newLeader, f.leaderEpoch, f.trigger, f.lagAtPromotion, f.recordsLost);
  }
}
