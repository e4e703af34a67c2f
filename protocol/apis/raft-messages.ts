/**
 * RaftMessages (key 1000, internal): controller → controller, carrying the Raft core's messages
 * (controller/raft/types.ts `RaftMessage`). Sent fire-and-forget: Raft already tolerates loss,
 * duplication and reordering, and every reply is itself a Raft message travelling the other
 * way, so the response exists only to keep the API table uniform and is never sent.
 *
 * protocol/ may not import controller/, so the shapes are mirrored here with identical field
 * names: a decoded message is handed to RaftNode.step as it is. test/protocol/raft-messages.test.ts
 * checks at compile time that the two stay assignable both ways.
 */
import { ApiKey, defineApi } from '../api-keys.js';
import type { ProtocolLimits } from '../frame.js';
import { array, bool, bytes, int, literal, struct, variant, type Infer, type Schema } from '../schema.js';

const INT32_MAX = 0x7fffffff;

/** Raft's types use readonly arrays. Decoding returns fresh arrays and encoding never mutates, so either is sound. */
function readonlyArray<T>(item: Schema<T>, options: { maxItems: number }): Schema<readonly T[]> {
  return array(item, options);
}

function schemas(limits: ProtocolLimits) {
  const nodeId = int(0, INT32_MAX);
  /** Terms and log indexes. */
  const counter = int(0, Number.MAX_SAFE_INTEGER);
  const base = { from: nodeId, to: nodeId, term: counter };
  const entry = struct({
    term: counter,
    index: counter,
    type: literal('normal', 'noop'),
    data: bytes({ maxBytes: limits.batchBytesMax }),
  });
  const message = variant('type', {
    PreVote: struct({ ...base, lastLogIndex: counter, lastLogTerm: counter }),
    PreVoteResp: struct({ ...base, granted: bool }),
    Vote: struct({ ...base, lastLogIndex: counter, lastLogTerm: counter }),
    VoteResp: struct({ ...base, granted: bool }),
    Append: struct({
      ...base,
      prevLogIndex: counter,
      prevLogTerm: counter,
      entries: readonlyArray(entry, { maxItems: limits.arrayItemsMax }),
      leaderCommit: counter,
    }),
    AppendResp: struct({
      ...base,
      success: bool,
      matchIndex: counter,
      rejectedIndex: counter,
      hintIndex: counter,
      hintTerm: counter,
    }),
    Heartbeat: struct({ ...base, leaderCommit: counter, readRound: counter }),
    HeartbeatResp: struct({ ...base, readRound: counter }),
    InstallSnapshot: struct({
      ...base,
      // Sent whole (controller snapshots are small); the frame limit bounds it.
      snapshot: struct({ lastIncludedIndex: counter, lastIncludedTerm: counter, data: bytes({ maxBytes: limits.frameBytesMax }) }),
    }),
    SnapshotResp: struct({ ...base, matchIndex: counter }),
  });
  const request = struct({
    /** The sending controller; every message in `messages` is from it. */
    fromId: nodeId,
    /** The receiving controller; a receiver drops a batch addressed to another id. */
    toId: nodeId,
    messages: readonlyArray(message, { maxItems: limits.arrayItemsMax }),
  });
  const response = struct({});
  return { request, response, message };
}

type Schemas = ReturnType<typeof schemas>;
export type RaftMessagesRequest = Infer<Schemas['request']>;
export type RaftMessagesResponse = Infer<Schemas['response']>;
/** One Raft message as it travels: the same shape as controller/raft/types.ts `RaftMessage`. */
export type WireRaftMessage = Infer<Schemas['message']>;

export const RaftMessagesApi = defineApi({
  apiKey: ApiKey.RaftMessages,
  name: 'RaftMessages',
  versions: { min: 0, max: 0 },
  schemas: (limits: ProtocolLimits) => {
    const { request, response } = schemas(limits);
    return { request, response };
  },
});
