/**
 * A tiny schema combinator for the wire protocol: each API declares its request and response
 * shapes once, and from that one declaration we get
 *   - the TypeScript type (`Infer<typeof schema>`),
 *   - `decode`: wire value (as msgpack gave it) → typed value, checking every field and limit,
 *   - `encode`: typed value → wire value (what msgpack should write),
 *   - `info`: a plain description that tests walk to generate random valid and invalid values.
 *
 * Wire layout: a struct travels as a msgpack ARRAY of its field values in declaration order
 * (see frame.ts for why). So the order of fields in a `struct({...})` call IS the wire format:
 * never reorder or insert fields in an existing version; the golden frames in
 * test/protocol/golden/ fail if you do.
 *
 * Cost: decoding allocates only the objects the caller gets back (one per struct); arrays of
 * structs are converted in place, so msgpack's arrays are reused. On success nothing else is
 * allocated: a failure is signalled by returning the INVALID sentinel and recording the reason
 * in module state, and each enclosing struct/array adds its path segment on the way out, so the
 * path string ('topics[2].partitions[0].fetchOffset') is built only when something is wrong.
 */
import { invalidRequest, type TributaryError } from './errors.js';

declare const TYPE: unique symbol;

/** Returned by `decode` when the wire value does not match; details are in `lastFailure`. */
export interface Invalid {
  readonly invalid: true;
}
const INVALID: Invalid = Object.freeze({ invalid: true });

/** What the schema is, for introspection (tests generate values from it; docs could too). */
export type SchemaInfo =
  | { readonly kind: 'int'; readonly min: number; readonly max: number }
  | { readonly kind: 'bool' }
  | { readonly kind: 'string'; readonly maxBytes: number; readonly pattern: RegExp | undefined }
  | { readonly kind: 'bytes'; readonly maxBytes: number }
  | { readonly kind: 'literal'; readonly values: readonly Literal[] }
  | { readonly kind: 'nullable'; readonly inner: Schema<unknown> }
  | { readonly kind: 'optional'; readonly inner: Schema<unknown> }
  | { readonly kind: 'array'; readonly item: Schema<unknown>; readonly maxItems: number }
  | { readonly kind: 'struct'; readonly fields: ReadonlyArray<readonly [string, Schema<unknown>]> }
  | { readonly kind: 'variant'; readonly tagKey: string; readonly cases: ReadonlyArray<readonly [string, Schema<unknown>]> };

export type Literal = string | number | boolean;

export interface Schema<T> {
  /** Phantom: carries T for `Infer`; never set at run time. */
  readonly [TYPE]: T;
  readonly info: SchemaInfo;
  /** True when `encode` returns its argument unchanged, so arrays of it need no copy. */
  readonly encodeIsIdentity: boolean;
  /** Wire value → typed value, or INVALID (see `lastFailure`). May reuse the wire value's arrays. */
  decode(wire: unknown): T | Invalid;
  /** Typed value → wire value. Trusts its input (the type system checked it). */
  encode(value: T): unknown;
}

/** A schema whose struct field may be absent; `struct` makes such fields optional (`?:`). */
export interface OptionalSchema<T> extends Schema<T | undefined> {
  readonly optionalField: true;
}

export type Infer<S> = S extends Schema<infer T> ? T : never;

// ---- failure bookkeeping -------------------------------------------------------------------

interface Failure {
  /** Path segments, innermost first: field names and array indexes. */
  segments: Array<string | number>;
  why: string;
}
const failure: Failure = { segments: [], why: '' };

function fail(why: string): Invalid {
  failure.segments.length = 0;
  failure.why = why;
  return INVALID;
}

function isInvalid(value: unknown): value is Invalid {
  return value === INVALID;
}

/** A short description of a wrong value for error messages; never echoes long user data. */
function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'nothing';
  switch (typeof value) {
    case 'number':
      return Number.isInteger(value) && Math.abs(value) < 1e15 ? String(value) : `the number ${value}`;
    case 'string':
      return value.length <= 32 ? `the string ${JSON.stringify(value)}` : `a string of ${value.length} characters`;
    case 'boolean':
      return String(value);
    case 'bigint':
      return 'an integer outside the safe range';
    default:
      if (value instanceof Uint8Array) return `${value.byteLength} bytes`;
      if (Array.isArray(value)) return `an array of ${value.length}`;
      return 'a map';
  }
}

function formatPath(prefix: string, segments: ReadonlyArray<string | number>): string {
  let path = prefix;
  for (let i = segments.length - 1; i >= 0; i--) {
    const segment = segments[i];
    if (typeof segment === 'number') path += `[${segment}]`;
    else path += path === '' ? segment : `.${segment}`;
  }
  return path === '' ? '(root)' : path;
}

