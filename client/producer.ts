/**
 * Producer: records in, acknowledged offsets out.
 *
 *   send() ──► partitioner ──► accumulator (one open batch per partition; closed after lingerMs,
 *              at batchBytesMax, or at pipelineBatchBytes while the partition has room in
 *              flight) ──► sender (one Produce request per leader broker carrying
 *              every partition it has a batch ready for) ──► acks resolve the send()s
 *
 * - One promise per send() call, resolved when every batch holding its records is acknowledged
 *   at the producer's acks level; records carry no promises or closures of their own.
 * - Memory is bounded: records count against `bufferBytesMax` from send() until their batch is
 *   acknowledged or fails; a send() that does not fit waits (FIFO, so order is kept) until
 *   enough is released. A single record larger than `batchBytesMax` is refused up front.
 * - Retriable errors (the `retriable` flag of the error table) are retried with exponential
 *   backoff until `deliveryTimeoutMs` after the batch was closed; errors that mean leadership
 *   moved refresh the metadata first. A batch is retried alone, once nothing else of its
 *   partition is in flight, so retries never overtake earlier batches.
 * - Idempotence (on by default with acks 'all', as in Kafka since 3.0): one InitProducerId at
 *   connect(); each batch carries the producer id, epoch and a per-partition base sequence
 *   (advanced by the record count), at most `maxInFlightPerPartition` (≤ 5) batches are in
 *   flight per partition, and a retried batch keeps its bytes, hence its sequence, so the
 *   broker can drop duplicates.
 * - A batch that fails for good leaves a sequence gap on its partition that the broker would
 *   refuse (OUT_OF_ORDER_SEQUENCE_NUMBER). As Kafka's producer does since KIP-360, the partition
 *   then waits for its in-flight batches to come back, the producer bumps its epoch (locally, as
 *   Kafka's idempotent producer does; a new producer id from InitProducerId once the epoch would
 *   overflow) and the partition's waiting batches are re-stamped from sequence 0 under the new
 *   epoch, in their order. The broker accepts sequence 0 on a newer epoch. If the failed batch's
 *   fate is unknown (it timed out) and a later batch was already sent, that later batch is first
 *   retried as it was: written → the gap was not one; OUT_OF_ORDER → nothing after the gap was
 *   written, so re-stamping cannot duplicate. Other partitions are untouched: each moves to the
 *   new epoch (from sequence 0) only when nothing of it is in flight or waiting.
 * - acks=0: the Produce request goes out with RpcConnection.send (the broker answers nothing);
 *   the send() resolves once the request is handed to the socket, with baseOffset -1.
 */
import { performance } from 'node:perf_hooks';
import { ApiKey } from '../protocol/api-keys.js';
import { ERRORS, TributaryError, errorNameOf, type ErrorName } from '../protocol/errors.js';
import type { ProduceRequest, ProduceResponse } from '../protocol/index.js';
import { buildBatch, withProducerIdentity, type Compression, type RecordHeader, type RecordInput } from '../protocol/record-batch.js';
import { Cluster, backoffMs, isRetriable, needsMetadataRefresh, type ClusterOptions, type RetryOptions } from './cluster.js';
import { StickyPartitioner, mathRandomInt, partitionForKey, type RandomInt } from './partitioner.js';
import { positiveInt, nonNegativeInt } from '../protocol/options.js';

export type Acks = 'all' | -1 | 0 | 1;

export interface ProducerOptions {
  /** 'all' (= -1): every in-sync replica; 1: the leader; 0: no acknowledgement. Default 'all'. */
  acks?: Acks;
  /**
   * Producer id + per-partition sequence numbers so retries cannot duplicate. Default true when
   * acks is 'all' and maxInFlightPerPartition ≤ 5, else false (Kafka's default since 3.0/3.2);
   * an explicit true with acks 0/1 is a config error.
   */
  idempotent?: boolean;
  /** How long a batch waits for more records before it is sent. Default 5. */
  lingerMs?: number;
  /** A batch is closed when it reaches this many bytes of records. Default 1 MiB. */
  batchBytesMax?: number;
  /**
   * A batch is also closed, before its linger, when it reaches this many bytes while its partition
   * can send it at once (fewer than maxInFlightPerPartition batches in flight or waiting, not in
   * backoff): a burst then goes as a pipeline of batches instead of one. It does not move the
   * sticky partition. Default 128 KiB (at most batchBytesMax); batchBytesMax turns it off.
   */
  pipelineBatchBytes?: number;
  /** Bytes of records accepted but not yet acknowledged; send() waits past it. Default 32 MiB. */
  bufferBytesMax?: number;
  /** Default 'none'. */
  compression?: Compression;
  /** Deadline of one Produce request (also sent as the broker's acks timeout). Default: the client's. */
  requestTimeoutMs?: number;
  /** How often one batch may be retried. Default: unlimited within deliveryTimeoutMs. */
  retries?: number;
  /** A batch that is not acknowledged this long after it was closed fails. Default 30 000. */
  deliveryTimeoutMs?: number;
  /** Batches in flight per partition. Default 5 (and at most 5 when idempotent). */
  maxInFlightPerPartition?: number;
  /** For tests: the randomness of the sticky partitioner. */
  random?: RandomInt;
}

