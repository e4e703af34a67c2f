/**
 * RaftMessages mirrors controller/raft/types.ts without importing it (protocol/ may not depend
 * on controller/). The assignments below fail to COMPILE when the two drift, and the test checks
 * that a decoded batch can be handed to the Raft core as it is.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { RaftMessage } from '../../controller/raft/types.js';
import { ApiKey, Protocol, type RaftMessagesRequest, type WireRaftMessage } from '../../protocol/index.js';
import { EXAMPLES } from './examples.js';

// Both directions: the driver sends Ready.messages as they are; a receiver steps what it decoded.
const toCore = (m: WireRaftMessage): RaftMessage => m;
const toWire = (m: RaftMessage): WireRaftMessage => m;
const batchOf = (fromId: number, toId: number, messages: readonly RaftMessage[]): RaftMessagesRequest => ({ fromId, toId, messages });

test('RaftMessages: every message type round-trips to the Raft core shape', () => {
  const protocol = new Protocol();
  const messages = EXAMPLES.RaftMessages.request.messages.map(toWire);
  assert.equal(new Set(messages.map((m) => m.type)).size, 10, 'the example holds all ten message types');
  const frame = protocol.encodeRequest({ apiKey: ApiKey.RaftMessages, apiVersion: 0, correlationId: 1, body: batchOf(1, 2, messages) });
  const decoded = protocol.decodeRequest(frame);
  assert.equal(decoded.apiKey, ApiKey.RaftMessages);
  if (decoded.apiKey !== ApiKey.RaftMessages) return;
  const core: RaftMessage[] = decoded.body.messages.map(toCore);
  assert.deepEqual(core, messages);
});

test('RaftMessages: entries and messages are bounded by the limits', () => {
  const protocol = new Protocol({ arrayItemsMax: 2, batchBytesMax: 4, frameBytesMax: 1024 });
  const append = (entries: number, bytes: number): RaftMessage => ({
    type: 'Append', from: 1, to: 2, term: 1, prevLogIndex: 0, prevLogTerm: 0, leaderCommit: 0,
    entries: Array.from({ length: entries }, (_, i) => ({ term: 1, index: i + 1, type: 'normal' as const, data: Buffer.alloc(bytes) })),
  });
  const encode = (m: RaftMessage) => protocol.encodeRequest({ apiKey: ApiKey.RaftMessages, apiVersion: 0, correlationId: 9, body: batchOf(1, 2, [m]) });
  protocol.decodeRequest(encode(append(2, 4)));
  assert.throws(() => protocol.decodeRequest(encode(append(3, 1))), /messages\[0\]\.entries: expected at most 2 items/);
  assert.throws(() => protocol.decodeRequest(encode(append(1, 5))), /messages\[0\]\.entries\[0\]\.data: expected at most 4 bytes/);
});
