/**
 * Property tests over every API, generated from the schemas:
 *  - random valid bodies round-trip exactly (requests and responses);
 *  - random bytes, truncated valid frames, and valid frames with one field replaced by a wrong
 *    value only ever produce a TributaryError (for the mutation: INVALID_REQUEST naming exactly
 *    that field).
 * Small limits keep the generated values and the oversized wrong values cheap.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { API_DEFINITIONS, Protocol, RequestFrameError, TributaryError, type ApiKeyNumber } from '../../protocol/index.js';
import type { Schema } from '../../protocol/schema.js';
import { arbitraryFor, mutationSites, replaceAt } from './arbitrary.js';

const protocol = new Protocol({ frameBytesMax: 64 * 1024, batchBytesMax: 256, arrayItemsMax: 5, stringBytesMax: 48, nameBytesMax: 24 });
const plainPackr = new Packr({ useRecords: false });
const RUNS = Number(process.env['PROPERTY_RUNS'] ?? 200);
const TEST_TIMEOUT_MS = 120_000;

interface Api {
  name: string;
  apiKey: ApiKeyNumber;
  version: number;
  request: Schema<unknown>;
  response: Schema<unknown>;
}
/** Every version of every API. */
const APIS: Api[] = API_DEFINITIONS.flatMap((definition) => {
  const entry = protocol.api(definition.apiKey);
  assert.ok(entry !== undefined);
  return entry.byVersion.map((schemas, i) => {
    const version = entry.versions.min + i;
    return { name: version === 0 ? definition.name : `${definition.name} v${version}`, apiKey: definition.apiKey, version, request: schemas.request, response: schemas.response };
  });
});

/** Decoding must return or throw a TributaryError; anything else fails the property. */
function decodesOrThrowsTributaryError(decode: () => unknown): boolean {
  try {
    decode();
  } catch (error) {
    if (!(error instanceof TributaryError)) throw new Error(`not a TributaryError: ${String(error)}`, { cause: error });
  }
  return true;
}

function throwsTributaryError(decode: () => unknown): TributaryError {
  try {
    decode();
  } catch (error) {
    if (error instanceof TributaryError) return error;
    throw new Error(`not a TributaryError: ${String(error)}`, { cause: error });
  }
  throw new Error('decoded without an error');
}

