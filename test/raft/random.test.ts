import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createRandom } from '../../controller/raft/random.js';

describe('seeded Random', () => {
  it('repeats its sequence for a seed and differs across seeds', () => {
    const draw = (seed: number): number[] => {
      const random = createRandom(seed);
      return Array.from({ length: 8 }, () => random.nextUint32());
    };
    assert.deepEqual(draw(42), draw(42));
    assert.notDeepEqual(draw(42), draw(43));
  });

  it('nextInt stays in range and covers it', () => {
    const random = createRandom(1);
    const seen = new Set<number>();
    for (let k = 0; k < 1000; k++) {
      const value = random.nextInt(10);
      assert.ok(Number.isInteger(value) && value >= 0 && value < 10);
      seen.add(value);
    }
    assert.equal(seen.size, 10);
    assert.throws(() => random.nextInt(0), RangeError);
  });
});
