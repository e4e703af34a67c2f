/**
 * Checks for numeric options (limits, timeouts) shared by every part that takes them, so a bad
 * value always reads the same: `requestTimeoutMs must be a positive integer, got -1`.
 */
import { TributaryError } from './errors.js';

type OptionErrorCode = 'INVALID_CONFIG' | 'INVALID_REQUEST';

export function positiveInt(name: string, value: number, code: OptionErrorCode = 'INVALID_CONFIG'): number {
  if (!Number.isSafeInteger(value) || value <= 0) throw new TributaryError(code, `${name} must be a positive integer, got ${value}`);
  return value;
}

export function nonNegativeInt(name: string, value: number, code: OptionErrorCode = 'INVALID_CONFIG'): number {
  if (!Number.isSafeInteger(value) || value < 0) throw new TributaryError(code, `${name} must be an integer >= 0, got ${value}`);
  return value;
}
