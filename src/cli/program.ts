/**
 * The s2sim command line (program definition; main.ts is the executable). Bad input is reported as one line on stderr with exit status 2; no
 * stack traces for user errors.
 */
import { Command, CommanderError, Option } from "commander";
import { S2simError } from "../common/error.js";
import { geometryCommand } from "./geometry.js";
import { reproduceCommand } from "./reproduce.js";
import { traceCommand } from "./trace.js";

/** Builds the program; exported for tests. */
export function buildProgram(out: (s: string) => void): Command {
  const program = new Command();
  program
    .name("s2sim")
    .description("Executable model of Linux KVM arm64 stage-2 memory management (v5.12 vs v5.14)")
    .exitOverride()
    .configureOutput({ writeOut: out, writeErr: (s) => process.stderr.write(s) })
    .showHelpAfterError(false);

  program
    .command("geometry")
    .description(
      "stage-2 levels, start level, concatenated start pages and VTCR_EL2 for a granule and IPA size",
    )
    .addOption(new Option("-g, --granule <size>", "granule: 4K, 16K or 64K").default("4K"))
    .addOption(new Option("-i, --ipa <bits>", "IPA size in bits").default("40"))
    .option("--json", "print JSON")
    .action((opts: { granule: string; ipa: string; json?: boolean }) => out(geometryCommand(opts)));

  program
    .command("trace")
    .description("print the walker/TLBI/CMO event trace of a page-table scenario ('list' names them)")
    .argument("<scenario>", "scenario name, or 'list'")
    .addOption(
      new Option("-k, --kernel <version>", "kernel").choices(["v5.12", "v5.14", "both"]).default("both"),
    )
    .option("--fwb", "CPU with FEAT_S2FWB")
    .action((scenario: string, opts: { kernel: "v5.12" | "v5.14" | "both"; fwb?: boolean }) =>
      out(traceCommand(scenario, opts)),
    );

  program
    .command("reproduce")
    .description("the main job: reproduce the series' published comparison (see README)")
    .option("--json", "print JSON")
    .action((opts: { json?: boolean }) => out(reproduceCommand(opts)));

  return program;
}

/** Runs the CLI and returns the exit status. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram((s) => process.stdout.write(s.endsWith("\n") ? s : s + "\n"));
  try {
    await program.parseAsync(argv, { from: "user" });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version exit with 0; commander already printed its message.
      return err.exitCode === 0 ? 0 : 2;
    }
    if (err instanceof S2simError) {
      process.stderr.write(`s2sim: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
}
