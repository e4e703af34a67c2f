import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LeaderState, type AcksWaiter } from '../../broker/replication/leader-state.js';

function leader(isr = [1, 2, 3], hw = 0, epochStart = 0) {
  return new LeaderState({ localBrokerId: 1, replicas: [1, 2, 3], isr, leaderEpoch: 0, partitionEpoch: 0, leaderEpochStartOffset: epochStart, highWatermark: hw, nowMs: 0 });
}

function waiter(requiredOffset: number, log: string[]): AcksWaiter {
  return { requiredOffset, resolve: (o) => log.push(`${requiredOffset}:${o}`), fail: (c) => log.push(`${requiredOffset}:${c}`) };
}

test('the high watermark is the smallest log end offset in the ISR and only moves forward', () => {
  const s = leader();
  assert.equal(s.maybeAdvanceHighWatermark(10), false, 'followers not heard from hold it');
  assert.equal(s.onFollowerFetch(2, 6, 10, 1), false);
  assert.equal(s.onFollowerFetch(3, 4, 10, 1), true);
  assert.equal(s.highWatermark, 4);
  s.onFollowerFetch(3, 8, 10, 2);
  assert.equal(s.highWatermark, 6);
  s.onFollowerFetch(3, 2, 10, 3); // a follower that truncated: the HW never goes back
  assert.equal(s.highWatermark, 6);
});

test('acks=all waiters resolve in offset order once the high watermark covers them', () => {
  const s = leader();
  const log: string[] = [];
  for (const o of [5, 2, 9, 3]) s.addWaiter(waiter(o, log));
  s.onFollowerFetch(2, 4, 10, 1);
  s.onFollowerFetch(3, 4, 10, 1);
  assert.equal(s.releaseWaiters(2), 2);
  assert.deepEqual(log, ['2:ok', '3:ok']);
  s.onIsrCommitted([1, 2], 1, 10); // 3 left the ISR: below min 3 now
  s.onFollowerFetch(2, 10, 10, 2);
  s.releaseWaiters(3);
  assert.deepEqual(log.slice(2), ['5:not_enough_replicas_after_append', '9:not_enough_replicas_after_append']);
  assert.equal(s.waiterCount, 0);
});

test('a follower not caught up for replica.lag.time.max.ms is proposed out; one that catches up is proposed back', () => {
  const s = leader();
  s.onFollowerFetch(2, 10, 10, 100);
  s.onFollowerFetch(3, 3, 10, 100);
  assert.equal(s.proposeIsrChange(5000, 10_000), null);
  s.onFollowerFetch(2, 10, 10, 10_500);
  assert.deepEqual(s.proposeIsrChange(10_500, 10_000), [1, 2]);
  assert.equal(s.proposeIsrChange(10_600, 10_000), null, 'one change in flight at a time');
  s.onIsrCommitted([1, 2], 1, 10);
  assert.equal(s.highWatermark, 10, 'the shrink lets the high watermark advance');
  s.onFollowerFetch(3, 10, 10, 11_000);
  assert.deepEqual(s.proposeIsrChange(11_000, 10_000), [1, 2, 3]);
});

test('a fenced follower is never proposed back into the ISR', () => {
  const s = leader([1, 2]);
  s.onFollowerFetch(2, 10, 10, 1);
  s.onFollowerFetch(3, 10, 10, 1);
  assert.equal(s.proposeIsrChange(2, 10_000, (id) => id !== 3), null);
  assert.deepEqual(s.proposeIsrChange(3, 10_000), [1, 2, 3]);
});

test('a rejected expansion no longer holds the high watermark (regression)', () => {
  const s = leader();
  s.onFollowerFetch(2, 10, 10, 100);
  s.onFollowerFetch(3, 10, 10, 100);
  s.onIsrCommitted([1], 1, 10);
  assert.deepEqual(s.proposeIsrChange(1600, 10_000), [1, 2, 3]); // followers that fetched recently
  assert.equal(s.maybeAdvanceHighWatermark(11), false, 'held by the pending expansion');
  s.onIsrChangeFailed();
  assert.equal(s.maybeAdvanceHighWatermark(11), true, 'recomputed over the committed ISR');
  assert.equal(s.highWatermark, 11);
});

test('leadership ending hands every waiter back', () => {
  const s = leader();
  const log: string[] = [];
  s.addWaiter(waiter(3, log));
  s.addWaiter(waiter(1, log));
  for (const w of s.drainWaiters()) w.fail('NOT_LEADER_OR_FOLLOWER');
  assert.deepEqual(log.sort(), ['1:NOT_LEADER_OR_FOLLOWER', '3:NOT_LEADER_OR_FOLLOWER']);
});

test('a follower misses the high watermark until a fetch response carrying it was sent to that follower', () => {
  const s = leader();
  assert.equal(s.followerMissesHighWatermark(2), true, 'never told anything yet');
  s.onHighWatermarkSent(2, 0);
  assert.equal(s.followerMissesHighWatermark(2), false);
  s.onFollowerFetch(2, 5, 5, 1);
  s.onFollowerFetch(3, 5, 5, 1);
  assert.equal(s.highWatermark, 5);
  assert.equal(s.followerMissesHighWatermark(2), true);
  assert.equal(s.followerMissesHighWatermark(3), true);
  s.onHighWatermarkSent(2, 5);
  assert.equal(s.followerMissesHighWatermark(2), false, 'told');
  assert.equal(s.followerMissesHighWatermark(3), true, 'each follower on its own');
  s.onHighWatermarkSent(2, 3); // an older response never moves it back
  assert.equal(s.followerMissesHighWatermark(2), false);
  assert.equal(s.followerMissesHighWatermark(4), false, 'not a follower');
});
