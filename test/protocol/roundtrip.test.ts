/** Every API's example request and response survive encode → decode unchanged. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { API_DEFINITIONS, Protocol, type ApiKeyNumber } from '../../protocol/index.js';
import { EXAMPLES, LATER_VERSIONS, type ApiExample } from './examples.js';

const protocol = new Protocol();

test('every API has an example', () => {
  assert.deepEqual(Object.keys(EXAMPLES).sort(), API_DEFINITIONS.map((api) => api.name).sort());
});

for (const [apiName, example] of [...Object.entries(EXAMPLES), ...Object.entries(LATER_VERSIONS)] as Array<[string, ApiExample<ApiKeyNumber>]>) {
  const version = example.apiVersion ?? 0;
  test(`round trip: ${apiName} request`, () => {
    const frame = { apiKey: example.apiKey, apiVersion: version, correlationId: 2 ** 31 - 1, body: example.request };
    assert.deepEqual(protocol.decodeRequest(protocol.encodeRequest(frame)), frame);
    const withClient = { ...frame, correlationId: -5, clientId: 'app-1' };
    assert.deepEqual(protocol.decodeRequest(protocol.encodeRequest(withClient)), withClient);
  });

  test(`round trip: ${apiName} response`, () => {
    const frame = { correlationId: 7, body: example.response };
    const bytes = protocol.encodeResponse(example.apiKey, frame, version);
    assert.deepEqual(protocol.decodeResponse(example.apiKey, version, bytes), frame);
    // The two-step client path: header first (to find the pending request), then the body.
    const raw = protocol.decodeResponseHeader(bytes);
    assert.equal(raw.correlationId, 7);
    assert.deepEqual(protocol.decodeResponse(example.apiKey, version, raw), frame);
  });
}

test('a Fetch v0 frame carries no session fields: a v1 body encoded at v0 reads back without them', () => {
  const v1 = LATER_VERSIONS.FetchV1;
  const decoded = protocol.decodeRequest(protocol.encodeRequest({ apiKey: v1.apiKey, apiVersion: 0, correlationId: 1, body: v1.request }));
  const { sessionId, sessionEpoch, forgottenTopics, ...v0Body } = v1.request;
  assert.ok(sessionId !== undefined && sessionEpoch !== undefined && forgottenTopics !== undefined);
  assert.deepEqual(decoded.body, v0Body);
  const response = protocol.decodeResponse(v1.apiKey, 0, protocol.encodeResponse(v1.apiKey, { correlationId: 1, body: v1.response }, 0));
  const { errorCode, sessionId: responseSession, ...v0Response } = v1.response;
  assert.ok(errorCode !== undefined && responseSession !== undefined);
  assert.deepEqual(response.body, v0Response);
});
