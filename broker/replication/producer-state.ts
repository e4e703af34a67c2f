/**
 * Idempotent producers at the leader of one partition (Kafka's producer state, KIP-98): for each
 * producer id, its epoch and the sequence numbers and offsets of its last 5 batches. A retried
 * batch (same first and last sequence) gets its original offset back instead of being written
 * twice; a batch that skips sequences gets OUT_OF_ORDER_SEQUENCE_NUMBER; an older epoch gets
 * INVALID_PRODUCER_EPOCH. Pure: the replica manager feeds it batch headers and appends.
 *
 * The state is not persisted: a new leader rebuilds it from the batch headers of its log (the
 * same bytes every replica holds), so it survives failovers and restarts. Producers keep at most
 * 5 batches in flight per partition, so 5 remembered batches cover every possible retry.
 */
import { TributaryError } from '../../protocol/errors.js';

export const BATCHES_REMEMBERED_PER_PRODUCER = 5;

interface BatchMeta {
  firstSequence: number;
  lastSequence: number;
  baseOffset: number;
}

interface ProducerEntry {
  epoch: number;
  /** Oldest first, at most BATCHES_REMEMBERED_PER_PRODUCER. */
  batches: BatchMeta[];
}

export interface IdempotentBatch {
  producerId: number;
  producerEpoch: number;
  baseSequence: number;
  recordCount: number;
}

export type SequenceCheck = { kind: 'append' } | { kind: 'duplicate'; baseOffset: number };

export class ProducerStateTable {
  private readonly producers = new Map<number, ProducerEntry>();

  constructor(private readonly producersMax = 100_000) {}

  get size(): number {
    return this.producers.size;
  }

  /** Decide what to do with a batch before it is appended. Throws the error to answer with. */
  check(batch: IdempotentBatch, partition: string): SequenceCheck {
    const entry = this.producers.get(batch.producerId);
    if (entry === undefined) {
      // Unknown producer (new, or its state was before the log's start): accept its sequence.
      return { kind: 'append' };
    }
    if (batch.producerEpoch < entry.epoch) {
      throw new TributaryError('INVALID_PRODUCER_EPOCH', `producer ${batch.producerId} epoch ${batch.producerEpoch} is older than ${entry.epoch} on ${partition}`);
    }
    if (batch.producerEpoch > entry.epoch) {
      if (batch.baseSequence !== 0) {
        throw new TributaryError('OUT_OF_ORDER_SEQUENCE_NUMBER', `producer ${batch.producerId} starts epoch ${batch.producerEpoch} at sequence ${batch.baseSequence}, expected 0 on ${partition}`);
      }
      return { kind: 'append' };
    }
    const lastSequence = batch.baseSequence + batch.recordCount - 1;
    for (const b of entry.batches) {
      if (b.firstSequence === batch.baseSequence && b.lastSequence === lastSequence) return { kind: 'duplicate', baseOffset: b.baseOffset };
    }
    const last = entry.batches[entry.batches.length - 1];
    const expected = last === undefined ? batch.baseSequence : last.lastSequence + 1;
    if (batch.baseSequence !== expected) {
      if (last !== undefined && batch.baseSequence <= last.lastSequence) {
        throw new TributaryError('DUPLICATE_SEQUENCE_NUMBER', `producer ${batch.producerId} sequence ${batch.baseSequence} on ${partition} was already written, but not as this batch`);
      }
      throw new TributaryError('OUT_OF_ORDER_SEQUENCE_NUMBER', `producer ${batch.producerId} sent sequence ${batch.baseSequence} on ${partition}, expected ${expected}`);
    }
    return { kind: 'append' };
  }

  /** A batch was appended (or found in the log while rebuilding): remember it. */
  record(batch: IdempotentBatch, baseOffset: number): void {
    let entry = this.producers.get(batch.producerId);
    if (entry === undefined || batch.producerEpoch > entry.epoch) {
      if (entry === undefined && this.producers.size >= this.producersMax) {
        // Bounded: forget the producer seen longest ago (Map keeps insertion order).
        const oldest = this.producers.keys().next().value;
        if (oldest !== undefined) this.producers.delete(oldest);
      }
      entry = { epoch: batch.producerEpoch, batches: [] };
      this.producers.delete(batch.producerId);
      this.producers.set(batch.producerId, entry);
    } else if (batch.producerEpoch < entry.epoch) {
      return;
    }
    entry.batches.push({ firstSequence: batch.baseSequence, lastSequence: batch.baseSequence + batch.recordCount - 1, baseOffset });
    if (entry.batches.length > BATCHES_REMEMBERED_PER_PRODUCER) entry.batches.shift();
  }
}
