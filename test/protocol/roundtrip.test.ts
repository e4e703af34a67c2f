/** Every API's example request and response survive encode → decode unchanged. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { API_DEFINITIONS, Protocol, type ApiKeyNumber } from '../../protocol/index.js';
import { EXAMPLES, type ApiExample } from './examples.js';

const protocol = new Protocol();

test('every API has an example', () => {
  assert.deepEqual(Object.keys(EXAMPLES).sort(), API_DEFINITIONS.map((api) => api.name).sort());
});

for (const [apiName, example] of Object.entries(EXAMPLES) as Array<[string, ApiExample<ApiKeyNumber>]>) {
  test(`round trip: ${apiName} request`, () => {
    const frame = { apiKey: example.apiKey, apiVersion: 0, correlationId: 2 ** 31 - 1, body: example.request };
    assert.deepEqual(protocol.decodeRequest(protocol.encodeRequest(frame)), frame);
    const withClient = { ...frame, correlationId: -5, clientId: 'app-1' };
    assert.deepEqual(protocol.decodeRequest(protocol.encodeRequest(withClient)), withClient);
  });

  test(`round trip: ${apiName} response`, () => {
    const frame = { correlationId: 7, body: example.response };
    const bytes = protocol.encodeResponse(example.apiKey, frame);
    assert.deepEqual(protocol.decodeResponse(example.apiKey, 0, bytes), frame);
    // The two-step client path: header first (to find the pending request), then the body.
    const raw = protocol.decodeResponseHeader(bytes);
    assert.equal(raw.correlationId, 7);
    assert.deepEqual(protocol.decodeResponse(example.apiKey, 0, raw), frame);
  });
}
