/** Helpers shared by the host-memory tests. */
import type { Blocking } from "../../src/common/steps.js";

/** Runs `gen` to its end from where it stands, ignoring the steps it yields (locks already taken included). */
export function finish<T>(gen: Blocking<T>): T {
  for (;;) {
    const r = gen.next();
    if (r.done === true) return r.value;
  }
}