export interface Message {
  key?: string | Buffer | null;
  value: string | Buffer | null;
  headers?: Record<string, string | Buffer>;
  /** Overrides the partitioner. */
  partition?: number;
  /** ms since the epoch; default: when send() was called. */
  timestamp?: number;
}

export interface ProducerRecord {
  topic: string;
  messages: Message[];
}

/** One per partition a send() touched: the offset of the first of its records there. */
export interface ProduceAck {
  topic: string;
  partition: number;
  /** -1 with acks=0. */
  baseOffset: number;
}

/** Where one message of a send went (sendWithOffsets). */
export interface RecordOffset {
  partition: number;
  /** -1 with acks=0. */
  offset: number;
}

export interface ProducerContext {
  cluster: ClusterOptions;
  retry: RetryOptions;
}

const MiB = 1024 * 1024;
/**
 * The default pipelineBatchBytes: the size at which a batch goes at once while its partition has
 * room in flight, below batchBytesMax. A window of 256 1 KiB sends to one partition went as one 256-record batch, one
 * request in flight, with the cores idle a third of the time at the peak; split at 128 KiB it
 * goes as a pipeline of three (measured in docs/BENCHMARKS.md, third session of 2026-12-03).
 */
const PIPELINE_BATCH_BYTES = 128 * 1024;
/** Per-record framing in the batch, roughly (varints, attributes, deltas). */
const RECORD_OVERHEAD_BYTES = 16;
const SEQUENCE_MODULUS = 2 ** 31;
/** Producer epochs are int16; past this a producer needs a new producer id (KAFKA-5283). */
const PRODUCER_EPOCH_MAX = 32767;

/** The records of one send() that went into one batch. */
interface BatchEntry {
  send: SendRequest;
  ack: ProduceAck;
  /** Index of the first of these records in the batch. */
  firstIndex: number;
  count: number;
  /** Message indexes of these records, when the send wants per-record offsets. */
  positions: number[] | undefined;
}

class SendRequest {
  /** Batches holding some of this send's records and not yet completed. */
  pendingBatches = 0;
  appended = false;
  done = false;
  readonly acks: ProduceAck[] = [];
  readonly ackByPartition = new Map<number, ProduceAck>();
  readonly offsets: RecordOffset[] | undefined;
  resolve!: (acks: ProduceAck[]) => void;
  reject!: (error: Error) => void;
  readonly promise: Promise<ProduceAck[]>;

  constructor(
    readonly topic: string,
    readonly records: RecordInput[],
    readonly sizes: number[],
    readonly explicitPartitions: (number | undefined)[] | undefined,
    readonly bytes: number,
    trackOffsets: boolean,
  ) {
    this.offsets = trackOffsets ? new Array<RecordOffset>(records.length) : undefined;
    this.promise = new Promise<ProduceAck[]>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }
}

class Batch {
  records: RecordInput[] = [];
  bytes = 0;
  readonly entries: BatchEntry[] = [];
  built: Buffer | undefined;
  recordCount = 0;
  /** Order within the partition (close order); retries are re-queued by it. */
  order = 0;
  baseSequence = -1;
  attempts = 0;
  deadlineMs = Infinity;
  lingerTimer: NodeJS.Timeout | undefined;
  /** Its linger passed while the partition had no room in flight: the sender closes it when a slot frees. */
  lingered = false;
  lastError: TributaryError | undefined;

  constructor(readonly queue: PartitionQueue) {}
}

class PartitionQueue {
  open: Batch | undefined;
  /** Closed batches waiting to be sent, in `order`. */
  readonly ready: Batch[] = [];
  readonly inflight = new Set<Batch>();
  nextOrder = 0;
  nextSequence = 0;
  /** The producer id and epoch this partition's sequences belong to (idempotence). */
  producerId = -1;
  producerEpoch = -1;
  /** A batch of this partition failed for good: later sequences must restart (KIP-360). */
  sequenceGap = false;
  /** ...and nothing after the gap can have been written (so re-stamping cannot duplicate). */
  sequenceGapConfirmed = false;
  /** The `order` of the latest batch that failed for good. */
  sequenceGapOrder = -1;
  /** Backoff after a retriable error: nothing of this partition is sent before it. */
  retryAtMs = 0;

  constructor(
    readonly topic: string,
    readonly partition: number,
  ) {}
}

export class Producer {
  private readonly cluster: Cluster;
  private readonly acks: -1 | 0 | 1;
  private readonly idempotent: boolean;
  private readonly lingerMs: number;
  private readonly batchBytesMax: number;
  /** A batch this big is sent at once while its partition has room in flight (see append). */
  private readonly pipelineBatchBytes: number;
  private readonly bufferBytesMax: number;
  private readonly compression: Compression;
  private readonly requestTimeoutMs: number;
  private readonly retries: number;
  private readonly deliveryTimeoutMs: number;
  private readonly maxInFlightPerPartition: number;
  private readonly retry: RetryOptions;
  private readonly sticky: StickyPartitioner;

  private readonly queues = new Map<string, Map<number, PartitionQueue>>();
  private producerId = -1;
  private producerEpoch = -1;
  /** A new producer id is being fetched (the epoch would overflow). */
  private renewingProducerId = false;
  private connected = false;
  private closing = false;

