/** A bad argument found after parsing (a value out of range, a file that does not exist). */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}
