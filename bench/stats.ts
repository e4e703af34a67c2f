/** Latency figures the benchmarks report, computed one way everywhere. */

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
}

const round1 = (x: number) => Math.round(x * 10) / 10;

/** p50, p99 and max of `samples` (ms), to 0.1 ms, in the JSON field names the benches print. */
export function latencySummary(samples: readonly number[]): { p50_ms: number; p99_ms: number; max_ms: number } {
  const sorted = [...samples].sort((a, b) => a - b);
  return { p50_ms: round1(percentile(sorted, 0.5)), p99_ms: round1(percentile(sorted, 0.99)), max_ms: round1(sorted[sorted.length - 1]!) };
}
