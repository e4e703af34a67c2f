/**
 * packFrameChunks (the Fetch answer's encoder that sends record bytes by reference) against
 * packFrame (msgpackr): the concatenated pieces decode to exactly what packFrame's bytes decode
 * to, for arbitrary plain values and for random valid responses of every API; byte fields at or
 * above the threshold are pieces of their own, sharing the caller's memory.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { packFrame, unpackFrame } from '../../protocol/frame.js';
import { packFrameChunks } from '../../protocol/frame-chunks.js';
import { API_DEFINITIONS, Protocol, TributaryError } from '../../protocol/index.js';
import { arbitraryFor } from './arbitrary.js';

const MAX = 64 * 1024 * 1024;
const RUNS = Number(process.env['PROPERTY_RUNS'] ?? 200);

const plain = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    fc.integer({ min: -(2 ** 31), max: 2 ** 32 }),
    fc.maxSafeInteger(),
    fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
    fc.double({ noNaN: true }),
    fc.string({ unit: 'grapheme', maxLength: 40 }),
    fc.string({ minLength: 250, maxLength: 70_000 }),
    fc.uint8Array({ maxLength: 300 }),
    fc.integer({ min: 0, max: 70_000 }).map((n) => Buffer.alloc(n, n & 0xff)),
    fc.array(tie('value'), { maxLength: 20 }),
    fc.dictionary(fc.string({ maxLength: 8 }), tie('value'), { maxKeys: 5 }),
  ),
})).value;

function sameAsMsgpackr(wire: unknown, externalBytesMin: number): Buffer[] {
  const pieces = packFrameChunks(wire, MAX, externalBytesMin);
  assert.deepEqual(unpackFrame(Buffer.concat(pieces), MAX), unpackFrame(packFrame(wire, MAX), MAX));
  return pieces;
}

test('property: pieces of arbitrary plain values decode as msgpackr\'s frame does', () => {
  fc.assert(
    fc.property(plain, fc.constantFrom(1, 16, 4096), (wire, threshold) => {
      sameAsMsgpackr(wire, threshold);
    }),
    { numRuns: RUNS },
  );
});

test('property: random valid responses of every API encode to the same values', () => {
  const protocol = new Protocol({ frameBytesMax: 1024 * 1024, batchBytesMax: 64 * 1024, arrayItemsMax: 5, stringBytesMax: 48, nameBytesMax: 24 });
  for (const definition of API_DEFINITIONS) {
    const entry = protocol.api(definition.apiKey)!;
    fc.assert(
      fc.property(arbitraryFor(entry.response), (body) => {
        sameAsMsgpackr([7, null, null, entry.response.encode(body)], 64);
      }),
      { numRuns: Math.max(20, RUNS / 10) },
    );
  }
});

test('large byte fields are pieces of their own, by reference; small ones are copied', () => {
  const big = Buffer.alloc(10_000, 1);
  const view = new Uint8Array(Buffer.alloc(20_000, 2).buffer, 5, 12_000);
  const small = Buffer.alloc(100, 3);
  const pieces = sameAsMsgpackr([1, 'topic', [big, small, null, view], 42], 4096);
  assert.equal(pieces.length, 5, 'head, big, middle, view, tail');
  assert.equal(pieces[1]!.buffer, big.buffer);
  assert.equal(pieces[1]!.byteOffset, big.byteOffset);
  assert.equal(pieces[3]!.buffer, view.buffer);
  assert.equal(pieces[3]!.byteOffset, 5);
  assert.equal(pieces[3]!.length, 12_000);
  for (const p of [pieces[0]!, pieces[2]!, pieces[4]!]) assert.ok(p.buffer !== small.buffer && p.length < 200);
  // A small view of a big buffer is copied: by reference it would keep the whole buffer alive.
  const pinned = new Uint8Array(Buffer.alloc(100_000, 4).buffer, 1000, 8_000);
  const copied = sameAsMsgpackr([pinned], 4096);
  assert.equal(copied.length, 1);
  assert.notEqual(copied[0]!.buffer, pinned.buffer);
  // A frame whose last field is external ends with that piece.
  const ending = sameAsMsgpackr([big], 4096);
  assert.equal(ending.length, 2);
  assert.equal(ending[1]!.buffer, big.buffer);
});

test('frameBytesMax counts the external pieces; undefined is refused', () => {
  assert.throws(() => packFrameChunks([Buffer.alloc(5000)], 4000), (e: unknown) => e instanceof TributaryError && e.code === 'MESSAGE_TOO_LARGE');
  assert.throws(() => packFrameChunks([1, undefined], MAX), (e: unknown) => e instanceof TributaryError && /undefined/.test(e.message));
});
