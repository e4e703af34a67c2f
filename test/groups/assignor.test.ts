import test from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { computeTargetAssignment, type AssignorInput, type AssignorMember } from '../../broker/groups/assignor.js';
import { topicOf, tpKey, type TopicPartitionKey } from '../../broker/groups/topic-partitions.js';

const TOPICS = ['a', 'b', 'c', 'd'];

/** Members with random subscriptions, random partition counts, and a random (possibly invalid) current target. */
const arbInput: fc.Arbitrary<AssignorInput> = fc
  .record({
    members: fc.uniqueArray(
      fc.record({ memberId: fc.string({ minLength: 1, maxLength: 4 }), subscribedTopics: fc.subarray(TOPICS, { minLength: 1 }) }),
      { maxLength: 8, selector: (m) => m.memberId },
    ),
    counts: fc.array(fc.integer({ min: 0, max: 12 }), { minLength: TOPICS.length, maxLength: TOPICS.length }),
    // Current target: random partitions (some out of range) handed to random member indexes (some gone).
    current: fc.array(fc.record({ member: fc.integer({ min: 0, max: 9 }), topic: fc.constantFrom(...TOPICS), partition: fc.integer({ min: 0, max: 14 }) }), { maxLength: 40 }),
  })
  .map(({ members, counts, current }) => {
    const partitionCounts = new Map(TOPICS.map((t, i) => [t, counts[i]!] as const));
    const currentTarget = new Map<string, Set<TopicPartitionKey>>();
    const seen = new Set<TopicPartitionKey>();
    for (const c of current) {
      const id = members[c.member]?.memberId ?? `gone-${c.member}`;
      const key = tpKey(c.topic, c.partition);
      if (seen.has(key)) continue; // a target never gives one partition twice
      seen.add(key);
      let set = currentTarget.get(id);
      if (set === undefined) currentTarget.set(id, (set = new Set()));
      set.add(key);
    }
    return { members, partitionCounts, currentTarget };
  });

function subscribedPartitions(input: AssignorInput): Set<TopicPartitionKey> {
  const out = new Set<TopicPartitionKey>();
  for (const m of input.members) for (const t of m.subscribedTopics) for (let p = 0; p < (input.partitionCounts.get(t) ?? 0); p++) out.add(tpKey(t, p));
  return out;
}

test('every subscribed partition goes to exactly one member subscribed to its topic', () => {
  fc.assert(
    fc.property(arbInput, (input) => {
      const target = computeTargetAssignment(input);
      const owners = new Map<TopicPartitionKey, string>();
      for (const [id, keys] of target) {
        const member = input.members.find((m) => m.memberId === id)!;
        for (const key of keys) {
          assert.ok(!owners.has(key), `${key} given to ${owners.get(key)} and ${id}`);
          owners.set(key, id);
          assert.ok(member.subscribedTopics.includes(topicOf(key)), `${key} given to ${id}, not subscribed`);
        }
      }
      assert.deepEqual(new Set(owners.keys()), subscribedPartitions(input));
      assert.deepEqual(new Set(target.keys()), new Set(input.members.map((m) => m.memberId)));
    }),
    { numRuns: 500 },
  );
});

test('balanced as far as subscriptions allow', () => {
  fc.assert(
    fc.property(arbInput, (input) => {
      const target = computeTargetAssignment(input);
      for (const a of input.members) {
        for (const b of input.members) {
          const na = target.get(a.memberId)!.size;
          const nb = target.get(b.memberId)!.size;
          if (na < nb + 2) continue;
          for (const key of target.get(a.memberId)!) {
            assert.ok(!b.subscribedTopics.includes(topicOf(key)), `${a.memberId} has ${na}, ${b.memberId} has ${nb} and could take ${key}`);
          }
          const same = [...a.subscribedTopics].sort().join() === [...b.subscribedTopics].sort().join();
          assert.ok(!same, 'members with the same subscriptions differ by at most one');
        }
      }
    }),
    { numRuns: 500 },
  );
});

