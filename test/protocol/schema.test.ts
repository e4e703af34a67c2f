/** The schema combinator: checks, limits, messages naming the exact path, inferred types. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TributaryError } from '../../protocol/errors.js';
import {
  array,
  bool,
  bytes,
  int,
  int32,
  int64,
  literal,
  nullable,
  optional,
  string,
  struct,
  validate,
  variant,
  type Infer,
} from '../../protocol/schema.js';

function errorOf(fn: () => unknown): TributaryError {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof TributaryError, `expected TributaryError, got ${String(error)}`);
    return error;
  }
  assert.fail('expected a throw');
}

const partition = struct({
  partition: int32,
  fetchOffset: int(0, Number.MAX_SAFE_INTEGER),
  minOffset: optional(int(0, Number.MAX_SAFE_INTEGER)),
});
const fetchLike = struct({
  maxWaitMs: int(0, 0x7fffffff),
  topics: array(struct({ topic: string({ maxBytes: 16 }), partitions: array(partition, { maxItems: 4 }) }), { maxItems: 4 }),
});

// Compile-time: the inferred type is what handlers see.
type FetchLike = Infer<typeof fetchLike>;
const typed: FetchLike = { maxWaitMs: 1, topics: [{ topic: 't', partitions: [{ partition: 0, fetchOffset: 0 }] }] };

test('a struct is a positional array and decodes to an object', () => {
  const value = validate(fetchLike, [1, [['t', [[0, 0, null]]]]]);
  assert.deepEqual(value, typed);
  assert.equal('minOffset' in (value.topics[0]?.partitions[0] ?? {}), false);
  assert.deepEqual(fetchLike.encode(typed), [1, [['t', [[0, 0, null]]]]]);
});

test('errors name the exact field path', () => {
  // validate() turns arrays of structs into arrays of objects in place, so each call gets fresh wire.
  const wire = () => [1, [['a', []], ['b', []], ['t', [[0, 0, null], [1, -5, null]]]]];
  const error = errorOf(() => validate(fetchLike, wire()));
  assert.equal(error.code, 'INVALID_REQUEST');
  assert.equal(error.message, 'INVALID_REQUEST: topics[2].partitions[1].fetchOffset: expected an integer >= 0, got -5');
  const prefixed = errorOf(() => validate(fetchLike, wire(), 'body'));
  assert.match(prefixed.message, /^INVALID_REQUEST: body\.topics\[2\]/);
  const root = errorOf(() => validate(fetchLike, 'nope'));
  assert.equal(root.message, 'INVALID_REQUEST: (root): expected an array of 2 fields [maxWaitMs, topics], got the string "nope"');
});

test('a failure does not leak into the next validation', () => {
  errorOf(() => validate(fetchLike, [1, [['t', [[0, -1, null]]]]]));
  const other = errorOf(() => validate(fetchLike, [-1, []]));
  assert.equal(other.message, 'INVALID_REQUEST: maxWaitMs: expected an integer in [0, 2147483647], got -1');
});

test('int checks integer-ness and range', () => {
  const s = int(-1, 10);
  assert.equal(validate(s, -1), -1);
  assert.equal(validate(s, 10), 10);
  for (const bad of [11, -2, 1.5, Number.NaN, Infinity, '1', null, true, 1n]) errorOf(() => validate(s, bad));
  assert.equal(validate(int64, -(2 ** 53 - 1)), -(2 ** 53 - 1));
  errorOf(() => validate(int64, 2 ** 53));
  assert.throws(() => int(5, 1), RangeError);
});

test('int64 encodes beyond 32 bits as BigInt so msgpack writes int64', () => {
  assert.equal(int64.encode(2 ** 40), 2n ** 40n);
  assert.equal(int64.encode(-1), -1);
  assert.equal(int64.encode(0xffffffff), 0xffffffff);
  assert.equal(int32.encode(5), 5);
});

test('string limits are in UTF-8 bytes, and patterns apply', () => {
  const s = string({ maxBytes: 6 });
  assert.equal(validate(s, 'abcdef'), 'abcdef');
  assert.equal(validate(s, 'éé'), 'éé'); // 4 bytes
  errorOf(() => validate(s, 'abcdefg'));
  errorOf(() => validate(s, 'ééé€')); // 4 characters, 9 bytes
  assert.equal(validate(s, '€€'), '€€'); // 6 bytes exactly
  const p = string({ maxBytes: 10, pattern: /^[a-z]+$/ });
  assert.equal(validate(p, 'abc'), 'abc');
  assert.match(errorOf(() => validate(p, 'ab1')).message, /expected a string matching/);
  errorOf(() => validate(s, 7));
});

test('bytes are checked for type and size, and returned as the same object', () => {
  const b = bytes({ maxBytes: 4 });
  const value = new Uint8Array(4);
  assert.equal(validate(b, value), value);
  assert.match(errorOf(() => validate(b, new Uint8Array(5))).message, /expected at most 4 bytes, got 5/);
  errorOf(() => validate(b, [1, 2]));
  errorOf(() => validate(b, 'abcd'));
});

test('arrays are bounded by maxItems', () => {
  const a = array(int32, { maxItems: 2 });
  assert.deepEqual(validate(a, [1, 2]), [1, 2]);
  assert.match(errorOf(() => validate(a, [1, 2, 3])).message, /expected at most 2 items, got 3/);
  assert.match(errorOf(() => validate(a, [1, 'x'])).message, /^INVALID_REQUEST: \[1\]: expected an integer/);
  errorOf(() => validate(a, { length: 1, 0: 1 }));
});

test('literal, bool, nullable, optional', () => {
  const acks = literal(-1, 0, 1);
  assert.equal(validate(acks, -1), -1);
  assert.match(errorOf(() => validate(acks, 2)).message, /expected one of -1, 0, 1, got 2/);
  assert.equal(validate(bool, false), false);
  errorOf(() => validate(bool, 0));
  const n = nullable(int32);
  assert.equal(validate(n, null), null);
  assert.equal(validate(n, 3), 3);
  errorOf(() => validate(n, undefined));
  const withOptional = struct({ a: optional(int32), b: bool });
  assert.deepEqual(validate(withOptional, [null, true]), { b: true });
  assert.deepEqual(validate(withOptional, [3, true]), { a: 3, b: true });
  assert.deepEqual(withOptional.encode({ b: true }), [null, true]);
  errorOf(() => validate(withOptional, [true]));
  errorOf(() => validate(withOptional, [null, true, 1]));
});

test('error messages never echo long user strings', () => {
  const error = errorOf(() => validate(int32, 'x'.repeat(10_000)));
  assert.ok(error.message.length < 200);
});

test('variant: one array, tag first, decoded to a tagged object', () => {
  const message = variant('type', {
    Vote: struct({ term: int32, lastLogIndex: int64 }),
    VoteResp: struct({ term: int32, granted: bool, note: optional(string({ maxBytes: 8 })) }),
  });
  type Message = Infer<typeof message>;
  const vote: Message = { type: 'Vote', term: 3, lastLogIndex: 2 ** 40 };
  const resp: Message = { type: 'VoteResp', term: 3, granted: true };
  assert.deepEqual(message.encode(vote), ['Vote', 3, 2n ** 40n]);
  assert.deepEqual(message.encode(resp), ['VoteResp', 3, true, null]);
  assert.deepEqual(validate(message, ['Vote', 3, 2 ** 40]), vote);
  assert.deepEqual(validate(message, ['VoteResp', 3, true, null]), resp);
  assert.deepEqual(validate(message, ['VoteResp', 3, true, 'hi']), { ...resp, note: 'hi' });
  const list = array(message, { maxItems: 4 });
  assert.equal(
    errorOf(() => validate(list, [['Vote', 1, 1], ['Nope', 1]])).message,
    'INVALID_REQUEST: [1].type: expected one of "Vote", "VoteResp", got the string "Nope"',
  );
  assert.equal(
    errorOf(() => validate(list, [['VoteResp', 1, 'yes', null]])).message,
    'INVALID_REQUEST: [0].granted: expected a boolean, got the string "yes"',
  );
  assert.match(errorOf(() => validate(message, ['Vote', 1])).message, /^INVALID_REQUEST: \(root\): expected an array of 3 fields \[type, term, lastLogIndex\]/);
  assert.match(errorOf(() => validate(message, [])).message, /^INVALID_REQUEST: \(root\): expected an array \[type, \.\.\.fields\]/);
  assert.match(errorOf(() => validate(message, [['__proto__']])).message, /^INVALID_REQUEST: type: /);
  assert.throws(() => variant('type', { A: struct({ type: int32 }) }), RangeError);
  assert.throws(() => variant('type', { A: int32 as never }), RangeError);
});