/**
 * Decode and check a wire value; returns the typed value or throws INVALID_REQUEST naming the
 * exact field, e.g. `topics[2].partitions[0].fetchOffset: expected an integer >= 0, got -5`.
 * `path` prefixes the field path (e.g. 'body'). The wire value's arrays may be reused.
 */
export function validate<T>(schema: Schema<T>, wire: unknown, path = ''): T {
  const result = schema.decode(wire);
  if (isInvalid(result)) throw validationError(path);
  return result;
}

/** The TributaryError for the most recent failed `decode` (for callers that decode directly). */
export function validationError(path = ''): TributaryError {
  return invalidRequest(formatPath(path, failure.segments), failure.why);
}

/** 'field.path: why' for the most recent failed `decode`, to build a subclass of TributaryError. */
export function validationMessage(path = ''): string {
  return `${formatPath(path, failure.segments)}: ${failure.why}`;
}

export { isInvalid };

/** The parts of a schema that exist at run time; `make` adds the phantom type. */
type SchemaParts<T> = Omit<Schema<T>, typeof TYPE>;
function make<T>(parts: SchemaParts<T>): Schema<T> {
  return parts as Schema<T>;
}

// ---- leaves --------------------------------------------------------------------------------

const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const INT32_MIN = -0x80000000;
const UINT32_MAX = 0xffffffff;

function intRangeText(min: number, max: number): string {
  if (max >= MAX_SAFE) return min <= -MAX_SAFE ? 'expected a safe integer (|n| < 2^53)' : `expected an integer >= ${min}`;
  return `expected an integer in [${min}, ${max}]`;
}

/**
 * An integer in [min, max]. Integers outside 32 bits are written as msgpack int64 (via BigInt)
 * rather than msgpackr's default float64, so typed clients in other languages read them as
 * integers; the decoder (int64AsType 'number', see frame.ts) turns them back into numbers.
 */
export function int(min: number, max: number): Schema<number> {
  if (!Number.isSafeInteger(min) || !Number.isSafeInteger(max) || min > max) {
    throw new RangeError(`int(${min}, ${max}): bounds must be safe integers with min <= max`);
  }
  const wide = min < INT32_MIN || max > UINT32_MAX;
  const rangeText = intRangeText(min, max);
  return make<number>({
    info: { kind: 'int', min, max },
    encodeIsIdentity: !wide,
    decode(wire) {
      if (typeof wire === 'number' && Number.isInteger(wire) && wire >= min && wire <= max) return wire;
      return fail(`${rangeText}, got ${describe(wire)}`);
    },
    encode: wide
      ? (value: number) => (value > UINT32_MAX || value < INT32_MIN ? BigInt(value) : value)
      : (value: number) => value,
  });
}

export const int8 = int(-0x80, 0x7f);
export const int16 = int(-0x8000, 0x7fff);
export const int32 = int(INT32_MIN, 0x7fffffff);
/** Offsets, timestamps, producer ids: int64 on disk, but a JS number, so limited to ±(2^53-1). */
export const int64 = int(-MAX_SAFE, MAX_SAFE);

export const bool: Schema<boolean> = make<boolean>({
  info: { kind: 'bool' },
  encodeIsIdentity: true,
  decode(wire) {
    return typeof wire === 'boolean' ? wire : fail(`expected a boolean, got ${describe(wire)}`);
  },
  encode: (value: boolean) => value,
});

/** A UTF-8 string of at most `maxBytes` bytes, optionally matching `pattern`. */
export function string(options: { maxBytes: number; pattern?: RegExp }): Schema<string> {
  const { maxBytes, pattern } = options;
  return make<string>({
    info: { kind: 'string', maxBytes, pattern },
    encodeIsIdentity: true,
    decode(wire) {
      if (typeof wire !== 'string') return fail(`expected a string, got ${describe(wire)}`);
      // A UTF-16 unit is 1..3 UTF-8 bytes, so only count bytes when the length leaves doubt.
      if (wire.length > maxBytes || (wire.length * 3 > maxBytes && Buffer.byteLength(wire, 'utf8') > maxBytes)) {
        return fail(`expected a string of at most ${maxBytes} UTF-8 bytes, got ${describe(wire)}`);
      }
      if (pattern !== undefined && !pattern.test(wire)) return fail(`expected a string matching ${pattern}, got ${describe(wire)}`);
      return wire;
    },
    encode: (value: string) => value,
  });
}

/**
 * Raw bytes (msgpack bin) of at most `maxBytes`. Decoding returns the slice msgpackr made of
 * the received buffer: no copy (record batches go from socket to disk untouched).
 */
