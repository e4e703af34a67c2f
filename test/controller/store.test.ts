import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { ControllerStore } from '../../controller/storage/controller-store.js';
import { EMPTY_IMAGE, applyRecord, type MetadataImage } from '../../protocol/metadata/image.js';
import type { MetadataRecord } from '../../protocol/metadata/records.js';
import { decodeMetadataRecord, encodeMetadataRecord } from '../../protocol/metadata/codec.js';
import type { Entry } from '../../controller/raft/types.js';

function withDir(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'trib-store-'));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const entry = (index: number, term: number, text = `e${index}`): Entry => ({ index, term, type: 'normal', data: new TextEncoder().encode(text) });

test('raft hard state, entries and snapshot survive a reopen', () => {
  withDir((dir) => {
    const a = new ControllerStore(dir);
    a.persist({ hardState: { term: 3, votedFor: 2, commitIndex: 4 }, entries: [1, 2, 3, 4, 5].map((i) => entry(i, i < 3 ? 1 : 3)) });
    // A conflicting append replaces the suffix from its first index.
    a.persist({ entries: [entry(4, 4, 'new4')] });
    assert.equal(a.lastIndex(), 4);
    a.close();
    const b = new ControllerStore(dir);
    assert.deepEqual(b.hardState(), { term: 3, votedFor: 2, commitIndex: 4 });
    assert.equal(b.firstIndex(), 1);
    assert.equal(b.lastIndex(), 4);
    assert.equal(b.term(4), 4);
    assert.equal(new TextDecoder().decode(b.entries(4, 5)[0]!.data), 'new4');
    b.persist({ entries: [], compaction: { lastIncludedIndex: 2, lastIncludedTerm: 1, data: new Uint8Array([9]) } });
    assert.equal(b.firstIndex(), 3);
    assert.equal(b.term(2), 1);
    assert.deepEqual(b.entries(3, 5).map((e) => e.index), [3, 4]);
    b.close();
    const c = new ControllerStore(dir);
    assert.equal(c.firstIndex(), 3);
    assert.equal(c.lastIndex(), 4);
    assert.deepEqual([...c.snapshot().data], [9]);
    c.persist({ entries: [], snapshot: { lastIncludedIndex: 10, lastIncludedTerm: 5, data: new Uint8Array([1, 2]) } });
    assert.equal(c.firstIndex(), 11);
    assert.equal(c.lastIndex(), 10);
    assert.equal(c.term(10), 5);
    c.close();
  });
});

test('materialized tables load back into the same image, failover log included', () => {
  withDir((dir) => {
    const store = new ControllerStore(dir);
    const records: MetadataRecord[] = [
      { type: 'RegisterBroker', brokerId: 1, incarnationId: 'a', address: 'ws://127.0.0.1:1', timeMs: 10 },
      { type: 'RegisterBroker', brokerId: 2, incarnationId: 'b', address: 'ws://127.0.0.1:2', timeMs: 11 },
      { type: 'UnfenceBroker', brokerId: 1, brokerEpoch: 1, timeMs: 12 },
      { type: 'UnfenceBroker', brokerId: 2, brokerEpoch: 2, timeMs: 12 },
      { type: 'CreateTopic', name: 'orders', topicId: 't1', configs: { 'min.insync.replicas': '2' }, assignments: [[1, 2], [2, 1]], leaders: [1, 2], isrs: [[1, 2], [2, 1]], timeMs: 13 },
      { type: 'Noop' },
      { type: 'ChangePartition', topic: 'orders', partition: 0, leader: 2, isr: [2], trigger: 'fenced', lagAtPromotion: 3, timeMs: 14 },
      { type: 'FenceBroker', brokerId: 1, brokerEpoch: 1, reason: 'session_timeout', timeMs: 14 },
      { type: 'AlterTopicConfigs', name: 'orders', configs: { 'retention.ms': '1000', 'min.insync.replicas': null }, timeMs: 15 },
      { type: 'AllocateProducerIds', brokerId: 2, firstProducerId: 1, count: 1000, timeMs: 16 },
      { type: 'CreateTopic', name: 'gone', topicId: 't2', configs: {}, assignments: [[1]], leaders: [1], isrs: [[1]], timeMs: 17 },
      { type: 'DeleteTopic', name: 'gone', timeMs: 18 },
    ];
    let image: MetadataImage = EMPTY_IMAGE;
    records.forEach((record, i) => {
      // Records travel as bytes in Raft entries; go through the codec as the driver will.
      const decoded = decodeMetadataRecord(encodeMetadataRecord(record));
      image = applyRecord(image, decoded, i + 1);
      store.applyInTransaction(() => store.materialize(decoded, image, i + 1));
    });
    store.close();
    const reopened = new ControllerStore(dir);
    const loaded = reopened.loadImage();
    assert.equal(loaded.appliedIndex, records.length);
    assert.deepEqual(loaded, image);
    assert.equal(loaded.failovers.length, 4); // created x2, fenced, created (gone)
    assert.equal(loaded.failovers.at(-1)!.trigger, 'created');
    const row = reopened.db.prepare('SELECT leader, isr, leader_epoch FROM partitions WHERE topic = ? AND partition = 0').get('orders');
    assert.deepEqual(row, { leader: 2, isr: '[2]', leader_epoch: 1 });
    reopened.close();
  });
});

test('a fresh store loads the empty image', () => {
  withDir((dir) => {
    const store = new ControllerStore(dir);
    assert.deepEqual(store.loadImage(), EMPTY_IMAGE);
    store.close();
  });
});

test('liveness rows are written without holding the connection below synchronous=FULL; Raft writes after them stay durable', () => {
  withDir((dir) => {
    const a = new ControllerStore(dir);
    assert.equal(a.synchronousLevel, 2, 'FULL for Raft');
    a.recordLiveness(1, 1000, 1900);
    a.recordLiveness(2, 1001, 1901);
    a.recordLiveness(1, 2000, 2900);
    assert.equal(a.synchronousLevel, 2, 'back at FULL after the liveness commits');
    a.persist({ hardState: { term: 2, votedFor: 1, commitIndex: 1 }, entries: [entry(1, 2)] });
    a.close();
    const b = new ControllerStore(dir);
    assert.equal(b.synchronousLevel, 2);
    assert.deepEqual(b.hardState(), { term: 2, votedFor: 1, commitIndex: 1 });
    assert.equal(b.lastIndex(), 1);
    const db = new Database(join(dir, 'controller.db'), { readonly: true });
    try {
      assert.deepEqual(db.prepare('SELECT broker_id, last_heartbeat_ms, lease_expiry_ms FROM broker_liveness ORDER BY broker_id').raw().all(), [
        [1, 2000, 2900],
        [2, 1001, 1901],
      ]);
    } finally {
      db.close();
    }
    b.close();
  });
});
