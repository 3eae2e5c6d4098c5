/**
 * The one error type s2sim throws for bad input or impossible configurations. The CLI prints its
 * message (no stack trace) and exits with status 2. Model-internal kernel failures are returned as
 * errno values instead, as the kernel does.
 */
export class S2simError extends Error {
  /** A short stable code, usable by tests and by JSON output. */
  readonly code: string;

  constructor(code: string, message: string) {
    super(message);
    this.name = "S2simError";
    this.code = code;
  }
}

/** Throws an {@link S2simError} unless `cond` holds. */
export function require_(cond: boolean, code: string, message: () => string): asserts cond {
  if (!cond) throw new S2simError(code, message());
}