export function bytes(options: { maxBytes: number }): Schema<Uint8Array> {
  const { maxBytes } = options;
  return make<Uint8Array>({
    info: { kind: 'bytes', maxBytes },
    encodeIsIdentity: true,
    decode(wire) {
      if (!(wire instanceof Uint8Array)) return fail(`expected bytes, got ${describe(wire)}`);
      if (wire.byteLength > maxBytes) return fail(`expected at most ${maxBytes} bytes, got ${wire.byteLength}`);
      return wire;
    },
    encode: (value: Uint8Array) => value,
  });
}

/** One of a fixed set of values (acks -1|0|1, resource types, ...). */
export function literal<const V extends readonly Literal[]>(...values: V): Schema<V[number]> {
  const text = `expected one of ${values.map((v) => JSON.stringify(v)).join(', ')}`;
  return make<V[number]>({
    info: { kind: 'literal', values },
    encodeIsIdentity: true,
    decode(wire) {
      for (let i = 0; i < values.length; i++) if (values[i] === wire) return wire as V[number];
      return fail(`${text}, got ${describe(wire)}`);
    },
    encode: (value: V[number]) => value,
  });
}

// ---- wrappers ------------------------------------------------------------------------------

/** The value or null (msgpack nil). */
export function nullable<T>(inner: Schema<T>): Schema<T | null> {
  return make<T | null>({
    info: { kind: 'nullable', inner },
    encodeIsIdentity: inner.encodeIsIdentity,
    decode(wire) {
      return wire === null ? null : inner.decode(wire);
    },
    encode: (value: T | null) => (value === null ? null : inner.encode(value)),
  });
}

/**
 * A struct field that may be absent. On the wire an absent field is nil (the position must
 * still be there); decoding leaves the key out of the object, so `'key' in obj` is false.
 */
export function optional<T>(inner: Schema<T>): OptionalSchema<T> {
  const schema = make<T | undefined>({
    info: { kind: 'optional', inner },
    // undefined must become nil: msgpackr would otherwise write its own undefined extension.
    encodeIsIdentity: false,
    decode(wire) {
      return wire === null || wire === undefined ? undefined : inner.decode(wire);
    },
    encode: (value: T | undefined) => (value === undefined ? null : inner.encode(value)),
  });
  return Object.assign(schema, { optionalField: true as const });
}

/** A list of at most `maxItems` items. */
export function array<T>(item: Schema<T>, options: { maxItems: number }): Schema<T[]> {
  const { maxItems } = options;
  const itemIsIdentity = item.encodeIsIdentity;
  return make<T[]>({
    info: { kind: 'array', item, maxItems },
    encodeIsIdentity: itemIsIdentity,
    decode(wire) {
      if (!Array.isArray(wire)) return fail(`expected an array, got ${describe(wire)}`);
      if (wire.length > maxItems) return fail(`expected at most ${maxItems} items, got ${wire.length}`);
      for (let i = 0; i < wire.length; i++) {
        const raw: unknown = wire[i];
        const decoded = item.decode(raw);
        if (isInvalid(decoded)) {
          failure.segments.push(i);
          return INVALID;
        }
        // Structs become objects; write them back into msgpack's fresh array instead of copying it.
        if (decoded !== raw) wire[i] = decoded;
      }
      return wire as T[];
    },
    encode(value: T[]) {
      if (itemIsIdentity) return value;
      const out = new Array<unknown>(value.length);
      for (let i = 0; i < value.length; i++) out[i] = item.encode(value[i] as T);
      return out;
    },
  });
}

type Fields = { readonly [name: string]: Schema<unknown> };
type OptionalKeys<F extends Fields> = { [K in keyof F]: F[K] extends OptionalSchema<unknown> ? K : never }[keyof F];
type Simplify<T> = { [K in keyof T]: T[K] } & {};
export type StructOf<F extends Fields> = Simplify<
  { -readonly [K in Exclude<keyof F, OptionalKeys<F>>]: Infer<F[K]> } & {
    -readonly [K in OptionalKeys<F>]?: Exclude<Infer<F[K]>, undefined>;
  }
>;

/**
 * A record with named fields, sent as an array of the field values in declaration order.
 * Keys of the wire map are not sent; the receiver knows them from this schema.
 */
