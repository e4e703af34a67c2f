/**
 * Metadata records and image snapshots as bytes: what Raft entries and snapshots carry, and what
 * brokers fetch. Plain msgpack (no msgpackr extensions), like every other frame.
 */
import { Packr } from 'msgpackr';
import { TributaryError } from '../errors.js';
import type { ImageSnapshot } from './image.js';
import type { MetadataRecord, MetadataRecordType } from './records.js';

const packr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });

const RECORD_TYPES: ReadonlySet<MetadataRecordType> = new Set<MetadataRecordType>([
  'RegisterBroker', 'FenceBroker', 'UnfenceBroker', 'CreateTopic', 'DeleteTopic',
  'AlterTopicConfigs', 'ChangePartition', 'AllocateProducerIds', 'Noop',
]);

export function encodeMetadataRecord(record: MetadataRecord): Uint8Array {
  return packr.pack(record);
}

export function decodeMetadataRecord(bytes: Uint8Array): MetadataRecord {
  let value: unknown;
  try {
    value = packr.unpack(bytes);
  } catch (cause) {
    throw new TributaryError('CORRUPT_MESSAGE', 'metadata record: not valid msgpack', { cause });
  }
  const type = (value as { type?: unknown } | null)?.type;
  if (typeof type !== 'string' || !RECORD_TYPES.has(type as MetadataRecordType)) {
    throw new TributaryError('CORRUPT_MESSAGE', `metadata record: unknown type ${String(type)}`);
  }
  return value as MetadataRecord;
}

export function encodeImageSnapshot(snapshot: ImageSnapshot): Uint8Array {
  return packr.pack(snapshot);
}

export function decodeImageSnapshot(bytes: Uint8Array): ImageSnapshot {
  try {
    return packr.unpack(bytes) as ImageSnapshot;
  } catch (cause) {
    throw new TributaryError('CORRUPT_MESSAGE', 'metadata snapshot: not valid msgpack', { cause });
  }
}
