import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { TributaryError } from '../../protocol/errors.js';
import { EMPTY_IMAGE, applyRecord, type MetadataImage } from '../../protocol/metadata/image.js';
import type { MetadataRecord } from '../../protocol/metadata/records.js';
import {
  TOPIC_CONFIGS,
  isTopicConfigKey,
  topicConfigNumber,
  topicConfigValue,
  validateTopicConfigs,
  validateTopicName,
} from '../../protocol/metadata/topic-config.js';
import { planCreateTopic, type CreateTopicRequest, type TopicDefaults } from '../../controller/metadata/decisions.js';

const T0 = 1_700_000_000_000;
const DEFAULTS: TopicDefaults = { numPartitions: 1, defaultReplicationFactor: 3, configs: {} };

function expectCode(fn: () => unknown, code: string, mentions?: string): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof TributaryError, `expected a TributaryError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    if (mentions !== undefined) assert.ok(error.message.includes(mentions), `"${error.message}" should name ${mentions}`);
    return true;
  });
}

function applyAll(image: MetadataImage, records: MetadataRecord[]): MetadataImage {
  let out = image;
  for (const r of records) out = applyRecord(out, r, out.appliedIndex + 1);
  return out;
}

/** Brokers `live` registered and unfenced, brokers `fenced` registered only. */
function brokers(live: number[], fenced: number[] = []): MetadataImage {
  let image = EMPTY_IMAGE;
  for (const id of [...live, ...fenced]) {
    image = applyAll(image, [{ type: 'RegisterBroker', brokerId: id, incarnationId: `i${id}`, address: `ws://h:${id}`, timeMs: T0 }]);
  }
  for (const id of live) {
    image = applyAll(image, [{ type: 'UnfenceBroker', brokerId: id, brokerEpoch: image.brokers.get(id)!.brokerEpoch, timeMs: T0 }]);
  }
  return image;
}

function req(name: string, numPartitions = 1, replicationFactor = 3, configs: Record<string, string> = {}): CreateTopicRequest {
  return { name, numPartitions, replicationFactor, configs };
}

function create(image: MetadataImage, request: CreateTopicRequest, defaults = DEFAULTS): MetadataImage {
  return applyAll(image, [planCreateTopic(image, request, defaults, `id-${request.name}`, T0)]);
}

// ---- topic names -----------------------------------------------------------------------------

test('topic names: empty, too long, "." and "..", and bad characters are INVALID_TOPIC_EXCEPTION', () => {
  for (const bad of ['', 'a'.repeat(250), 'x'.repeat(1000), '.', '..', 'has space', 'slash/name', 'star*', 'tab\t', 'ünïcode', 'a:b', 'emoji🙂', 'new\nline']) {
    expectCode(() => validateTopicName(bad), 'INVALID_TOPIC_EXCEPTION');
    expectCode(() => planCreateTopic(brokers([1, 2, 3]), req(bad), DEFAULTS, 'id', T0), 'INVALID_TOPIC_EXCEPTION');
  }
  expectCode(() => validateTopicName(undefined as unknown as string), 'INVALID_TOPIC_EXCEPTION');
});

test('topic names: 249 characters and the full legal alphabet are accepted', () => {
  for (const good of ['a'.repeat(249), 'A-z_0.9', '...', '.hidden', '_', '-', 'orders.v2']) {
    assert.doesNotThrow(() => validateTopicName(good), good);
  }
  const image = create(brokers([1, 2, 3]), req('n'.repeat(249)));
  assert.ok(image.topics.has('n'.repeat(249)));
});

