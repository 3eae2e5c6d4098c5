/**
 * V8 flag every s2sim process runs with. Node 20 can deadlock as a process ends when a background
 * TurboFan job waits for a main-thread GC while the main thread waits for that job
 * (nodejs/node#54918); seen here in about one run in twenty of a small page-table-test, and it
 * stalled a CI run. Optimizing on the main thread removes those jobs at no measurable cost
 * (THP 4 GiB x 40: 7-9 s user either way). V8 reads it only at start-up, so main.ts starts itself
 * again with it when it is missing.
 */
export const NODE_FLAG = "--no-concurrent-recompilation";
