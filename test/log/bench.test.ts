import test from 'node:test';
import assert from 'node:assert/strict';
import { runLogAppendBench } from '../../bench/log.js';

test('the log benchmark primitive runs and reports every figure', () => {
  const result = runLogAppendBench({ seconds: 0.1, warmupMs: 0, recordsPerBatch: 10, poolBatches: 4, segmentBytes: 4 * 1024 * 1024 });
  assert.equal(result.bench, 'log-append');
  assert.equal(result.system, 'tributary');
  for (const key of ['mb_per_s', 'records_per_s', 'raw_mb_per_s', 'read_mb_per_s'] as const) {
    assert.ok(Number.isFinite(result[key]) && result[key] > 0, `${key} = ${result[key]}`);
  }
});
