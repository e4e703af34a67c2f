/**
 * The replicated state machine the simulator runs: a running hash over every applied command.
 * Two nodes that applied the same commands in the same order hold the same hash; the snapshot
 * is that hash plus the index it covers.
 */
import type { Entry } from '../../controller/raft/types.js';

export const SNAPSHOT_DATA_BYTES = 12;

export class HashStateMachine {
  appliedIndex = 0;
  hash = 0x811c9dc5;
  commandCount = 0;

  /** Applies one committed entry; returns the command id, or -1 for a no-op. */
  apply(entry: Entry): number {
    this.appliedIndex = entry.index;
    if (entry.type === 'noop') return -1;
    const commandId = decodeCommand(entry.data);
    this.hash = mixHash(this.hash, commandId, entry.index);
    this.commandCount++;
    return commandId;
  }

  snapshotData(): Uint8Array {
    const data = new Uint8Array(SNAPSHOT_DATA_BYTES);
    const view = new DataView(data.buffer);
    view.setUint32(0, this.appliedIndex);
    view.setUint32(4, this.hash);
    view.setUint32(8, this.commandCount);
    return data;
  }

  restore(data: Uint8Array): void {
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    if (data.byteLength === 0) {
      this.appliedIndex = 0;
      this.hash = 0x811c9dc5;
      this.commandCount = 0;
      return;
    }
    this.appliedIndex = view.getUint32(0);
    this.hash = view.getUint32(4);
    this.commandCount = view.getUint32(8);
  }
}

export function mixHash(hash: number, commandId: number, index: number): number {
  let h = hash;
  h = Math.imul(h ^ commandId, 0x01000193);
  h = Math.imul(h ^ index, 0x01000193);
  return (h ^ (h >>> 15)) >>> 0;
}

export function encodeCommand(commandId: number): Uint8Array {
  const data = new Uint8Array(4);
  new DataView(data.buffer).setUint32(0, commandId);
  return data;
}

export function decodeCommand(data: Uint8Array): number {
  return new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(0);
}
