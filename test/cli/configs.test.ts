import { test } from 'node:test';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';
import { loadBrokerConfig } from '../../broker/config.js';
import { loadControllerConfig } from '../../controller/config.js';
import { ConfigFileError, parseProperties, parseVoters } from '../../common/properties.js';

test('the example configs in configs/ load, and flags override them', () => {
  const c = loadControllerConfig({ config: 'configs/controller-1.properties' });
  assert.equal(c.nodeId, 1);
  assert.deepEqual([...c.voters.keys()], [1, 2, 3]);
  assert.equal(c.sessionTimeoutMs, 1000);
  assert.equal(c.electionTicks, 10);
  assert.ok(c.leaseDurationMs * 1.05 <= c.sessionTimeoutMs);
  const b = loadBrokerConfig({ config: 'configs/broker-1.properties', listen: '127.0.0.1:0' });
  assert.equal(b.brokerId, 1);
  assert.deepEqual(b.listen, { host: '127.0.0.1', port: 0 });
  assert.equal(b.replicaLagTimeMaxMs, 10_000);
  assert.equal(b.topicDefaults['min.insync.replicas'], '1');
  assert.equal(b.tailCacheBytesMax, 8 * 1024 * 1024);
  assert.equal(b.highWatermarkCheckpointIntervalMs, 5000);
});

test('log.tail.cache.bytes.max and replica.high.watermark.checkpoint.interval.ms are read and bounded', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tributary-config-'));
  try {
    const file = path.join(dir, 'broker.properties');
    const base = 'node.id=1\nlisteners=127.0.0.1:0\ncontroller.quorum.voters=1@127.0.0.1:1\nlog.dirs=' + dir + '\n';
    fs.writeFileSync(file, base + 'log.tail.cache.bytes.max=1048576\nreplica.high.watermark.checkpoint.interval.ms=250\n');
    const b = loadBrokerConfig({ config: file });
    assert.equal(b.tailCacheBytesMax, 1048576);
    assert.equal(b.highWatermarkCheckpointIntervalMs, 250);
    fs.writeFileSync(file, base + 'replica.high.watermark.checkpoint.interval.ms=0\n');
    assert.throws(() => loadBrokerConfig({ config: file }), (e: unknown) => e instanceof ConfigFileError && /replica\.high\.watermark\.checkpoint\.interval\.ms/.test(e.message));
    fs.writeFileSync(file, base + 'log.tail.cache.bytes.max=-1\n');
    assert.throws(() => loadBrokerConfig({ config: file }), (e: unknown) => e instanceof ConfigFileError && /log\.tail\.cache\.bytes\.max/.test(e.message));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('bad config lines and voters name what is wrong', () => {
  assert.throws(() => parseProperties('a=1\nnonsense\n', 'f'), (e: unknown) => e instanceof ConfigFileError && /f:2/.test(e.message));
  assert.throws(() => parseProperties('a=1\na=2\n', 'f'), /set twice/);
  assert.throws(() => parseVoters('1@h:1,1@h:2'), /appears twice/);
  assert.throws(() => parseVoters('x@h:1'), /not a positive node id/);
  assert.throws(() => parseVoters('1@h:99999'), /above 65535/);
  assert.throws(() => loadControllerConfig({ id: 4, listen: '127.0.0.1:1', voters: '1@h:1,2@h:2,3@h:3', data: '/tmp/x' }), /not among the voters/);
  assert.throws(() => loadControllerConfig({ id: 1, listen: '127.0.0.1:1', voters: '1@h:1,2@h:2', data: '/tmp/x' }), /1, 3 or 5 voters/);
});