for (const api of APIS) {
  test(`property: random valid ${api.name} requests and responses round-trip exactly`, { timeout: TEST_TIMEOUT_MS }, () => {
    fc.assert(
      fc.property(arbitraryFor(api.request), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), (body, correlationId) => {
        // The arbitrary produces values of the schema's type; the registry's types cannot see that.
        const frame = { apiKey: api.apiKey, apiVersion: api.version, correlationId, body } as Parameters<Protocol['encodeRequest']>[0];
        assert.deepEqual(protocol.decodeRequest(protocol.encodeRequest(frame)), frame);
      }),
      { numRuns: RUNS },
    );
    fc.assert(
      fc.property(arbitraryFor(api.response), (body) => {
        const frame = { correlationId: 1, body } as Parameters<Protocol['encodeResponse']>[1];
        assert.deepEqual(protocol.decodeResponse(api.apiKey, api.version, protocol.encodeResponse(api.apiKey, frame, api.version)), frame);
      }),
      { numRuns: RUNS },
    );
  });

  test(`property: ${api.name} frames with one wrong field are INVALID_REQUEST naming that field`, { timeout: TEST_TIMEOUT_MS }, () => {
    for (const side of ['request', 'response'] as const) {
      const schema = api[side];
      fc.assert(
        fc.property(arbitraryFor(schema), fc.nat(), fc.nat(), (body, siteSeed, wrongSeed) => {
          const wire = schema.encode(body);
          const sites = mutationSites(schema, wire);
          const site = sites[siteSeed % sites.length];
          assert.ok(site !== undefined);
          const wrong = site.wrongValues[wrongSeed % site.wrongValues.length];
          const mutated = replaceAt(wire, site.indexes, wrong);
          const frame = side === 'request' ? plainPackr.pack([api.apiKey, api.version, 3, null, mutated]) : plainPackr.pack([3, null, null, mutated]);
          const error = throwsTributaryError(() =>
            side === 'request' ? protocol.decodeRequest(frame) : protocol.decodeResponse(api.apiKey, api.version, frame),
          );
          if (frame.byteLength > protocol.limits.frameBytesMax) {
            assert.equal(error.code, 'MESSAGE_TOO_LARGE');
            return;
          }
          assert.equal(error.code, 'INVALID_REQUEST', error.message);
          assert.ok(error.message.startsWith(`INVALID_REQUEST: ${site.path}: `), `expected path ${site.path} in: ${error.message}`);
          if (side === 'request') {
            assert.ok(error instanceof RequestFrameError);
            assert.equal(error.correlationId, 3);
          }
        }),
        { numRuns: RUNS },
      );
    }
  });

  test(`property: truncated ${api.name} frames always fail with a TributaryError`, { timeout: TEST_TIMEOUT_MS }, () => {
    fc.assert(
      fc.property(arbitraryFor(api.request), arbitraryFor(api.response), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (request, response, cut) => {
        const requestFrame = protocol.encodeRequest({ apiKey: api.apiKey, apiVersion: api.version, correlationId: 1, body: request } as Parameters<Protocol['encodeRequest']>[0]);
        const responseFrame = protocol.encodeResponse(api.apiKey, { correlationId: 1, body: response } as Parameters<Protocol['encodeResponse']>[1], api.version);
        const truncatedRequest = requestFrame.subarray(0, Math.floor(requestFrame.length * cut));
        const truncatedResponse = responseFrame.subarray(0, Math.floor(responseFrame.length * cut));
        throwsTributaryError(() => protocol.decodeRequest(truncatedRequest));
        throwsTributaryError(() => protocol.decodeResponse(api.apiKey, api.version, truncatedResponse));
      }),
      { numRuns: RUNS },
    );
  });
}

test('property: random bytes never throw anything but a TributaryError', { timeout: TEST_TIMEOUT_MS }, () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 256 }), fc.constantFrom(...APIS), (bytes, api) => {
      decodesOrThrowsTributaryError(() => protocol.decodeRequest(bytes));
      decodesOrThrowsTributaryError(() => protocol.decodeResponseHeader(bytes));
      decodesOrThrowsTributaryError(() => protocol.decodeResponse(api.apiKey, 0, bytes));
    }),
    { numRuns: RUNS * 20 },
  );
});

test('property: random msgpack values as frames never throw anything but a TributaryError', { timeout: TEST_TIMEOUT_MS }, () => {
  // Random bytes are rarely well-formed msgpack; these are, so they reach the envelope and schema checks.
  const value = fc.letrec((tie) => ({
    node: fc.oneof(
      { depthSize: 'small' },
      fc.integer(),
      fc.double(),
      fc.string(),
      fc.boolean(),
      fc.constant(null),
      fc.uint8Array({ maxLength: 8 }),
      fc.array(tie('node'), { maxLength: 6 }),
      fc.dictionary(fc.string({ maxLength: 4 }), tie('node'), { maxKeys: 3 }),
    ),
  })).node;
  const header = fc.tuple(fc.constantFrom(...APIS.map((a) => a.apiKey), -1, 5000), fc.constantFrom(0, 1, -1), fc.integer(), fc.option(fc.string()));
  fc.assert(
    fc.property(header, value, fc.constantFrom(...APIS), ([apiKey, apiVersion, correlationId, clientId], body, api) => {
      decodesOrThrowsTributaryError(() => protocol.decodeRequest(plainPackr.pack([apiKey, apiVersion, correlationId, clientId, body])));
      decodesOrThrowsTributaryError(() => protocol.decodeRequest(plainPackr.pack(body)));
      decodesOrThrowsTributaryError(() => protocol.decodeResponse(api.apiKey, 0, plainPackr.pack([correlationId, null, null, body])));
    }),
    { numRuns: RUNS * 10 },
  );
});
