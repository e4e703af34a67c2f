import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TributaryError } from '../../protocol/errors.js';
import { BATCHES_REMEMBERED_PER_PRODUCER, ProducerStateTable } from '../../broker/replication/producer-state.js';

const b = (baseSequence: number, recordCount = 10, producerEpoch = 0, producerId = 7) => ({ producerId, producerEpoch, baseSequence, recordCount });
const code = (fn: () => unknown) => {
  try {
    fn();
  } catch (error) {
    return error instanceof TributaryError ? error.code : String(error);
  }
  return 'no error';
};

test('in-order batches append; a retry of any of the last 5 gets its original offset', () => {
  const t = new ProducerStateTable();
  let offset = 0;
  for (let i = 0; i < 7; i++) {
    assert.deepEqual(t.check(b(i * 10), 'p-0'), { kind: 'append' });
    t.record(b(i * 10), offset);
    offset += 10;
  }
  // The last 5 batches (sequences 20..69) are remembered.
  assert.deepEqual(t.check(b(60), 'p-0'), { kind: 'duplicate', baseOffset: 60 });
  assert.deepEqual(t.check(b(20), 'p-0'), { kind: 'duplicate', baseOffset: 20 });
  assert.equal(BATCHES_REMEMBERED_PER_PRODUCER, 5);
  assert.equal(code(() => t.check(b(10), 'p-0')), 'DUPLICATE_SEQUENCE_NUMBER', 'older than the window: not written twice either');
  assert.deepEqual(t.check(b(70), 'p-0'), { kind: 'append' });
});

test('a gap in sequences is OUT_OF_ORDER_SEQUENCE_NUMBER; a new epoch restarts at 0; an old epoch is fenced', () => {
  const t = new ProducerStateTable();
  t.record(b(0), 0);
  assert.equal(code(() => t.check(b(20), 'p-0')), 'OUT_OF_ORDER_SEQUENCE_NUMBER');
  assert.equal(code(() => t.check(b(5, 10, 1), 'p-0')), 'OUT_OF_ORDER_SEQUENCE_NUMBER');
  assert.deepEqual(t.check(b(0, 10, 1), 'p-0'), { kind: 'append' });
  t.record(b(0, 10, 1), 10);
  assert.equal(code(() => t.check(b(10, 10, 0), 'p-0')), 'INVALID_PRODUCER_EPOCH');
  assert.deepEqual(t.check(b(0, 10, 1), 'p-0'), { kind: 'duplicate', baseOffset: 10 });
});

test('an unknown producer is accepted at any sequence; producers are bounded', () => {
  const t = new ProducerStateTable(3);
  assert.deepEqual(t.check(b(500, 1, 0, 1), 'p-0'), { kind: 'append' });
  for (let id = 1; id <= 5; id++) t.record(b(0, 1, 0, id), id);
  assert.equal(t.size, 3);
  assert.deepEqual(t.check(b(0, 1, 0, 5), 'p-0'), { kind: 'duplicate', baseOffset: 5 });
});
