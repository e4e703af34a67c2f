/** docs/ERRORS.md must list exactly the errors of protocol/errors.ts, with the same numbers and retriable flags. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { ERRORS, type ErrorName } from '../../protocol/errors.js';

const DOC = new URL('../../../docs/ERRORS.md', import.meta.url);

interface Row {
  code: number;
  name: string;
  retriable: string;
}

function tableRows(markdown: string): Row[] {
  const rows: Row[] = [];
  for (const line of markdown.split('\n')) {
    // | 42 | `INVALID_REQUEST` | no | ... |
    const match = /^\|\s*(-?\d+)\s*\|\s*`?([A-Z_]+)`?\s*\|\s*(yes|no)\s*\|/.exec(line);
    if (match !== null) rows.push({ code: Number(match[1]), name: match[2] as string, retriable: match[3] as string });
  }
  return rows;
}

test('docs/ERRORS.md lists exactly the errors in ERRORS', () => {
  const rows = tableRows(readFileSync(DOC, 'utf8'));
  const documented = rows.map((r) => `${r.code} ${r.name} retriable=${r.retriable}`).sort();
  const actual = (Object.keys(ERRORS) as ErrorName[])
    .map((name) => `${ERRORS[name].code} ${name} retriable=${ERRORS[name].retriable ? 'yes' : 'no'}`)
    .sort();
  assert.deepEqual(documented, actual);
});

test('docs/ERRORS.md lists each error once, in number order', () => {
  const codes = tableRows(readFileSync(DOC, 'utf8')).map((r) => r.code);
  assert.deepEqual(codes, [...codes].sort((a, b) => a - b));
  assert.equal(new Set(codes).size, codes.length);
});