  /** Bytes of records accepted and not yet acknowledged or failed. */
  private bufferedBytes = 0;
  /** send()s waiting for metadata or buffer space, in call order. */
  private readonly appendQueue: SendRequest[] = [];
  private pumping = false;
  private wakeAppender: (() => void) | undefined;
  /** send()s not yet settled; flush() waits for zero. */
  private outstanding = 0;
  private idleWaiters: Array<() => void> = [];
  private readonly lingerZero = new Set<PartitionQueue>();
  private lingerZeroScheduled = false;
  private drainTimer: NodeJS.Timeout | undefined;
  private drainTimerAtMs = Infinity;
  private drainScheduled = false;

  constructor(context: ProducerContext, options: ProducerOptions = {}) {
    this.acks = wireAcks(options.acks ?? 'all');
    // On by default unless the other options conflict with it, as in Kafka (KIP-679, KAFKA-13598):
    // an explicit `idempotent: true` with acks 0/1 is refused below, an implicit one just off.
    this.idempotent = options.idempotent ?? (this.acks === -1 && (options.maxInFlightPerPartition ?? 5) <= 5);
    this.lingerMs = nonNegativeInt('lingerMs', options.lingerMs ?? 5);
    this.batchBytesMax = positiveInt('batchBytesMax', options.batchBytesMax ?? MiB);
    this.pipelineBatchBytes = Math.min(this.batchBytesMax, positiveInt('pipelineBatchBytes', options.pipelineBatchBytes ?? PIPELINE_BATCH_BYTES));
    this.bufferBytesMax = positiveInt('bufferBytesMax', options.bufferBytesMax ?? 32 * MiB);
    if (this.bufferBytesMax < this.batchBytesMax) {
      throw new TributaryError('INVALID_CONFIG', `bufferBytesMax (${this.bufferBytesMax}) must be at least batchBytesMax (${this.batchBytesMax})`);
    }
    this.compression = options.compression ?? 'none';
    if (this.compression !== 'none' && this.compression !== 'gzip') throw new TributaryError('INVALID_CONFIG', `compression must be 'none' or 'gzip', got ${String(this.compression)}`);
    this.requestTimeoutMs = positiveInt('requestTimeoutMs', options.requestTimeoutMs ?? context.cluster.requestTimeoutMs);
    this.retries = nonNegativeInt('retries', options.retries ?? Number.MAX_SAFE_INTEGER);
    this.deliveryTimeoutMs = positiveInt('deliveryTimeoutMs', options.deliveryTimeoutMs ?? 30_000);
    this.maxInFlightPerPartition = positiveInt('maxInFlightPerPartition', options.maxInFlightPerPartition ?? 5);
    if (this.idempotent && this.maxInFlightPerPartition > 5) {
      throw new TributaryError('INVALID_CONFIG', `an idempotent producer keeps at most 5 batches in flight per partition, got maxInFlightPerPartition=${this.maxInFlightPerPartition}`);
    }
    if (this.idempotent && this.acks !== -1) throw new TributaryError('INVALID_CONFIG', "an idempotent producer needs acks 'all'");
    this.retry = context.retry;
    this.sticky = new StickyPartitioner(options.random ?? mathRandomInt, this.batchBytesMax);
    this.cluster = new Cluster(context.cluster);
  }

  /** Fetch metadata, and with idempotence get a producer id (fails clearly if the broker cannot). */
  async connect(): Promise<void> {
    if (this.closing) throw new TributaryError('INVALID_REQUEST', 'producer is disconnected');
    await this.cluster.connect();
    if (this.idempotent && this.producerId === -1) await this.initProducerId();
    this.connected = true;
  }

  /** The producer id and epoch (-1 until an idempotent producer connected). */
  get producerIdentity(): { producerId: number; producerEpoch: number } {
    return { producerId: this.producerId, producerEpoch: this.producerEpoch };
  }

  /** Bytes accepted and not yet acknowledged (what bufferBytesMax bounds). */
  get bufferedBytesNow(): number {
    return this.bufferedBytes;
  }

  /**
   * Send records to one topic. Resolves with one ack per partition touched once the acks level
   * is met for all of them; rejects with the first TributaryError (e.g. NOT_ENOUGH_REPLICAS with
   * the broker's message) once retries are exhausted.
   */
  send(record: ProducerRecord): Promise<ProduceAck[]> {
    let request: SendRequest;
    try {
      request = this.normalise(record, false);
    } catch (error) {
      return Promise.reject(error);
    }
    this.submit(request);
    return request.promise;
  }

  /** send(), also saying where each message went (`records[i]` is `messages[i]`). */
  async sendWithOffsets(record: ProducerRecord): Promise<{ acks: ProduceAck[]; records: RecordOffset[] }> {
    const request = this.normalise(record, true);
    this.submit(request);
    const acks = await request.promise;
    return { acks, records: request.offsets! };
  }

