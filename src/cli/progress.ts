/**
 * The progress bar of a long simulation on stderr (shown only on a terminal, never with --json):
 * the fraction done, a detail the caller updates (runs finished, the stage running), the time
 * elapsed and an estimate of the time left.
 */
import cliProgress from "cli-progress";

/** Steps of the bar: the fraction done is shown to 0.1 %. */
const STEPS = 1000;

/** A started progress bar; {@link SimProgress.stop} clears it. */
export interface SimProgress {
  /** Sets the fraction done (0..1) and the detail shown beside it. */
  update(fraction: number, detail: string): void;
  stop(): void;
}

/** A progress bar on stderr if it is a terminal and `wanted`, else null. */
export function simProgress(wanted: boolean, detail: string): SimProgress | null {
  if (!wanted || !process.stderr.isTTY) return null;
  const bar = new cliProgress.SingleBar({
    stream: process.stderr,
    format: "simulating |{bar}| {percentage}% | {detail} | {duration_formatted} elapsed, ETA {eta_formatted}",
    barCompleteChar: "#",
    barIncompleteChar: "-",
    hideCursor: true,
    clearOnComplete: true,
    etaBuffer: 50,
    // The ETA is a string ("0", "INF", "NULL") until progress moves; show "?" then.
    formatTime: (t, options, round) =>
      typeof t === "number" ? cliProgress.Format.TimeFormat(t, options, round) : "?",
  });
  bar.start(STEPS, 0, { detail });
  return {
    update: (fraction, d) => bar.update(Math.round(fraction * STEPS), { detail: d }),
    stop: () => bar.stop(),
  };
}