test('sticky: identical subscriptions — no member both loses and gains; members at or under the fair share keep everything', () => {
  const arbHomogeneous = arbInput.map((input) => ({
    ...input,
    members: input.members.map((m): AssignorMember => ({ memberId: m.memberId, subscribedTopics: ['a', 'b'] })),
  }));
  fc.assert(
    fc.property(arbHomogeneous, (input) => {
      const target = computeTargetAssignment(input);
      const all = subscribedPartitions(input);
      const fairShare = input.members.length === 0 ? 0 : Math.floor(all.size / input.members.length);
      for (const m of input.members) {
        const before = [...(input.currentTarget.get(m.memberId) ?? [])].filter((k) => all.has(k));
        const after = target.get(m.memberId)!;
        const lost = before.filter((k) => !after.has(k));
        const gained = [...after].filter((k) => !before.includes(k));
        // A partition two members both claimed cannot stay with both: only count the ones it could keep.
        assert.ok(lost.length === 0 || gained.length === 0, `${m.memberId} lost ${lost} and gained ${gained}`);
        if (before.length <= fairShare) assert.deepEqual(lost, [], `${m.memberId} had ${before.length} ≤ fair share ${fairShare} but lost ${lost}`);
      }
    }),
    { numRuns: 500 },
  );
});

test('a member keeps what it can when its subscription shrinks: its other partitions stay', () => {
  const members = [
    { memberId: 'm1', subscribedTopics: ['a'] },
    { memberId: 'm2', subscribedTopics: ['a', 'b'] },
  ];
  const partitionCounts = new Map([['a', 4], ['b', 2]]);
  const first = computeTargetAssignment({ members, partitionCounts, currentTarget: new Map() });
  // m1 took a partition of a from m2 to balance b's two; m2 drops b: m2 keeps its a partitions and
  // gets one back from m1 for balance.
  assert.equal(first.get('m1')!.size, 3);
  const second = computeTargetAssignment({ members: [members[0]!, { memberId: 'm2', subscribedTopics: ['a'] }], partitionCounts, currentTarget: first });
  for (const key of first.get('m2')!) if (topicOf(key) === 'a') assert.ok(second.get('m2')!.has(key));
  assert.equal(second.get('m1')!.size, 2);
  assert.equal(second.get('m2')!.size, 2);
  for (const key of second.get('m1')!) assert.ok(first.get('m1')!.has(key), 'm1 only loses, never gains');
});

test('deterministic: input order does not matter, and a stable group stays put', () => {
  fc.assert(
    fc.property(arbInput, (input) => {
      const once = computeTargetAssignment(input);
      const reversed = computeTargetAssignment({
        members: [...input.members].reverse().map((m) => ({ memberId: m.memberId, subscribedTopics: [...m.subscribedTopics].reverse() })),
        partitionCounts: new Map([...input.partitionCounts].reverse()),
        currentTarget: new Map([...input.currentTarget].reverse().map(([id, keys]) => [id, new Set([...keys].reverse())])),
      });
      assert.deepEqual(reversed, once);
      // Running it again on its own output moves nothing.
      assert.deepEqual(computeTargetAssignment({ ...input, currentTarget: once }), once);
    }),
    { numRuns: 300 },
  );
});

test('two members split a 4-partition topic 2/2; a third joining takes one from one of them', () => {
  const counts = new Map([['t', 4]]);
  const two = computeTargetAssignment({ members: [{ memberId: 'x', subscribedTopics: ['t'] }, { memberId: 'y', subscribedTopics: ['t'] }], partitionCounts: counts, currentTarget: new Map() });
  assert.deepEqual([...two.get('x')!].sort(), ['t:0', 't:2']);
  assert.deepEqual([...two.get('y')!].sort(), ['t:1', 't:3']);
  const three = computeTargetAssignment({
    members: ['x', 'y', 'z'].map((memberId) => ({ memberId, subscribedTopics: ['t'] })),
    partitionCounts: counts,
    currentTarget: two,
  });
  assert.equal(three.get('z')!.size, 1);
  const moved = [...three.get('z')!][0]!;
  assert.ok(two.get('x')!.has(moved) || two.get('y')!.has(moved));
  assert.equal(three.get('x')!.size + three.get('y')!.size, 3);
});