  /** Send every open batch now and wait until every send() so far has settled. */
  async flush(): Promise<void> {
    for (const byPartition of this.queues.values()) for (const q of byPartition.values()) if (q.open !== undefined) this.closeBatch(q);
    if (this.outstanding === 0) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  /** Flush what was sent so far, then close the connections. */
  async disconnect(): Promise<void> {
    if (!this.closing) {
      this.closing = true;
      try {
        await this.flush();
      } finally {
        if (this.drainTimer !== undefined) clearTimeout(this.drainTimer);
        await this.cluster.close();
      }
    }
  }

  // ---- accepting records ------------------------------------------------------------------

  private submit(request: SendRequest): void {
    this.outstanding++;
    if (this.appendQueue.length === 0 && this.canAppend(request)) {
      this.append(request);
    } else {
      this.appendQueue.push(request);
      void this.pumpAppends();
    }
  }

  private normalise(record: ProducerRecord, trackOffsets: boolean): SendRequest {
    if (this.closing) throw new TributaryError('INVALID_REQUEST', 'producer is disconnected');
    if (!this.connected) throw new TributaryError('INVALID_REQUEST', 'producer is not connected: call connect() first');
    if (record === null || typeof record !== 'object') throw new TributaryError('INVALID_REQUEST', 'send: expected { topic, messages }');
    if (typeof record.topic !== 'string' || record.topic === '') throw new TributaryError('INVALID_REQUEST', 'send: topic must be a non-empty string');
    if (!Array.isArray(record.messages) || record.messages.length === 0) throw new TributaryError('INVALID_REQUEST', 'send: messages must be a non-empty array');
    const now = Date.now();
    const n = record.messages.length;
    const records = new Array<RecordInput>(n);
    const sizes = new Array<number>(n);
    let explicit: (number | undefined)[] | undefined;
    let bytes = 0;
    for (let i = 0; i < n; i++) {
      const m = record.messages[i]!;
      const key = toBytes(m.key, i, 'key');
      const value = toBytes(m.value, i, 'value');
      let size = RECORD_OVERHEAD_BYTES + (key?.length ?? 0) + (value?.length ?? 0);
      let headers: RecordHeader[] | undefined;
      if (m.headers !== undefined) {
        headers = [];
        for (const [hk, hv] of Object.entries(m.headers)) {
          const hb = toBytes(hv, i, `headers.${hk}`);
          headers.push({ key: hk, value: hb });
          size += Buffer.byteLength(hk) + (hb?.length ?? 0) + 4;
        }
      }
      const timestamp = m.timestamp ?? now;
      if (!Number.isSafeInteger(timestamp) || timestamp < 0) throw new TributaryError('INVALID_REQUEST', `messages[${i}].timestamp: expected ms since the epoch, got ${timestamp}`);
      if (m.partition !== undefined) {
        if (!Number.isInteger(m.partition) || m.partition < 0) throw new TributaryError('INVALID_REQUEST', `messages[${i}].partition: expected an integer >= 0, got ${m.partition}`);
        explicit ??= new Array<number | undefined>(n);
        explicit[i] = m.partition;
      }
      if (size > this.batchBytesMax) {
        throw new TributaryError('MESSAGE_TOO_LARGE', `messages[${i}] is ${size} bytes, larger than batchBytesMax=${this.batchBytesMax}`);
      }
      records[i] = headers === undefined ? { key, value, timestamp } : { key, value, headers, timestamp };
      sizes[i] = size;
      bytes += size;
    }
    return new SendRequest(record.topic, records, sizes, explicit, bytes, trackOffsets);
  }

  private canAppend(request: SendRequest): boolean {
    const topic = this.cluster.topic(request.topic);
    if (topic === undefined || topic.partitions.length === 0) return false;
    return this.bufferedBytes === 0 || this.bufferedBytes + request.bytes <= this.bufferBytesMax;
  }

  /** Move waiting send()s into the accumulator, in order, as metadata and buffer space allow. */
  private async pumpAppends(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.appendQueue.length > 0) {
        const head = this.appendQueue[0]!;
        const topic = this.cluster.topic(head.topic);
        if (topic === undefined || topic.partitions.length === 0) {
          try {
            await this.cluster.ensureTopic(head.topic, Math.min(this.deliveryTimeoutMs, this.requestTimeoutMs));
          } catch (error) {
            this.appendQueue.shift();
            this.settle(head, error instanceof Error ? error : new Error(String(error)));
            continue;
          }
        }
        if (!this.canAppend(head)) {
          await new Promise<void>((resolve) => {
            this.wakeAppender = resolve;
          });
          continue;
        }
        this.appendQueue.shift();
        this.append(head);
      }
    } finally {
      this.pumping = false;
    }
  }

  private append(request: SendRequest): void {
    const topic = this.cluster.topic(request.topic)!;
    const numPartitions = topic.partitions.length;
    if (request.explicitPartitions !== undefined) {
      for (const p of request.explicitPartitions) {
        if (p !== undefined && p >= numPartitions) {
          this.settle(request, new TributaryError('UNKNOWN_TOPIC_OR_PARTITION', `partition ${p} of topic ${request.topic} does not exist (it has ${numPartitions})`));
          return;
        }
      }
    }
    this.bufferedBytes += request.bytes;
    const records = request.records;
    for (let i = 0; i < records.length; i++) {
      const r = records[i]!;
      const size = request.sizes[i]!;
      let partition = request.explicitPartitions?.[i];
      const sticky = partition === undefined && r.key === null;
      if (partition === undefined) {
        partition = r.key !== null ? partitionForKey(r.key, numPartitions) : this.sticky.current(request.topic, numPartitions);
      }
      let q = this.queueFor(request.topic, partition);
      if (q.open !== undefined && q.open.bytes + size > this.batchBytesMax) {
        this.closeBatch(q);
        if (sticky) {
          // A full batch moves the sticky partition: follow it.
          this.sticky.onBatchFull(request.topic, partition, numPartitions);
          partition = this.sticky.current(request.topic, numPartitions);
          q = this.queueFor(request.topic, partition);
          // The new sticky partition may hold a part-filled batch from an earlier turn (switches
          // go by bytes, across batches): the record must fit that one too. It stays sticky.
          if (q.open !== undefined && q.open.bytes + size > this.batchBytesMax) this.closeBatch(q);
        }
      }
      const batch = q.open ?? this.openBatch(q);
      const index = batch.records.length;
      batch.records.push(r);
      batch.bytes += size;
      let entry = batch.entries[batch.entries.length - 1];
      if (entry === undefined || entry.send !== request) {
        let ack = request.ackByPartition.get(partition);
        if (ack === undefined) {
          ack = { topic: request.topic, partition, baseOffset: -1 };
          request.ackByPartition.set(partition, ack);
          request.acks.push(ack);
        }
        entry = { send: request, ack, firstIndex: index, count: 0, positions: request.offsets === undefined ? undefined : [] };
        batch.entries.push(entry);
        request.pendingBatches++;
      }
      entry.count++;
      entry.positions?.push(i);
      if (sticky) this.sticky.onAppended(request.topic, partition, size, numPartitions);
      if (batch.bytes >= this.batchBytesMax) {
        this.closeBatch(q);
        if (sticky) this.sticky.onBatchFull(request.topic, partition, numPartitions);
      } else if (
        batch.bytes >= this.pipelineBatchBytes &&
        q.inflight.size + q.ready.length < this.maxInFlightPerPartition &&
        !q.sequenceGap &&
        q.retryAtMs <= performance.now()
      ) {
        // The partition has room in flight: send this much now rather than one big batch, so
        // the leader and its followers work on it while the rest is gathered (a burst then
        // travels as a pipeline, not in turns). Not a full batch: the sticky partition stays.
        this.closeBatch(q);
      }
    }
    // The records live in their batches now; the send keeps only its bookkeeping.
    request.records.length = 0;
    request.sizes.length = 0;
    request.appended = true;
    if (request.pendingBatches === 0) this.settle(request, undefined);
  }

  private queueFor(topic: string, partition: number): PartitionQueue {
    let byPartition = this.queues.get(topic);
    if (byPartition === undefined) {
      byPartition = new Map();
      this.queues.set(topic, byPartition);
    }
    let q = byPartition.get(partition);
    if (q === undefined) {
      q = new PartitionQueue(topic, partition);
      byPartition.set(partition, q);
    }
    return q;
  }

  private openBatch(q: PartitionQueue): Batch {
    const batch = new Batch(q);
    q.open = batch;
    if (this.lingerMs > 0) {
      batch.lingerTimer = setTimeout(Producer.onLinger, this.lingerMs, this, batch);
    } else {
      this.lingerZero.add(q);
      if (!this.lingerZeroScheduled) {
        this.lingerZeroScheduled = true;
        setImmediate(Producer.onLingerZero, this);
      }
    }
    return batch;
  }

  private static onLinger(this: void, producer: Producer, batch: Batch): void {
    batch.lingerTimer = undefined;
    if (batch.queue.open === batch) producer.closeLingered(batch.queue);
  }

  private static onLingerZero(this: void, producer: Producer): void {
    producer.lingerZeroScheduled = false;
    for (const q of producer.lingerZero) if (q.open !== undefined) producer.closeLingered(q);
    producer.lingerZero.clear();
  }

  /**
   * The open batch of `q` lingered long enough. If the partition could send it now, close it;
   * if it could not (maxInFlightPerPartition batches in flight, or closed ones already waiting),
   * keep it open so records keep joining it until the sender has a slot, as Kafka's accumulator
   * does: under load batches grow instead of queueing up small, and every Produce, follower
   * fetch and ack that a batch costs is paid for more records.
   */
  private closeLingered(q: PartitionQueue): void {
    if (q.ready.length === 0 && q.inflight.size < this.maxInFlightPerPartition) this.closeBatch(q);
    else q.open!.lingered = true;
  }

  /** Close the open batch of `q`: encode it (stamping the sequence) and queue it for sending. */
  private closeBatch(q: PartitionQueue): void {
    const batch = q.open;
    if (batch === undefined) return;
    q.open = undefined;
    if (batch.lingerTimer !== undefined) clearTimeout(batch.lingerTimer);
    batch.lingerTimer = undefined;
    batch.recordCount = batch.records.length;
    batch.order = q.nextOrder++;
    const options: Parameters<typeof buildBatch>[0] = {
      records: batch.records,
      firstTimestamp: batch.records[0]!.timestamp ?? Date.now(),
      compression: this.compression,
    };
    if (this.idempotent) {
      if (q.inflight.size === 0 && q.ready.length === 0) {
        // Nothing of this partition is out: it may take the producer's current epoch now.
        if (q.sequenceGap) this.restartSequences(q);
        else if (q.producerId !== this.producerId || q.producerEpoch !== this.producerEpoch) this.adoptIdentity(q);
      }
      batch.baseSequence = q.nextSequence;
      q.nextSequence = (q.nextSequence + batch.recordCount) % SEQUENCE_MODULUS;
      options.producerId = q.producerId;
      options.producerEpoch = q.producerEpoch;
      options.baseSequence = batch.baseSequence;
    }
    batch.built = buildBatch(options);
    batch.records = [];
    batch.deadlineMs = performance.now() + this.deliveryTimeoutMs;
    q.ready.push(batch);
    this.scheduleDrain(0);
  }

  // ---- sending ------------------------------------------------------------------------------

  /** Run the sender soon: at once (next tick) for delayMs 0, else at the earliest asked time. */
  private scheduleDrain(delayMs: number): void {
    if (delayMs <= 0) {
      if (this.drainScheduled) return;
      this.drainScheduled = true;
      queueMicrotask(() => {
        this.drainScheduled = false;
        this.drain();
      });
      return;
    }
    const at = performance.now() + delayMs;
    if (this.drainTimer !== undefined && this.drainTimerAtMs <= at) return;
    if (this.drainTimer !== undefined) clearTimeout(this.drainTimer);
    this.drainTimerAtMs = at;
    this.drainTimer = setTimeout(() => {
      this.drainTimer = undefined;
      this.drainTimerAtMs = Infinity;
      this.drain();
    }, delayMs);
  }

  /**
   * Take what can be sent now: per partition the next ready batch (a retry only when nothing
   * else of the partition is in flight), per broker one Produce request. Repeats while partitions
   * have more batches and in-flight room.
   */
  private drain(): void {
    const now = performance.now();
    let needMetadata = false;
    let wakeInMs = Infinity;
    for (;;) {
      const byBroker = new Map<number, { batches: Batch[]; leaderEpochs: number[] }>();
      for (const byPartition of this.queues.values()) {
        for (const q of byPartition.values()) {
          if (q.open?.lingered === true && q.ready.length === 0 && q.inflight.size < this.maxInFlightPerPartition && q.retryAtMs <= now) this.closeBatch(q);
          if (q.ready.length === 0) continue;
          // Batches whose delivery deadline passed while waiting fail here.
          while (q.ready.length > 0 && q.ready[0]!.deadlineMs <= now) {
            const expired = q.ready.shift()!;
            this.failBatch(expired, expiredError(expired, this.deliveryTimeoutMs));
          }
          if (q.ready.length === 0) continue;
          wakeInMs = Math.min(wakeInMs, q.ready[0]!.deadlineMs - now);
          if (q.retryAtMs > now) {
            wakeInMs = Math.min(wakeInMs, q.retryAtMs - now);
            continue;
          }
          if (q.sequenceGap) {
            // Wait for what is in flight; then re-stamp, unless a batch sent after an unknown
            // failure must first be retried as it was to learn whether the gap is real.
            if (q.inflight.size > 0) continue;
            if (q.sequenceGapConfirmed || q.ready[0]!.attempts === 0) {
              this.restartSequences(q);
              if (q.sequenceGap) continue; // a new producer id is on its way
            }
          }
          const head = q.ready[0]!;
          if (head.attempts > 0 && q.inflight.size > 0) continue;
          if (q.inflight.size >= this.maxInFlightPerPartition) continue;
          const meta = this.cluster.partition(q.topic, q.partition);
          if (meta === undefined || meta.leader < 0 || !this.cluster.brokers.has(meta.leader)) {
            needMetadata = true;
            continue;
          }
          q.ready.shift();
          let group = byBroker.get(meta.leader);
          if (group === undefined) {
            group = { batches: [], leaderEpochs: [] };
            byBroker.set(meta.leader, group);
          }
          group.batches.push(head);
          group.leaderEpochs.push(meta.leaderEpoch);
          q.inflight.add(head);
          head.attempts++;
        }
      }
      if (byBroker.size === 0) break;
      for (const [brokerId, group] of byBroker) void this.sendToBroker(brokerId, group.batches, group.leaderEpochs);
    }
    if (needMetadata) {
      this.cluster.refresh(this.queues.keys()).then(
        () => this.scheduleDrain(0),
        () => this.scheduleDrain(backoffMs(0, this.retry)),
      );
    } else if (wakeInMs < Infinity) {
      this.scheduleDrain(Math.max(1, Math.ceil(wakeInMs)));
    }
  }

  private async sendToBroker(brokerId: number, batches: Batch[], leaderEpochs: number[]): Promise<void> {
    const topicData: ProduceRequest['topicData'] = [];
    const byTopic = new Map<string, ProduceRequest['topicData'][number]>();
    for (let i = 0; i < batches.length; i++) {
      const b = batches[i]!;
      let t = byTopic.get(b.queue.topic);
      if (t === undefined) {
        t = { name: b.queue.topic, partitionData: [] };
        byTopic.set(b.queue.topic, t);
        topicData.push(t);
      }
      t.partitionData.push({ index: b.queue.partition, currentLeaderEpoch: leaderEpochs[i]!, records: b.built! });
    }
    const body: ProduceRequest = { transactionalId: null, acks: this.acks, timeoutMs: this.requestTimeoutMs, topicData };
    let response: ProduceResponse;
    try {
      const connection = await this.cluster.connectionTo(brokerId);
      if (this.acks === 0) {
        if (!connection.send(ApiKey.Produce, body, { byReference: true })) throw new TributaryError('NETWORK_EXCEPTION', `connection to broker ${brokerId} closed`);
        for (const b of batches) this.completeBatch(b, -1);
        this.scheduleDrain(0);
        return;
      }
      // The broker waits up to timeoutMs for acks; give the round trip a little on top.
      response = await connection.request(ApiKey.Produce, body, { timeoutMs: this.requestTimeoutMs + 1000, byReference: true });
    } catch (error) {
      const e = error instanceof TributaryError ? error : new TributaryError('UNKNOWN_SERVER_ERROR', String(error), { cause: error });
      for (const b of batches) this.batchFailedAttempt(b, e);
      this.scheduleDrain(0);
      return;
    }
    const results = new Map<string, ProduceResponse['responses'][number]['partitionResponses'][number]>();
    for (const t of response.responses) for (const p of t.partitionResponses) results.set(`${t.name}\u0000${p.index}`, p);
    for (const b of batches) {
      const r = results.get(`${b.queue.topic}\u0000${b.queue.partition}`);
      if (r === undefined) {
        this.batchFailedAttempt(b, new TributaryError('UNKNOWN_SERVER_ERROR', `the Produce response has no result for ${b.queue.topic}-${b.queue.partition}`));
        continue;
      }
      if (r.errorCode === 0) {
        this.completeBatch(b, r.baseOffset);
        continue;
      }
      const name = errorNameOf(r.errorCode);
      if (name === 'DUPLICATE_SEQUENCE_NUMBER' && this.idempotent) {
        // The broker already has this batch (an earlier attempt landed): it counts as written.
        this.completeBatch(b, r.baseOffset);
        continue;
      }
      this.batchFailedAttempt(b, new TributaryError(name, r.errorMessage ?? `partition ${b.queue.topic}-${b.queue.partition}: ${ERRORS[name].message}`), true);
    }
    this.scheduleDrain(0);
  }

  /**
   * An attempt failed: re-queue it (in partition order) for a retry, or fail it for good.
   * `answered`: the broker refused the batch in its response (rather than the request failing).
   */
  private batchFailedAttempt(b: Batch, error: TributaryError, answered = false): void {
    const q = b.queue;
    q.inflight.delete(b);
    b.lastError = error;
    let retriable = isRetriable(error);
    if (!retriable && this.idempotent && error.code === 'OUT_OF_ORDER_SEQUENCE_NUMBER') {
      if (this.hasEarlierPending(q, b)) {
        // The failure of an earlier batch still pending echoing: retry after that one.
        retriable = true;
      } else if (q.sequenceGap) {
        // Behind a batch that failed for good: this one was not written, nor anything after
        // it (the broker takes sequences only in order). Re-stamp it under a new epoch.
        q.sequenceGapConfirmed = true;
        retriable = true;
      }
    }
    const now = performance.now();
    if (!retriable || b.attempts > this.retries || now >= b.deadlineMs) {
      this.failBatch(b, error, answered && !retriable);
      return;
    }
    let at = 0;
    while (at < q.ready.length && q.ready[at]!.order < b.order) at++;
    q.ready.splice(at, 0, b);
    q.retryAtMs = Math.max(q.retryAtMs, now + backoffMs(b.attempts - 1, this.retry));
    if (needsMetadataRefresh(error.code)) {
      this.cluster.refresh(this.queues.keys()).then(
        () => this.scheduleDrain(0),
        () => undefined,
      );
    }
    this.scheduleDrain(Math.max(1, Math.ceil(q.retryAtMs - now)));
  }

  private hasEarlierPending(q: PartitionQueue, b: Batch): boolean {
    for (const other of q.inflight) if (other.order < b.order) return true;
    for (const other of q.ready) if (other.order < b.order) return true;
    return false;
  }

  private completeBatch(b: Batch, baseOffset: number): void {
    const q = b.queue;
    q.inflight.delete(b);
    // A batch sent after one that failed with an unknown outcome was written in sequence:
    // the failed one was written after all, and the sequences go on without a gap.
    if (q.sequenceGap && !q.sequenceGapConfirmed && b.order > q.sequenceGapOrder) q.sequenceGap = false;
    for (const e of b.entries) {
      const send = e.send;
      if (send.done) continue;
      const first = baseOffset < 0 ? -1 : baseOffset + e.firstIndex;
      if (e.ack.baseOffset < 0 || (first >= 0 && first < e.ack.baseOffset)) e.ack.baseOffset = first;
      if (e.positions !== undefined && send.offsets !== undefined) {
        for (let k = 0; k < e.positions.length; k++) {
          send.offsets[e.positions[k]!] = { partition: b.queue.partition, offset: baseOffset < 0 ? -1 : baseOffset + e.firstIndex + k };
        }
      }
      send.pendingBatches--;
      if (send.pendingBatches === 0 && send.appended) this.settle(send, undefined);
    }
    this.release(b);
  }

  /** `refused`: the broker answered that it did not write this batch (a non-retriable error). */
  private failBatch(b: Batch, error: TributaryError, refused = false): void {
    const q = b.queue;
    q.inflight.delete(b);
    if (this.idempotent && b.baseSequence >= 0) {
      // Its sequences are lost: the next ones of this partition must restart (KIP-360).
      const notWritten = refused || b.attempts === 0;
      if (!q.sequenceGap) q.sequenceGapConfirmed = notWritten;
      else q.sequenceGapConfirmed &&= notWritten;
      q.sequenceGap = true;
      q.sequenceGapOrder = Math.max(q.sequenceGapOrder, b.order);
      this.scheduleDrain(0);
    }
    for (const e of b.entries) {
      e.send.pendingBatches--;
      this.settle(e.send, error);
    }
    this.release(b);
  }

  /** The batch is done: give its bytes back to the buffer and wake a waiting send(). */
  private release(b: Batch): void {
    this.bufferedBytes -= b.bytes;
    b.bytes = 0;
    b.built = undefined;
    const wake = this.wakeAppender;
    if (wake !== undefined) {
      this.wakeAppender = undefined;
      wake();
    }
  }

  private settle(send: SendRequest, error: Error | undefined): void {
    if (send.done) return;
    send.done = true;
    if (error === undefined) send.resolve(send.acks);
    else send.reject(error);
    this.outstanding--;
    if (this.outstanding === 0 && this.idleWaiters.length > 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  /** Take the producer's current id and epoch for a partition with nothing out: sequences from 0. */
  private adoptIdentity(q: PartitionQueue): void {
    q.producerId = this.producerId;
    q.producerEpoch = this.producerEpoch;
    q.nextSequence = 0;
  }

  /**
   * Close a sequence gap (nothing of `q` in flight): bump the producer epoch unless another
   * partition already did since `q` last stamped, then re-stamp q's waiting batches from
   * sequence 0, in order. Leaves the gap open while a new producer id is being fetched.
   */
  private restartSequences(q: PartitionQueue): void {
    if (q.producerId === this.producerId && q.producerEpoch === this.producerEpoch) {
      if (this.producerEpoch >= PRODUCER_EPOCH_MAX) {
        this.renewProducerId();
        return;
      }
      this.producerEpoch++;
    }
    this.adoptIdentity(q);
    for (const b of q.ready) {
      b.built = withProducerIdentity(b.built!, q.producerId, q.producerEpoch, q.nextSequence);
      b.baseSequence = q.nextSequence;
      q.nextSequence = (q.nextSequence + b.recordCount) % SEQUENCE_MODULUS;
    }
    q.sequenceGap = false;
    q.sequenceGapConfirmed = false;
  }

  private renewProducerId(): void {
    if (this.renewingProducerId) return;
    this.renewingProducerId = true;
    this.initProducerId().then(
      () => {
        this.renewingProducerId = false;
        this.scheduleDrain(0);
      },
      () => {
        this.renewingProducerId = false;
        this.scheduleDrain(backoffMs(0, this.retry));
      },
    );
  }

  private async initProducerId(): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      let response;
      try {
        response = await this.cluster.requestAny(ApiKey.InitProducerId, { transactionalId: null, transactionTimeoutMs: -1, producerId: -1, producerEpoch: -1 });
      } catch (error) {
        if (error instanceof TributaryError && error.code === 'UNSUPPORTED_VERSION') {
          throw new TributaryError('UNSUPPORTED_VERSION', `idempotent producer: the broker does not support InitProducerId (${error.message}); connect with idempotent: false`, { cause: error });
        }
        throw error;
      }
      if (response.errorCode === 0) {
        this.producerId = response.producerId;
        this.producerEpoch = response.producerEpoch;
        return;
      }
      const name = errorNameOf(response.errorCode);
      // E.g. NOT_CONTROLLER or COORDINATOR_NOT_AVAILABLE while the controller fails over.
      if (!ERRORS[name].retriable || attempt >= this.retry.retries) {
        throw new TributaryError(name, `idempotent producer: InitProducerId failed: ${ERRORS[name].message}`);
      }
      await new Promise((resolve) => setTimeout(resolve, backoffMs(attempt, this.retry)));
    }
  }
}

