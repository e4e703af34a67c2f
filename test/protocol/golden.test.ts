/**
 * Golden frames: every API's example request and response (examples.ts), encoded, must equal
 * the bytes stored in golden/<api>.json, and those bytes must decode back to the example. So the
 * wire format cannot change by accident: reordering a struct's fields, changing a type or an
 * integer's encoding all fail here.
 *
 * To change the format on purpose (a new API, a new version), regenerate and review the diff:
 *   npx tsc -p tsconfig.json && UPDATE_GOLDEN=1 node --test dist/test/protocol/golden.test.js
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { test } from 'node:test';
import {
  API_DEFINITIONS,
  decodeRequest,
  decodeResponse,
  encodeErrorResponse,
  encodeRequest,
  encodeResponse,
  type ApiKeyNumber,
} from '../../protocol/index.js';
import { EXAMPLES, EXAMPLE_ERROR_RESPONSE, EXAMPLE_HEADER, LATER_VERSIONS, type ApiExample } from './examples.js';

// Compiled to dist/test/protocol/, so the sources are three levels up.
const GOLDEN_DIR = new URL('../../../test/protocol/golden/', import.meta.url);
const UPDATE = process.env['UPDATE_GOLDEN'] === '1';

interface GoldenFile {
  api: string;
  apiKey: number;
  apiVersion: number;
  request: string;
  response: string;
}

function fileNameOf(apiName: string): string {
  return `${apiName.replace(/([a-z])([A-Z])/g, '$1-$2').toLowerCase()}.json`;
}

function readGolden(fileName: string): unknown {
  return JSON.parse(readFileSync(new URL(fileName, GOLDEN_DIR), 'utf8'));
}

function writeGolden(fileName: string, value: unknown): void {
  mkdirSync(GOLDEN_DIR, { recursive: true });
  writeFileSync(new URL(fileName, GOLDEN_DIR), `${JSON.stringify(value, null, 2)}\n`);
}

const ALL_EXAMPLES = [...Object.entries(EXAMPLES), ...Object.entries(LATER_VERSIONS)] as Array<[string, ApiExample<ApiKeyNumber>]>;

for (const [apiName, example] of ALL_EXAMPLES) {
  test(`golden frames: ${apiName}`, () => {
    const { apiKey } = example;
    const header = { ...EXAMPLE_HEADER, apiVersion: example.apiVersion ?? EXAMPLE_HEADER.apiVersion };
    const request = encodeRequest({ apiKey, ...header, body: example.request });
    const response = encodeResponse(apiKey, { correlationId: EXAMPLE_HEADER.correlationId, body: example.response }, header.apiVersion);
    const actual: GoldenFile = {
      api: apiName,
      apiKey,
      apiVersion: header.apiVersion,
      request: request.toString('hex'),
      response: response.toString('hex'),
    };
    const fileName = fileNameOf(apiName);
    if (UPDATE) writeGolden(fileName, actual);
    const golden = readGolden(fileName) as GoldenFile;

    assert.equal(actual.request, golden.request, `${apiName} request encoding drifted from golden/${fileName}`);
    assert.equal(actual.response, golden.response, `${apiName} response encoding drifted from golden/${fileName}`);
    assert.deepEqual(decodeRequest(Buffer.from(golden.request, 'hex')), { apiKey, ...header, body: example.request });
    assert.deepEqual(decodeResponse(apiKey, golden.apiVersion, Buffer.from(golden.response, 'hex')), {
      correlationId: EXAMPLE_HEADER.correlationId,
      body: example.response,
    });
  });
}

test('golden frames: whole-request error response', () => {
  const { correlationId, errorCode, errorMessage } = EXAMPLE_ERROR_RESPONSE;
  const hex = encodeErrorResponse(correlationId, errorCode, errorMessage).toString('hex');
  if (UPDATE) writeGolden('error-response.json', { response: hex });
  const golden = readGolden('error-response.json') as { response: string };
  assert.equal(hex, golden.response);
  // Any API's decoder reads a whole-request error the same way.
  assert.deepEqual(decodeResponse(1, 0, Buffer.from(golden.response, 'hex')), EXAMPLE_ERROR_RESPONSE);
});

test('golden frames: one file per API, none stale', () => {
  const expected = new Set([...API_DEFINITIONS.map((api) => fileNameOf(api.name)), ...Object.keys(LATER_VERSIONS).map(fileNameOf), 'error-response.json']);
  const present = existsSync(GOLDEN_DIR) ? new Set(readdirSync(GOLDEN_DIR).filter((f) => f.endsWith('.json'))) : new Set<string>();
  assert.deepEqual([...present].sort(), [...expected].sort());
});
