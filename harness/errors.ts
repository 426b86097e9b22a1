/**
 * A user-facing input error: one line naming what was wrong and what is allowed. The CLI prints
 * its message as `fwbench: MESSAGE` and exits 2; anything else that escapes is an internal error.
 */
export class InputError extends Error {
  override name = 'InputError';
}
