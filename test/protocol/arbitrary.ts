/**
 * fast-check helpers driven by the schemas themselves (SchemaInfo), so every API gets random
 * valid values and targeted invalid ones without hand-written generators.
 */
import fc from 'fast-check';
import type { Schema } from '../../protocol/schema.js';

const INT32_MIN = -0x80000000;
const INT32_MAX = 0x7fffffff;

/** Random values the schema accepts. Sizes are kept small so properties run fast. */
export function arbitraryFor(schema: Schema<unknown>): fc.Arbitrary<unknown> {
  const info = schema.info;
  switch (info.kind) {
    case 'int': {
      const { min, max } = info;
      const narrow = fc.integer({ min: Math.max(min, INT32_MIN), max: Math.min(max, INT32_MAX) });
      if (min >= INT32_MIN && max <= INT32_MAX) return fc.oneof(narrow, fc.constantFrom(min, max));
      const wide = fc.bigInt({ min: BigInt(min), max: BigInt(max) }).map(Number);
      return fc.oneof(narrow, wide, fc.constantFrom(min, max));
    }
    case 'bool':
      return fc.boolean();
    case 'string':
      if (info.pattern !== undefined) return fc.stringMatching(info.pattern).filter((s) => Buffer.byteLength(s) <= info.maxBytes);
      // 'binary' units are whole code points (no lone surrogates), at most 4 UTF-8 bytes each.
      return fc.string({ unit: 'binary', maxLength: Math.min(12, Math.floor(info.maxBytes / 4)) });
    case 'bytes':
      return fc.uint8Array({ maxLength: Math.min(48, info.maxBytes) }).map((u) => Buffer.from(u));
    case 'literal':
      return fc.constantFrom(...info.values);
    case 'nullable':
      return fc.option(arbitraryFor(info.inner), { nil: null });
    case 'optional':
      return fc.option(arbitraryFor(info.inner), { nil: undefined });
    case 'array':
      return fc.array(arbitraryFor(info.item), { maxLength: Math.min(3, info.maxItems) });
    case 'struct': {
      const model: Record<string, fc.Arbitrary<unknown>> = {};
      const requiredKeys: string[] = [];
      for (const [name, field] of info.fields) {
        if (field.info.kind === 'optional') {
          model[name] = arbitraryFor(field.info.inner);
        } else {
          model[name] = arbitraryFor(field);
          requiredKeys.push(name);
        }
      }
      // Optional fields are absent (key left out) or present, as decode produces them.
      return fc.record(model, { requiredKeys, noNullPrototype: true });
    }
    case 'variant': {
      const { tagKey } = info;
      return fc.oneof(...info.cases.map(([tag, schema]) => arbitraryFor(schema).map((value) => ({ [tagKey]: tag, ...(value as object) }))));
    }
  }
}

/** A place in a WIRE value (nested arrays) where a wrong value can go, and what the error names. */
export interface MutationSite {
  /** Indexes from the wire root down to the value to replace; [] = the root itself. */
  readonly indexes: readonly number[];
  /** The field path the decoder should report, as `validate` formats it. */
  readonly path: string;
  /** Values the schema at this place must reject. */
  readonly wrongValues: readonly unknown[];
}

/** Values of the wrong type (or range) for a schema; never one it accepts. */
export function wrongValuesFor(schema: Schema<unknown>): unknown[] {
  const info = schema.info;
  switch (info.kind) {
    case 'int': {
      const out: unknown[] = ['7', 1.5, true, [], new Uint8Array(1)];
      if (info.max < Number.MAX_SAFE_INTEGER) out.push(info.max + 1);
      if (info.min > -Number.MAX_SAFE_INTEGER) out.push(info.min - 1);
      return out;
    }
    case 'bool':
      return [0, 'true', null];
    case 'string':
      return [7, new Uint8Array(2), null, 'x'.repeat(info.maxBytes + 1)];
    case 'bytes':
      return ['abc', 7, [1, 2], new Uint8Array(info.maxBytes + 1)];
    case 'literal':
      return ['nope', 999, null];
    case 'nullable':
      return wrongValuesFor(info.inner).filter((v) => v !== null);
    case 'optional':
      return wrongValuesFor(info.inner).filter((v) => v !== null && v !== undefined);
    case 'array': {
      const out: unknown[] = ['x', 7, null, new Uint8Array(1)];
      if (info.maxItems <= 1000) out.push(new Array(info.maxItems + 1).fill(0));
      return out;
    }
    case 'struct':
      return [7, 'x', null, new Array(info.fields.length + 1).fill(0)];
    case 'variant': {
      // A known tag with one field too many: wrong at the variant itself, not at its tag.
      const [tag, first] = info.cases[0] as readonly [string, Schema<unknown>];
      const fieldCount = first.info.kind === 'struct' ? first.info.fields.length : 0;
      return [7, 'x', null, [], [tag, ...new Array(fieldCount + 1).fill(0)]];
    }
  }
}

/** Every mutation site of `wire` (the encoded form of a valid value of `schema`). */
export function mutationSites(schema: Schema<unknown>, wire: unknown, indexes: number[] = [], path = ''): MutationSite[] {
  const sites: MutationSite[] = [{ indexes, path: path === '' ? '(root)' : path, wrongValues: wrongValuesFor(schema) }];
  let info = schema.info;
  // Look through nullable/optional to the value inside, when there is one.
  while ((info.kind === 'nullable' || info.kind === 'optional') && wire !== null) info = info.inner.info;
  if (info.kind === 'array' && Array.isArray(wire)) {
    wire.forEach((item, i) => sites.push(...mutationSites(info.item, item, [...indexes, i], `${path}[${i}]`)));
  } else if (info.kind === 'struct' && Array.isArray(wire)) {
    info.fields.forEach(([name, field], i) =>
      sites.push(...mutationSites(field, wire[i], [...indexes, i], path === '' ? name : `${path}.${name}`)),
    );
  } else if (info.kind === 'variant' && Array.isArray(wire)) {
    // [tag, ...fields of the tag's struct]
    const join = (name: string) => (path === '' ? name : `${path}.${name}`);
    sites.push({ indexes: [...indexes, 0], path: join(info.tagKey), wrongValues: ['nope', 999, null] });
    const struct = info.cases.find(([tag]) => tag === wire[0])?.[1];
    if (struct !== undefined && struct.info.kind === 'struct') {
      struct.info.fields.forEach(([name, field], i) => sites.push(...mutationSites(field, wire[i + 1], [...indexes, i + 1], join(name))));
    }
  }
  return sites;
}

/** A copy of `wire` with the value at `indexes` replaced. */
export function replaceAt(wire: unknown, indexes: readonly number[], value: unknown): unknown {
  if (indexes.length === 0) return value;
  const [first, ...rest] = indexes as [number, ...number[]];
  const copy = [...(wire as unknown[])];
  copy[first] = replaceAt(copy[first], rest, value);
  return copy;
}