test('topic names: any string from the legal alphabet of length 1..249, other than "." and "..", is valid', () => {
  const legal = fc.constantFrom(...'abcxyzABCXYZ0189._-'.split(''));
  fc.assert(
    fc.property(fc.array(legal, { minLength: 1, maxLength: 249 }).map((cs) => cs.join('')), (name) => {
      fc.pre(name !== '.' && name !== '..');
      validateTopicName(name);
    }),
    { numRuns: 200 },
  );
  fc.assert(
    fc.property(fc.string({ minLength: 1, maxLength: 20 }).filter((s) => /[^a-zA-Z0-9._-]/.test(s)), (name) => {
      expectCode(() => validateTopicName(name), 'INVALID_TOPIC_EXCEPTION');
    }),
    { numRuns: 200 },
  );
});

// ---- topic configs ---------------------------------------------------------------------------

test('topic configs: unknown keys and bad values are INVALID_CONFIG naming the key', () => {
  const cases: Array<[Record<string, string>, string]> = [
    [{ 'retention.ms': 'abc' }, 'retention.ms'],
    [{ 'retention.ms': '0' }, 'retention.ms'],
    [{ 'retention.ms': '-2' }, 'retention.ms'],
    [{ 'retention.ms': '1.5' }, 'retention.ms'],
    [{ 'retention.ms': '' }, 'retention.ms'],
    [{ 'retention.ms': '99999999999999999999' }, 'retention.ms'],
    [{ 'cleanup.policy': 'foo' }, 'cleanup.policy'],
    [{ 'unclean.leader.election.enable': 'yes' }, 'unclean.leader.election.enable'],
    [{ 'segment.bytes': '100' }, 'segment.bytes'],
    [{ 'min.insync.replicas': '0' }, 'min.insync.replicas'],
    [{ 'retention.msx': '10' }, 'retention.msx'],
    [{ 'segment.ms': '1', 'bogus.key': '1' }, 'bogus.key'],
    [JSON.parse('{"__proto__":"1"}') as Record<string, string>, '__proto__'],
    [{ constructor: '1' }, 'constructor'],
    [{ toString: '1' }, 'toString'],
  ];
  const image = brokers([1, 2, 3]);
  for (const [configs, key] of cases) {
    expectCode(() => validateTopicConfigs(configs), 'INVALID_CONFIG', key);
    expectCode(() => planCreateTopic(image, req('t', 1, 3, configs), DEFAULTS, 'id', T0), 'INVALID_CONFIG', key);
  }
  expectCode(() => validateTopicConfigs({ 'retention.ms': 5 as unknown as string }), 'INVALID_CONFIG', 'retention.ms');
});

test('topic configs: good values are normalised; the table holds valid defaults', () => {
  assert.deepEqual(
    validateTopicConfigs({ 'retention.ms': ' 1000 ', 'retention.bytes': '-1', 'cleanup.policy': 'COMPACT', 'unclean.leader.election.enable': 'True' }),
    { 'retention.ms': '1000', 'retention.bytes': '-1', 'cleanup.policy': 'compact', 'unclean.leader.election.enable': 'true' },
  );
  assert.equal(validateTopicConfigs({ 'retention.ms': '-1' })['retention.ms'], '-1');
  for (const [key, def] of Object.entries(TOPIC_CONFIGS)) {
    assert.ok(isTopicConfigKey(key));
    assert.equal(def.parse(key, def.defaultValue), def.defaultValue, `default of ${key} must validate`);
  }
  assert.equal(isTopicConfigKey('hasOwnProperty'), false);
  assert.equal(topicConfigValue({}, 'cleanup.policy'), 'delete');
  assert.equal(topicConfigValue({}, 'min.insync.replicas', { 'min.insync.replicas': '2' }), '2');
  assert.equal(topicConfigValue({ 'min.insync.replicas': '3' }, 'min.insync.replicas', { 'min.insync.replicas': '2' }), '3');
  assert.equal(topicConfigNumber({ 'retention.ms': '42' }, 'retention.ms'), 42);
});

// ---- planCreateTopic validation ----------------------------------------------------------------

