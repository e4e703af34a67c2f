/**
 * Seeded randomness for the Raft core and the simulator.
 *
 * The core never calls Math.random(): the only thing it needs randomness for is the election
 * timeout (Raft §5.2: randomized timeouts make split votes rare), and drawing that from an
 * injected, seeded source is what lets the simulator replay a run exactly from its seed.
 */

export interface Random {
  /** A uniformly distributed unsigned 32-bit integer. */
  nextUint32(): number;
  /** A uniformly distributed integer in [0, maxExclusive). maxExclusive must be in [1, 2^32]. */
  nextInt(maxExclusive: number): number;
  /** A uniformly distributed float in [0, 1). */
  nextFloat(): number;
}

/** splitmix32: spreads one 32-bit seed into well-mixed state words for xoshiro. */
function splitmix32(state: { value: number }): number {
  state.value = (state.value + 0x9e3779b9) | 0;
  let z = state.value;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/**
 * xoshiro128** (Blackman and Vigna, 2018): small, fast, and good enough statistically for
 * timeouts and fault injection. Not cryptographic.
 */
export class Xoshiro128StarStar implements Random {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  constructor(seed: number) {
    if (!Number.isInteger(seed)) throw new RangeError(`seed must be an integer, got ${seed}`);
    const mixer = { value: seed | 0 };
    this.s0 = splitmix32(mixer);
    this.s1 = splitmix32(mixer);
    this.s2 = splitmix32(mixer);
    this.s3 = splitmix32(mixer);
    // The all-zero state is the one state xoshiro cannot leave.
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  nextInt(maxExclusive: number): number {
    if (!Number.isInteger(maxExclusive) || maxExclusive < 1 || maxExclusive > 0x1_0000_0000) {
      throw new RangeError(`nextInt bound must be an integer in [1, 2^32], got ${maxExclusive}`);
    }
    // Multiply-shift maps 32 random bits onto [0, max) with bias below 2^-32 * max: fine here.
    return Math.floor((this.nextUint32() / 0x1_0000_0000) * maxExclusive);
  }

  nextFloat(): number {
    return this.nextUint32() / 0x1_0000_0000;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** The Random every caller should use: seeded, reproducible. */
export function createRandom(seed: number): Random {
  return new Xoshiro128StarStar(seed);
}
