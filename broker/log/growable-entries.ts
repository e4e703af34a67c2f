/**
 * A growable column of numbers backed by a Float64Array (exact for offsets, positions and
 * timestamps below 2^53), so an index of a million entries is one allocation rather than a
 * million boxed numbers, and appending never allocates except when doubling.
 */
const INITIAL_CAPACITY = 64;

export class GrowableEntries {
  private values = new Float64Array(INITIAL_CAPACITY);
  private count = 0;

  get length(): number {
    return this.count;
  }

  get(i: number): number {
    return this.values[i]!;
  }

  last(): number {
    return this.values[this.count - 1]!;
  }

  push(value: number): void {
    if (this.count === this.values.length) {
      const bigger = new Float64Array(this.values.length * 2);
      bigger.set(this.values);
      this.values = bigger;
    }
    this.values[this.count++] = value;
  }

  truncate(count: number): void {
    if (count < this.count) this.count = count;
  }
}