test('partitions 0, negative, fractional or too many are INVALID_PARTITIONS; -1 takes the default', () => {
  const image = brokers([1, 2, 3]);
  for (const n of [0, -5, -2, 1.5, NaN, 10_001]) {
    expectCode(() => planCreateTopic(image, req('t', n), DEFAULTS, 'id', T0), 'INVALID_PARTITIONS');
  }
  const record = planCreateTopic(image, req('t', -1), { ...DEFAULTS, numPartitions: 4 }, 'id', T0);
  assert.equal(record.assignments.length, 4);
});

test('replication factor above the live brokers or below 1 is INVALID_REPLICATION_FACTOR; fenced brokers do not count', () => {
  const image = brokers([1, 2], [3, 4]);
  for (const rf of [3, 4, 0, -3, 2.5]) {
    expectCode(() => planCreateTopic(image, req('t', 1, rf), DEFAULTS, 'id', T0), 'INVALID_REPLICATION_FACTOR');
  }
  expectCode(() => planCreateTopic(image, req('t', 1, -1), { ...DEFAULTS, defaultReplicationFactor: 3 }, 'id', T0), 'INVALID_REPLICATION_FACTOR');
  expectCode(() => planCreateTopic(brokers([], [1]), req('t', 1, 1), DEFAULTS, 'id', T0), 'INVALID_REPLICATION_FACTOR');
  const ok = planCreateTopic(image, req('t', 4, 2), DEFAULTS, 'id', T0);
  for (const replicas of ok.assignments) {
    assert.deepEqual([...replicas].sort(), [1, 2], 'only the live brokers are used');
  }
  assert.equal(ok.configs['replication.factor'], '2');
});

test('replication.factor in configs must agree with the request', () => {
  const image = brokers([1, 2, 3]);
  expectCode(() => planCreateTopic(image, req('t', 1, 2, { 'replication.factor': '3' }), DEFAULTS, 'id', T0), 'INVALID_CONFIG', 'replication.factor');
  const r = planCreateTopic(image, req('t', 1, -1, { 'replication.factor': '2' }), DEFAULTS, 'id', T0);
  assert.equal(r.assignments[0]!.length, 2);
});

test('min.insync.replicas above the replication factor is INVALID_CONFIG', () => {
  const image = brokers([1, 2, 3]);
  expectCode(() => planCreateTopic(image, req('t', 1, 2, { 'min.insync.replicas': '3' }), DEFAULTS, 'id', T0), 'INVALID_CONFIG', 'min.insync.replicas');
  const r = planCreateTopic(image, req('t', 1, 2, { 'min.insync.replicas': '2' }), DEFAULTS, 'id', T0);
  assert.equal(r.configs['min.insync.replicas'], '2');
  // A controller-level default is pinned into the topic at creation.
  const pinned = planCreateTopic(image, req('u', 1, 3), { ...DEFAULTS, configs: { 'min.insync.replicas': '2' } }, 'id', T0);
  assert.equal(pinned.configs['min.insync.replicas'], '2');
});

test('a duplicate topic is TOPIC_ALREADY_EXISTS', () => {
  const image = create(brokers([1, 2, 3]), req('orders', 3, 3));
  expectCode(() => planCreateTopic(image, req('orders', 1, 1), DEFAULTS, 'id2', T0), 'TOPIC_ALREADY_EXISTS', 'orders');
  // Even with otherwise bad arguments the name clash is reported (the name is checked first).
  expectCode(() => planCreateTopic(image, req('orders', 0, 9), DEFAULTS, 'id2', T0), 'TOPIC_ALREADY_EXISTS');
});

test('the planned record carries validated configs, the topic id and the time, and applies cleanly', () => {
  const image = brokers([1, 2, 3]);
  const record = planCreateTopic(image, req('t', 2, 3, { 'cleanup.policy': 'Compact' }), DEFAULTS, 'topic-id-1', T0 + 9);
  assert.equal(record.type, 'CreateTopic');
  assert.equal(record.topicId, 'topic-id-1');
  assert.equal(record.timeMs, T0 + 9);
  assert.deepEqual(record.configs, { 'cleanup.policy': 'compact', 'replication.factor': '3' });
  assert.deepEqual(record.leaders, record.assignments.map((r) => r[0]));
  assert.deepEqual(record.isrs, record.assignments);
  const after = applyAll(image, [record]);
  assert.equal(after.topics.get('t')!.partitions.length, 2);
});

