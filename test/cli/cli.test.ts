import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildBatch, stampBatch } from '../../protocol/record-batch.js';

const BIN = join(process.cwd(), 'bin', 'tributary.js');

function run(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 20_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('--help lists the commands and exits 0', () => {
  const r = run('--help');
  assert.equal(r.code, 0);
  assert.match(r.stdout, /dump-log/);
});

test('an unknown command gives one line on stderr and exit code 2', () => {
  const r = run('frobnicate');
  assert.equal(r.code, 2);
  assert.equal(r.stderr.trim().split('\n').length, 1);
  assert.match(r.stderr, /^tributary: .*frobnicate/);
});

test('a bad flag gives one line and exit code 2', () => {
  const r = run('dump-log', 'x.log', '--bogus-flag');
  assert.equal(r.code, 2);
  assert.equal(r.stderr.trim().split('\n').length, 1);
  assert.match(r.stderr, /bogus-flag/);
});

test('dump-log prints each batch and record, and flags a torn tail', () => {
  const dir = mkdtempSync(join(tmpdir(), 'trib-cli-'));
  try {
    const a = buildBatch({ records: [{ key: Buffer.from('k'), value: Buffer.from('hello') }], firstTimestamp: 1 });
    const b = buildBatch({ records: [{ key: null, value: Buffer.from('world') }, { key: null, value: null }], firstTimestamp: 2 });
    stampBatch(b, 0, 1, 0);
    const file = join(dir, '00000000000000000000.log');
    writeFileSync(file, Buffer.concat([a, b]));
    const ok = run('dump-log', file, '--records');
    assert.equal(ok.code, 0, ok.stderr);
    const lines = ok.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(lines.map((l) => l.baseOffset ?? l.offset), [0, 0, 1, 1, 2]);
    assert.equal(lines[1]!.value, 'hello');
    writeFileSync(file, Buffer.concat([a, b.subarray(0, 20)]));
    const torn = run('dump-log', file);
    assert.equal(torn.code, 1);
    assert.match(torn.stdout, /"error":"CORRUPT_MESSAGE/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('dump-log on a missing file is a one-line usage error', () => {
  const r = run('dump-log', '/no/such/dir/0.log');
  assert.equal(r.code, 2);
  assert.match(r.stderr, /cannot open .*ENOENT/);
});