function wireAcks(acks: Acks): -1 | 0 | 1 {
  if (acks === 'all' || acks === -1) return -1;
  if (acks === 0 || acks === 1) return acks;
  throw new TributaryError('INVALID_CONFIG', `acks must be 'all', -1, 0 or 1, got ${String(acks)}`);
}

/** messages[index].field as bytes; the field's name is only put together for the error. */
function toBytes(value: string | Uint8Array | null | undefined, index: number, field: string): Buffer | null {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string') return Buffer.from(value, 'utf8');
  if (Buffer.isBuffer(value)) return value;
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  throw new TributaryError('INVALID_REQUEST', `messages[${index}].${field}: expected a string, a Buffer or null`);
}

/**
 * A batch whose delivery deadline passed while it waited for a retry: it fails with the error
 * that kept it from being written (e.g. NOT_ENOUGH_REPLICAS with the broker's message), which
 * says more than a timeout would; REQUEST_TIMED_OUT only if it never got an answer.
 */
function expiredError(b: Batch, deliveryTimeoutMs: number): TributaryError {
  if (b.lastError !== undefined) return b.lastError;
  const code: ErrorName = 'REQUEST_TIMED_OUT';
  return new TributaryError(code, `batch for ${b.queue.topic}-${b.queue.partition} not acknowledged within deliveryTimeoutMs=${deliveryTimeoutMs}`);
}