// ---- replica assignment ------------------------------------------------------------------------

test('assignment: 3 live brokers, 6 partitions RF 3 — each broker leads 2, replicas distinct, only live brokers', () => {
  const image = brokers([1, 2, 3], [4]);
  const record = planCreateTopic(image, req('t', 6, 3), DEFAULTS, 'id', T0);
  assert.equal(record.assignments.length, 6);
  const leads = new Map<number, number>();
  for (const replicas of record.assignments) {
    assert.equal(replicas.length, 3);
    assert.equal(new Set(replicas).size, 3, `distinct replicas in [${replicas}]`);
    for (const id of replicas) assert.ok([1, 2, 3].includes(id), `broker ${id} is live`);
    leads.set(replicas[0]!, (leads.get(replicas[0]!) ?? 0) + 1);
  }
  assert.deepEqual([...leads.entries()].sort(), [[1, 2], [2, 2], [3, 2]]);
  // Each broker is also a follower equally often at each position.
  for (let pos = 0; pos < 3; pos++) {
    const counts = [1, 2, 3].map((id) => record.assignments.filter((r) => r[pos] === id).length);
    assert.deepEqual(counts, [2, 2, 2], `position ${pos}`);
  }
});

test("assignment: a second topic's leaders continue the rotation", () => {
  let image = brokers([1, 2, 3]);
  const first = planCreateTopic(image, req('a', 2, 2), DEFAULTS, 'a', T0);
  image = applyAll(image, [first]);
  const second = planCreateTopic(image, req('b', 4, 2), DEFAULTS, 'b', T0);
  const leaders = [...first.leaders, ...second.leaders];
  assert.deepEqual(leaders, [1, 2, 3, 1, 2, 3]);
  image = applyAll(image, [second]);
  const third = planCreateTopic(image, req('c', 1, 1), DEFAULTS, 'c', T0);
  assert.deepEqual(third.leaders, [1]);
  // Across many topics of one partition each, leadership stays balanced.
  const counts = new Map<number, number>();
  for (let i = 0; i < 30; i++) {
    const r = planCreateTopic(image, req(`x${i}`, 1, 3), DEFAULTS, `x${i}`, T0);
    image = applyAll(image, [r]);
    counts.set(r.leaders[0]!, (counts.get(r.leaders[0]!) ?? 0) + 1);
  }
  assert.deepEqual([...counts.values()], [10, 10, 10]);
});

test('assignment property: any live set and RF <= live gives distinct live replicas and balanced leaders', () => {
  fc.assert(
    fc.property(
      fc.uniqueArray(fc.integer({ min: 1, max: 20 }), { minLength: 1, maxLength: 8 }),
      fc.uniqueArray(fc.integer({ min: 21, max: 30 }), { maxLength: 3 }),
      fc.integer({ min: 1, max: 40 }),
      fc.nat(),
      (live, fenced, partitions, rfSeed) => {
        const rf = 1 + (rfSeed % live.length);
        const image = brokers(live, fenced);
        const record = planCreateTopic(image, req('t', partitions, rf), DEFAULTS, 'id', T0);
        const leads = new Map<number, number>();
        for (const replicas of record.assignments) {
          assert.equal(replicas.length, rf);
          assert.equal(new Set(replicas).size, rf);
          for (const id of replicas) assert.ok(live.includes(id));
          leads.set(replicas[0]!, (leads.get(replicas[0]!) ?? 0) + 1);
        }
        const counts = live.map((id) => leads.get(id) ?? 0);
        assert.ok(Math.max(...counts) - Math.min(...counts) <= 1, `leaders balanced: ${counts}`);
      },
    ),
    { numRuns: 150 },
  );
});
