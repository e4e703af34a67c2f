/** The envelope: zero-copy bytes, int64 as numbers, limits, version checks, header errors. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Packr } from 'msgpackr';
import {
  ApiKey,
  Protocol,
  RequestFrameError,
  TributaryError,
  resolveLimits,
  type FetchRequest,
  type ProduceRequest,
} from '../../protocol/index.js';

const protocol = new Protocol();
const plainPackr = new Packr({ useRecords: false });

function produceBody(records: Uint8Array): ProduceRequest {
  return {
    transactionalId: null,
    acks: 1,
    timeoutMs: 1000,
    topicData: [{ name: 't', partitionData: [{ index: 0, currentLeaderEpoch: -1, records }] }],
  };
}

function fetchBody(fetchOffset: number): FetchRequest {
  return {
    replicaId: -1,
    replicaEpoch: -1,
    maxWaitMs: 100,
    minBytes: 1,
    maxBytes: 1 << 20,
    topics: [
      {
        topic: 't',
        partitions: [{ partition: 0, currentLeaderEpoch: -1, fetchOffset, lastFetchedEpoch: -1, logStartOffset: -1, partitionMaxBytes: 1 << 20 }],
      },
    ],
  };
}

function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  assert.fail('expected a throw');
}

function decodeError(bytes: Uint8Array, p: Protocol = protocol): RequestFrameError {
  const error = catchError(() => p.decodeRequest(bytes));
  assert.ok(error instanceof RequestFrameError, `expected RequestFrameError, got ${String(error)}`);
  return error;
}

test('record bytes decode as a slice of the received buffer, not a copy', () => {
  const batch = Buffer.alloc(4096, 0xab);
  const bytes = protocol.encodeRequest({ apiKey: ApiKey.Produce, apiVersion: 0, correlationId: 1, body: produceBody(batch) });
  // A fresh buffer, as a socket would hand it over.
  const received = Buffer.from(bytes);
  const request = protocol.decodeRequest(received);
  assert.equal(request.apiKey, ApiKey.Produce);
  if (request.apiKey !== ApiKey.Produce) return;
  const records = request.body.topicData[0]?.partitionData[0]?.records;
  assert.ok(records !== undefined);
  assert.equal(records.buffer, received.buffer);
  assert.ok(records.byteOffset >= received.byteOffset && records.byteOffset + records.byteLength <= received.byteOffset + received.byteLength);
  assert.deepEqual(Buffer.from(records), batch);
  received[records.byteOffset - received.byteOffset] = 0x01; // aliasing, not copying
  assert.equal(records[0], 0x01);
});

test('record bytes in a response are slices too, also from a plain Uint8Array', () => {
  const batch = new Uint8Array(300).fill(7);
  const bytes = protocol.encodeResponse(ApiKey.Fetch, {
    correlationId: 3,
    body: {
      throttleTimeMs: 0,
      responses: [
        {
          topic: 't',
          partitions: [
            { partitionIndex: 0, errorCode: 0, highWatermark: 1, lastStableOffset: 1, logStartOffset: 0, preferredReadReplica: -1, records: batch },
          ],
        },
      ],
    },
  });
  const received = new Uint8Array(bytes); // copy into a non-Buffer view
  const response = protocol.decodeResponse(ApiKey.Fetch, 0, received);
  const records = response.body?.responses[0]?.partitions[0]?.records;
  assert.ok(records instanceof Uint8Array);
  assert.equal(records.buffer, received.buffer);
});

test('offsets beyond 32 bits decode as exact JS numbers, written as msgpack int64', () => {
  for (const offset of [2 ** 32, 2 ** 40, 2 ** 53 - 1]) {
    const bytes = protocol.encodeRequest({ apiKey: ApiKey.Fetch, apiVersion: 0, correlationId: 1, body: fetchBody(offset) });
    const decoded = protocol.decodeRequest(bytes);
    assert.ok(decoded.apiKey === ApiKey.Fetch);
    const fetchOffset = decoded.body.topics[0]?.partitions[0]?.fetchOffset;
    assert.equal(typeof fetchOffset, 'number');
    assert.equal(fetchOffset, offset);
    // 0xd3 = msgpack int64 followed by the big-endian value, not 0xcb (float64).
    const int64 = Buffer.alloc(9);
    int64[0] = 0xd3;
    int64.writeBigInt64BE(BigInt(offset), 1);
    assert.ok(bytes.includes(int64), `expected int64 encoding of ${offset}`);
  }
});

test('negative int64 values round trip (response offsets may be -1 or large negative timestamps)', () => {
  const body = { throttleTimeMs: 0, errorCode: 0, producerId: -(2 ** 53 - 1), producerEpoch: 0 };
  const bytes = protocol.encodeResponse(ApiKey.InitProducerId, { correlationId: 1, body });
  assert.deepEqual(protocol.decodeResponse(ApiKey.InitProducerId, 0, bytes).body, body);
});

test('int64 from other msgpack encoders (uint64, int64, float64) reads as numbers; 2^53 and beyond is rejected', () => {
  const frameWith = (offset: unknown) => {
    const wire = [ApiKey.Fetch, 0, 9, null, [-1, -1, 100, 1, 1024, [['t', [[0, -1, offset, -1, -1, 1024, null]]]]]];
    return plainPackr.pack(wire);
  };
  // A uint64 (0xcf) as another client might write it.
  const uint64 = Buffer.from(frameWith(BigInt(2 ** 40)));
  const at = uint64.indexOf(Buffer.from([0xd3]));
  uint64[at] = 0xcf;
  for (const bytes of [frameWith(BigInt(2 ** 40)), uint64, frameWith(2 ** 40)]) {
    const decoded = protocol.decodeRequest(bytes);
    assert.ok(decoded.apiKey === ApiKey.Fetch);
    assert.equal(decoded.body.topics[0]?.partitions[0]?.fetchOffset, 2 ** 40);
  }
  for (const tooBig of [BigInt(2 ** 53), BigInt(2 ** 53) + 1n, 2 ** 53, BigInt('9223372036854775807')]) {
    const error = decodeError(frameWith(tooBig));
    assert.equal(error.code, 'INVALID_REQUEST');
    assert.match(error.message, /topics\[0\]\.partitions\[0\]\.fetchOffset: expected an integer >= 0/);
    assert.equal(error.correlationId, 9);
  }
});

test('a frame above frameBytesMax is rejected before it is parsed', () => {
  const small = new Protocol({ frameBytesMax: 1024, batchBytesMax: 512 });
  const garbage = Buffer.alloc(1025, 0xc1); // 0xc1 is never valid msgpack: parsing would say INVALID_REQUEST
  const error = decodeError(garbage, small);
  assert.equal(error.code, 'MESSAGE_TOO_LARGE');
  assert.equal(error.correlationId, undefined);
  const response = catchError(() => small.decodeResponseHeader(garbage));
  assert.ok(response instanceof TributaryError);
  assert.equal(response.code, 'MESSAGE_TOO_LARGE');
});

test('encoding a frame above frameBytesMax throws MESSAGE_TOO_LARGE', () => {
  const small = new Protocol({ frameBytesMax: 1024, batchBytesMax: 512 });
  const error = catchError(() =>
    small.encodeRequest({ apiKey: ApiKey.Produce, apiVersion: 0, correlationId: 1, body: produceBody(Buffer.alloc(2000)) }),
  );
  assert.ok(error instanceof TributaryError);
  assert.equal(error.code, 'MESSAGE_TOO_LARGE');
});

test('a batch above batchBytesMax is INVALID_REQUEST naming the partition', () => {
  const small = new Protocol({ frameBytesMax: 4096, batchBytesMax: 512 });
  const bytes = small.encodeRequest({ apiKey: ApiKey.Produce, apiVersion: 0, correlationId: 5, body: produceBody(Buffer.alloc(513)) });
  const error = decodeError(bytes, small);
  assert.equal(error.code, 'INVALID_REQUEST');
  assert.equal(error.message, 'INVALID_REQUEST: topicData[0].partitionData[0].records: expected at most 512 bytes, got 513');
  assert.equal(error.correlationId, 5);
  assert.equal(error.apiKey, ApiKey.Produce);
});

test('an unsupported version or unknown API is UNSUPPORTED_VERSION with the correlation id', () => {
  const version = decodeError(plainPackr.pack([ApiKey.Metadata, 3, 11, null, [null]]));
  assert.equal(version.code, 'UNSUPPORTED_VERSION');
  assert.equal(version.correlationId, 11);
  assert.match(version.message, /Metadata version 3 is not supported \(this server speaks 0\.\.0\)/);
  const unknown = decodeError(plainPackr.pack([999, 0, 12, null, []]));
  assert.equal(unknown.code, 'UNSUPPORTED_VERSION');
  assert.equal(unknown.correlationId, 12);
  assert.equal(unknown.retriable, false);
});

test('header errors name the header field; without a readable correlationId the framing is broken', () => {
  const badId = decodeError(plainPackr.pack([ApiKey.Metadata, 0, 'x', null, [null]]));
  assert.equal(badId.code, 'INVALID_REQUEST');
  assert.equal(badId.correlationId, undefined);
  assert.match(badId.message, /correlationId: expected an integer/);
  const bigId = decodeError(plainPackr.pack([ApiKey.Metadata, 0, 2 ** 31, null, [null]]));
  assert.equal(bigId.correlationId, undefined);
  const badClient = decodeError(plainPackr.pack([ApiKey.Metadata, 0, 4, 17, [null]]));
  assert.match(badClient.message, /^INVALID_REQUEST: clientId: expected a string, got 17$/);
  assert.equal(badClient.correlationId, 4);
  const map = decodeError(plainPackr.pack({ apiKey: 3, apiVersion: 0, correlationId: 4, body: [null] }));
  assert.match(map.message, /frame: expected an array/);
  const shortFrame = decodeError(plainPackr.pack([ApiKey.Metadata, 0, 4, null]));
  assert.equal(shortFrame.code, 'INVALID_REQUEST');
});

test('broken msgpack is INVALID_REQUEST "frame: ..." with the parser error as cause', () => {
  const valid = protocol.encodeRequest({ apiKey: ApiKey.Metadata, apiVersion: 0, correlationId: 1, body: { topics: null } });
  for (const bytes of [valid.subarray(0, valid.length - 1), Buffer.concat([valid, Buffer.from([0x00])]), Buffer.alloc(0), Buffer.from([0xc1]), Buffer.from('c7010501', 'hex')]) {
    const error = decodeError(bytes);
    assert.equal(error.code, 'INVALID_REQUEST');
    assert.match(error.message, /^INVALID_REQUEST: frame: /);
    assert.equal(error.correlationId, undefined);
  }
  const truncated = decodeError(valid.subarray(0, 3));
  assert.ok(truncated.cause instanceof Error);
});

test('deeply nested garbage fails cleanly instead of overflowing the stack', () => {
  const depth = 200_000;
  const nested = Buffer.alloc(depth, 0x91); // [[[[...
  const error = decodeError(nested);
  assert.equal(error.code, 'INVALID_REQUEST');
});

test('error responses carry code and message, never a body', () => {
  const bytes = protocol.encodeErrorResponse(8, new TributaryError('THROTTLING_QUOTA_EXCEEDED', 'too many requests in flight (inflightRequestsMax=100)'));
  const decoded = protocol.decodeResponse(ApiKey.Produce, 0, bytes);
  assert.deepEqual(decoded, { correlationId: 8, errorCode: 89, errorMessage: 'too many requests in flight (inflightRequestsMax=100)' });
  const fromName = protocol.decodeResponse(ApiKey.Produce, 0, protocol.encodeErrorResponse(9, 'INVALID_REQUEST'));
  assert.deepEqual(fromName, { correlationId: 9, errorCode: 42 });
  // encodeResponse with an errorCode takes the same path.
  const viaEncodeResponse = protocol.encodeResponse(ApiKey.Produce, { correlationId: 9, errorCode: 42 });
  assert.deepEqual(protocol.decodeResponse(ApiKey.Produce, 0, viaEncodeResponse), fromName);
  const rebuilt = TributaryError.fromWire(decoded.errorCode ?? 0, decoded.errorMessage);
  assert.equal(rebuilt.retriable, true);
});

test('a RequestFrameError answers with its own code via encodeErrorResponse', () => {
  const error = decodeError(plainPackr.pack([ApiKey.Fetch, 9, 77, null, []]));
  assert.ok(error.correlationId !== undefined);
  const reply = protocol.decodeResponse(ApiKey.Fetch, 0, protocol.encodeErrorResponse(error.correlationId, error));
  assert.deepEqual(reply, { correlationId: 77, errorCode: 35, errorMessage: 'Fetch version 9 is not supported (this server speaks 0..1)' });
});

test('malformed response envelopes are rejected', () => {
  const bad = [
    [1, 0, null, null], // errorCode 0
    [1, 42, null, [0, []]], // body with an error
    [1, null, 'oops', [0, []]], // message without an error
    [1, null, null, null], // neither body nor error
    [1, 'x', null, null],
  ];
  for (const wire of bad) {
    const error = catchError(() => protocol.decodeResponse(ApiKey.ApiVersions, 0, plainPackr.pack(wire)));
    assert.ok(error instanceof TributaryError, String(error));
    assert.equal(error.code, 'INVALID_REQUEST');
  }
});

test('absent optional fields travel as nil, never as msgpackr\'s undefined extension', () => {
  const bytes = protocol.encodeRequest({ apiKey: ApiKey.Fetch, apiVersion: 0, correlationId: 1, body: fetchBody(0) });
  assert.equal(bytes.includes(Buffer.from([0xd4, 0x00, 0x00])), false);
});

test('apiVersions lists every registered API with its range', () => {
  const versions = protocol.apiVersions();
  assert.equal(versions.length, Object.keys(ApiKey).length);
  assert.deepEqual(
    versions.map((v) => v.apiKey),
    Object.values(ApiKey).sort((a, b) => a - b),
  );
  // Fetch v1 added fetch sessions (KIP-227); every other API is at its first version.
  for (const v of versions) assert.deepEqual([v.minVersion, v.maxVersion], [0, v.apiKey === ApiKey.Fetch ? 1 : 0]);
});

test('resolveLimits fills defaults and refuses inconsistent limits', () => {
  const limits = resolveLimits({ arrayItemsMax: 10 });
  assert.equal(limits.frameBytesMax, 64 * 1024 * 1024);
  assert.equal(limits.batchBytesMax, 16 * 1024 * 1024);
  assert.equal(limits.arrayItemsMax, 10);
  for (const bad of [{ frameBytesMax: 100, batchBytesMax: 200 }, { arrayItemsMax: 0 }, { stringBytesMax: 1.5 }]) {
    const error = catchError(() => resolveLimits(bad));
    assert.ok(error instanceof TributaryError);
    assert.equal(error.code, 'INVALID_CONFIG');
  }
});
