/**
 * Assertions are for what can only be a bug (an offset going backwards, a role transition that
 * the table forbids). They stop the process: continuing from a state we believed impossible risks
 * corrupting a log. What the world can cause (a bad frame, a stale epoch) is a TributaryError
 * instead, returned to the caller.
 */
export class AssertionFailure extends Error {
  constructor(message: string) {
    super(`assertion failed: ${message}`);
    this.name = 'AssertionFailure';
  }
}

export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new AssertionFailure(message);
}

export function unreachable(value: never, what = 'value'): never {
  throw new AssertionFailure(`unexpected ${what}: ${JSON.stringify(value)}`);
}
