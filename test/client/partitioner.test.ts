import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StickyPartitioner, murmur2, partitionForKey, toPositive } from '../../client/partitioner.js';

const utf8 = (s: string) => Buffer.from(s, 'utf8');

test('murmur2 matches Kafka Utils.murmur2 (values from Kafka UtilsTest and librdkafka)', () => {
  // apache/kafka clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java testMurmur2
  assert.equal(murmur2(utf8('21')), -973932308);
  assert.equal(murmur2(utf8('foobar')), -790332482);
  assert.equal(murmur2(utf8('a-little-bit-long-string')), -985981536);
  assert.equal(murmur2(utf8('a-little-bit-longer-string')), -1486304829);
  assert.equal(murmur2(utf8('lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8')), -58897971);
  assert.equal(murmur2(Buffer.from([0x61, 0x62, 0x63])), 479470107);
  // librdkafka rdmurmur2.c unit test: "kafka" → 0xd067cf64.
  assert.equal(murmur2(utf8('kafka')), -798503068);
  assert.equal(murmur2(utf8('1')), -1993445489);
  // Computed with Kafka's Java murmur2 (java Utils.murmur2 on the JVM), covering every tail length.
  assert.equal(murmur2(utf8('')), 275646681);
  assert.equal(murmur2(utf8('a')), -1563381124);
  assert.equal(murmur2(utf8('hello')), 2132663229);
  assert.equal(murmur2(utf8('héllo')), 614509002);
});

test('a key lands where Kafka puts it: toPositive(murmur2) % partitions', () => {
  assert.equal(toPositive(-1), 0x7fffffff);
  assert.equal(toPositive(-2147483648), 0);
  assert.equal(partitionForKey(utf8(''), 3), 0);
  assert.equal(partitionForKey(utf8('a'), 3), 1);
  assert.equal(partitionForKey(utf8('hello'), 3), 0);
  assert.equal(partitionForKey(utf8('kafka'), 3), 1);
  assert.equal(partitionForKey(utf8('foobar'), 3), 0);
  assert.equal(partitionForKey(utf8('kafka'), 1), 0);
  for (let n = 1; n <= 64; n++) {
    const p = partitionForKey(utf8(`key-${n}`), n);
    assert.ok(p >= 0 && p < n);
  }
});

test('the sticky partitioner keeps one partition until switchBytes went to it or its batch is full (KIP-794)', () => {
  let calls = 0;
  const sticky = new StickyPartitioner((n) => (calls++ * 7) % n, 1000);
  const first = sticky.current('t', 4);
  assert.equal(sticky.current('t', 4), first);
  sticky.onAppended('t', (first + 1) % 4, 5000, 4); // bytes to another partition: no change
  sticky.onBatchFull('t', (first + 1) % 4, 4);
  assert.equal(sticky.current('t', 4), first);
  sticky.onAppended('t', first, 600, 4);
  assert.equal(sticky.current('t', 4), first, 'below switchBytes');
  sticky.onAppended('t', first, 400, 4);
  const second = sticky.current('t', 4);
  assert.notEqual(second, first, 'switchBytes reached');
  sticky.onAppended('t', second, 999, 4);
  assert.equal(sticky.current('t', 4), second, 'the count starts again after a switch');
  const seen = new Set<number>([first, second]);
  let previous = second;
  for (let i = 0; i < 20; i++) {
    sticky.onBatchFull('t', previous, 4);
    const next = sticky.current('t', 4);
    assert.notEqual(next, previous);
    seen.add(next);
    previous = next;
  }
  assert.ok(seen.size > 2);
  // One partition: nowhere else to go.
  const single = new StickyPartitioner(() => 0, 10);
  assert.equal(single.current('s', 1), 0);
  single.onAppended('s', 0, 100, 1);
  single.onBatchFull('s', 0, 1);
  assert.equal(single.current('s', 1), 0);
});