export function struct<F extends Fields>(fields: F): Schema<StructOf<F>> {
  const entries = Object.entries(fields) as Array<[string, Schema<unknown>]>;
  const names = entries.map(([name]) => name);
  const schemas = entries.map(([, schema]) => schema);
  const count = entries.length;
  const shapeText = `expected an array of ${count} fields [${names.join(', ')}]`;
  return make<StructOf<F>>({
    info: { kind: 'struct', fields: entries },
    encodeIsIdentity: false,
    decode(wire) {
      if (!Array.isArray(wire) || wire.length !== count) return fail(`${shapeText}, got ${describe(wire)}`);
      const out: Record<string, unknown> = {};
      for (let i = 0; i < count; i++) {
        const decoded = (schemas[i] as Schema<unknown>).decode(wire[i]);
        if (isInvalid(decoded)) {
          failure.segments.push(names[i] as string);
          return INVALID;
        }
        // Absent optional fields stay absent, so a decoded value deep-equals the one encoded.
        if (decoded !== undefined) out[names[i] as string] = decoded;
      }
      // Every field was checked against its schema above, which is what the cast states.
      return out as StructOf<F>;
    },
    encode(value: StructOf<F>) {
      const source = value as Record<string, unknown>;
      const out = new Array<unknown>(count);
      for (let i = 0; i < count; i++) out[i] = (schemas[i] as Schema<unknown>).encode(source[names[i] as string]);
      return out;
    },
  });
}

type Cases = { readonly [tag: string]: Schema<object> };
export type VariantOf<Tag extends string, C extends Cases> = {
  [K in keyof C & string]: Simplify<{ -readonly [P in Tag]: K } & Infer<C[K]>>;
}[keyof C & string];

interface VariantCase {
  readonly names: readonly string[];
  readonly schemas: ReadonlyArray<Schema<unknown>>;
  readonly shapeText: string;
}

/**
 * A tagged union of structs: `variant('type', { Vote: struct({...}), VoteResp: struct({...}) })`
 * is `{ type: 'Vote', ... } | { type: 'VoteResp', ... }`. On the wire a value is ONE array, the
 * tag first and then its struct's fields in declaration order (`['Vote', from, to, term, ...]`),
 * so a union costs no more than a struct. The tag names the case, so adding a case is
 * compatible; changing a case's fields is not (golden frames catch it).
 */
export function variant<const Tag extends string, C extends Cases>(tagKey: Tag, cases: C): Schema<VariantOf<Tag, C>> {
  const table = new Map<string, VariantCase>();
  const entries = Object.entries(cases) as Array<[string, Schema<unknown>]>;
  for (const [tag, schema] of entries) {
    const info = schema.info;
    if (info.kind !== 'struct') throw new RangeError(`variant ${tag}: each case must be a struct`);
    const names = info.fields.map(([name]) => name);
    if (names.includes(tagKey)) throw new RangeError(`variant ${tag}: a case may not declare the tag field ${tagKey}`);
    table.set(tag, {
      names,
      schemas: info.fields.map(([, field]) => field),
      shapeText: `expected an array of ${names.length + 1} fields [${[tagKey, ...names].join(', ')}]`,
    });
  }
  if (table.size === 0) throw new RangeError('variant: at least one case');
  const tagsText = `expected one of ${[...table.keys()].map((t) => JSON.stringify(t)).join(', ')}`;
  return make<VariantOf<Tag, C>>({
    info: { kind: 'variant', tagKey, cases: entries },
    encodeIsIdentity: false,
    decode(wire) {
      if (!Array.isArray(wire) || wire.length === 0) return fail(`expected an array [${tagKey}, ...fields], got ${describe(wire)}`);
      const tag: unknown = wire[0];
      const entry = typeof tag === 'string' ? table.get(tag) : undefined;
      if (entry === undefined) {
        fail(`${tagsText}, got ${describe(tag)}`);
        failure.segments.push(tagKey);
        return INVALID;
      }
      const { names, schemas } = entry;
      const count = names.length;
      if (wire.length !== count + 1) return fail(`${entry.shapeText}, got ${describe(wire)}`);
      const out: Record<string, unknown> = { [tagKey]: tag };
      for (let i = 0; i < count; i++) {
        const decoded = (schemas[i] as Schema<unknown>).decode(wire[i + 1]);
        if (isInvalid(decoded)) {
          failure.segments.push(names[i] as string);
          return INVALID;
        }
        if (decoded !== undefined) out[names[i] as string] = decoded;
      }
      // The tag selected the case and every field was checked against it.
      return out as VariantOf<Tag, C>;
    },
    encode(value: VariantOf<Tag, C>) {
      const source = value as Record<string, unknown>;
      const tag = source[tagKey] as string;
      const entry = table.get(tag);
      if (entry === undefined) throw new Error(`assertion: variant tag ${String(tag)} is not one of this schema's cases`);
      const count = entry.names.length;
      const out = new Array<unknown>(count + 1);
      out[0] = tag;
      for (let i = 0; i < count; i++) out[i + 1] = (entry.schemas[i] as Schema<unknown>).encode(source[entry.names[i] as string]);
      return out;
    },
  });
}
