/**
 * Linux error numbers returned by the modelled kernel functions, as negative values the way the
 * kernel returns them. Only the ones the stage-2 code can produce are listed.
 */
export const E2BIG = -7;
export const ENOEXEC = -8;
export const EAGAIN = -11;
export const ENOMEM = -12;
export const EFAULT = -14;
export const EINVAL = -22;
export const ERANGE = -34;

const NAMES: ReadonlyMap<number, string> = new Map([
  [0, "0"],
  [E2BIG, "-E2BIG"],
  [ENOEXEC, "-ENOEXEC"],
  [EAGAIN, "-EAGAIN"],
  [ENOMEM, "-ENOMEM"],
  [EFAULT, "-EFAULT"],
  [EINVAL, "-EINVAL"],
  [ERANGE, "-ERANGE"],
]);

/** The symbolic name of a kernel return code, e.g. `-EAGAIN`. */
export function errnoName(ret: number): string {
  return NAMES.get(ret) ?? String(ret);
}
