/**
 * The s2sim command line (program definition; main.ts is the executable). Bad input is reported as one line on stderr with exit status 2; no
 * stack traces for user errors.
 */
import { readFileSync } from "node:fs";
import { Command, CommanderError, Option } from "commander";
import { CheckFailure } from "../check/violation.js";
import { S2simError } from "../common/error.js";
import { printable } from "../common/format.js";
import { withJsonCheckFailure, withJsonCheckFailureAsync } from "./check.js";
import { CPU_CHANGE_NAMES } from "./cpu.js";
import { AnswerWithStatus } from "./exit-status.js";
import { geometryCommand } from "./geometry.js";
import { CheckFailureWithPage } from "./html-report.js";
import { DEFAULT_PROFILE, KERNEL_CHOICES } from "./options.js";
import { type PageTableTestOptions, pageTableTestCommand } from "./page-table-test.js";
import { type ReproduceOptions, reproduceCommand } from "./reproduce.js";
import { type ScenarioOptions, scenarioCommand } from "./scenario.js";
import { RELEASE_ORDERS } from "../workloads/release-order.js";
import { traceCommand } from "./trace.js";

/** `--release-order`, as page-table-test and reproduce take it. */
function releaseOrderOption(): Option {
  return new Option(
    "--release-order <order>",
    "order the vCPUs start each stage in: fifo (the selftest's semaphore: by id, then by when " +
      "each finished the stage before), id, reverse, or random (a permutation per stage from --seed)",
  )
    .choices(RELEASE_ORDERS)
    .default("fifo");
}

/** `--seed`, as page-table-test and reproduce take it. */
function seedOption(): Option {
  return new Option(
    "--seed <n>",
    "seed of the run's random choices, an integer from 0 to 4294967295 (only --release-order random " +
      "makes any); same seed, same result",
  ).default("1");
}

/** `--fwb`, as page-table-test and reproduce take it. */
function fwbOption(): Option {
  return new Option(
    "--fwb",
    "give the CPU FEAT_S2FWB (the Kunpeng 920 has none): KVM's D-cache maintenance becomes a no-op " +
      "(the same as --cpu fwb)",
  );
}

/** A comma list option's parser that joins the lists of its repeats. */
function joinRepeats(value: string, previous: string | undefined): string {
  return previous === undefined ? value : `${previous},${value}`;
}

/** A repeatable option's parser that keeps each value given. */
function appendRepeats(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/**
 * The options whose values accumulate when given again (each has a parser that joins or keeps
 * them); {@link refuseRepeats} lets no other repeat. Kept per option, not per name: `--src` is a
 * list in reproduce but page-table-test's `-s, --src` takes one backing.
 */
const REPEATABLE = new WeakSet<Option>();

/** Marks `o` as repeatable (see {@link REPEATABLE}). */
function repeatable(o: Option): Option {
  REPEATABLE.add(o);
  return o;
}

/** `--cpu`, as trace, page-table-test, scenario and reproduce take it. */
function cpuOption(what = "the profile machine's CPU (the Kunpeng 920), same costs"): Option {
  return repeatable(
    new Option(
      "--cpu <features>",
      `change ${what}: a comma list of ${CPU_CHANGE_NAMES.join(", ")} (repeatable)`,
    ).argParser(joinRepeats),
  );
}

/**
 * `--check [names]`, as page-table-test and scenario take it (repeatable: the checkers named by
 * each, and all of them once one names none).
 */
function checkOption(description: string): Option {
  return repeatable(
    new Option("--check [names]", description)
      // Given bare, "all": commander would set true without calling the parser, dropping the
      // names of an earlier --check (and a later one could not be checked against it).
      .preset("all")
      .argParser((value: string, previous: string | undefined) =>
        previous === undefined ? value : `${previous},${value}`,
      ),
  );
}

/**
 * Makes `cmd` refuse a value-taking option given twice, of which commander would keep the last
 * silently (`--inject a --inject b` would run only b), unless it is {@link REPEATABLE}.
 */
function refuseRepeats(cmd: Command): void {
  const seen = new Set<string>();
  for (const o of cmd.options) {
    if (o.isBoolean() || REPEATABLE.has(o)) continue;
    cmd.on(`option:${o.name()}`, () => {
      if (seen.has(o.name())) {
        const flag = [o.short, o.long].filter((f) => f !== undefined).join("/");
        throw new S2simError("bad-option", `${flag} was given twice; give it once`);
      }
      seen.add(o.name());
    });
  }
}

/** `--max-memory`, as page-table-test and reproduce take it. */
function maxMemoryOption(): Option {
  return new Option(
    "--max-memory <size>",
    "memory the run may use (default: what the machine has available); a run whose estimated " +
      "peak is larger is refused before it starts",
  );
}

/** `--profile`, as the simulating commands take it. */
function profileOption(): Option {
  return new Option(
    "--profile <name|path>",
    "cost profile: a bundled name; a path (with a directory separator or ending in .json) to a " +
      "file or a pipe; or - (or /dev/stdin) for standard input; read once (format: docs/calibration.md)",
  ).default(DEFAULT_PROFILE);
}

/** `--set`, as page-table-test, scenario and reproduce take it (repeatable). */
function setOption(): Option {
  return repeatable(
    new Option(
      "--set <name=value>",
      "change one profile parameter for this run, e.g. lock-handoff=800ns or zero-byte=10GB/s " +
        "(repeatable; the unit defaults to the profile's)",
    ).argParser(appendRepeats),
  );
}

/** The package's version, from its package.json (dist/src/cli -> the package root). */
function packageVersion(): string {
  const pkg: unknown = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8"));
  const version =
    typeof pkg === "object" && pkg !== null ? (pkg as { version?: unknown }).version : undefined;
  return typeof version === "string" ? version : "unknown";
}

/** Builds the program; exported for tests. */
export function buildProgram(out: (s: string) => void): Command {
  const program = new Command();
  program
    .name("s2sim")
    .description("Executable model of Linux KVM arm64 stage-2 memory management (v5.12 vs v5.14)")
    .version(packageVersion(), "-V, --version", "print s2sim's version")
    .exitOverride()
    .configureOutput({
      writeOut: out,
      writeErr: (s) => process.stderr.write(s),
      // Commander's own errors (unknown option, bad choice, ...) in s2sim's one-line form.
      // An unknown command gets help's answer: the closest name, or the list of commands.
      outputError: (s, write) => {
        const unknown = /^error: unknown command '([^']*)'/.exec(s);
        const line =
          unknown === null
            ? commanderErrorLine(s)
            : `${printable(
                unknownCommand(
                  unknown[1]!,
                  program.commands.map((c) => c.name()),
                ).message,
              )}\n`;
        write(`s2sim: ${line}`);
      },
    })
    .showHelpAfterError(false)
    // The command list shows each command's usage (scenario's name is optional to commander only).
    .configureHelp({ subcommandTerm: (cmd) => [cmd.name(), cmd.usage()].filter((t) => t !== "").join(" ") })
    // Replaced by the `help` command below, which answers an unknown name with one error line.
    .helpCommand(false);

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
    .option("--fwb", "CPU with FEAT_S2FWB (the same as --cpu fwb)")
    .addOption(cpuOption("the CPU's features from the Kunpeng 920's"))
    .action((scenario: string, opts: { kernel: "v5.12" | "v5.14" | "both"; fwb?: boolean; cpu?: string }) =>
      out(traceCommand(scenario, opts)),
    );

  program
    .command("page-table-test")
    .description(
      "run kvm_page_table_test (selftest options -m -b -v -s -p) on the simulated machine of a cost " +
        "profile; prints the selftest's lines, each stage's simulated time (a model prediction, not a " +
        "measurement) and what the fault path did",
    )
    .addOption(
      repeatable(
        new Option(
          "-m, --mode <mode>",
          "guest mode: 4 (PA-bits:40, VA-bits:48, 4K pages; the default, the cover letter's), 5 (the " +
            "same with 64K guest pages), 2 or 3 (PA-bits:48, 4K or 64K pages: a 48-bit IPA, so a " +
            "stage 2 of four levels); repeatable as in the selftest: each mode named runs in turn, " +
            "in the selftest's order (a mode named twice runs once)",
        ).argParser(appendRepeats),
      ),
    )
    .addOption(
      new Option("-b, --mem <size>", "test memory size, e.g. 64M, 1G, 20G or 0x40000000").default("1G"),
    )
    .addOption(new Option("-v, --vcpus <n>", "number of vCPUs, 1..512").default("1"))
    .addOption(
      new Option(
        "-s, --src <type>",
        "memory backing: anonymous, anonymous_thp, anonymous_hugetlb[_<size>], shmem, shared_hugetlb",
      ).default("anonymous"),
    )
    .addOption(
      new Option(
        "-p, --gpa <addr>",
        "test GPA, hex (0x...) or decimal (default, and 0 as in the selftest: the top of the IPA space less the region)",
      ),
    )
    .addOption(
      new Option(
        "-k, --kernel <version>",
        "kernel to model; both: v5.12 then v5.14, and a table comparing their stages",
      )
        .choices([...KERNEL_CHOICES, "both"])
        .default("v5.14"),
    )
    .addOption(profileOption())
    .addOption(releaseOrderOption())
    .addOption(seedOption())
    .addOption(
      checkOption(
        "run the architectural checkers (all, or a comma list; 'list' names them; repeatable); the " +
          "first violation fails the run with its report (exit status 1)",
      ),
    )
    .option("--inject <bug>", "run a kernel with a named bug, for tests and teaching ('list' names them)")
    .option(
      "--timeline <size>",
      "also show the CREATE stage along the region in chunks of <size> (e.g. 64M): what the fault " +
        "path did in each and when it was done (slower; the same results)",
    )
    .addOption(setOption())
    .addOption(fwbOption())
    .addOption(cpuOption())
    .option(
      "--stages <n>",
      "run only the first n timed stages (1: KVM_CREATE_MAPPINGS alone; each stage starts from the one before)",
    )
    .addOption(maxMemoryOption())
    .option(
      "--dry-run",
      "check the options and print the run's estimated memory, without running it (exit status 1 if it would be refused)",
    )
    .option(
      "--trace <n>",
      "show each stage's first n events: the fault path's, the page-table code's (walk stores, " +
        "TLBIs, CMOs) and the host's, with their virtual time and CPU (slower until they are known; the same results)",
    )
    .option(
      "--sweep <name=values>",
      "run everything once per value of one profile parameter, e.g. host-fault=500ns,1us,2us (each value as " +
        "--set takes it; at most 32; the runs share worker threads, one at a time with --check), and print a " +
        "table of each stage's time and what the fault path did per value " +
        '(a sensitivity run; JSON: {"sweep", "runs": [one run\'s object per value]})',
    )
    .option(
      "--html <file>",
      "also write the report as a self-contained web page with charts of each stage's time per run, " +
        "where it went, when each vCPU finished it (the convoys) and, with --timeline, CREATE along the region, " +
        "to <file> (when a --check violation stops the run: the runs before it and the violation)",
    )
    .option(
      "--json",
      "print one JSON object: the simulation report plus seed, inject, fwb, cpu_changes and profile_overrides " +
        '(--kernel both: {"before", "after", "runs": [two of them], "comparison"}; several modes: ' +
        '{"guest_modes": [one of those per mode]}; a --check violation: {"check_failed": {...}}, exit status 1)',
    )
    .action(async (opts: PageTableTestOptions) =>
      out(await withJsonCheckFailureAsync(opts.json, () => pageTableTestCommand(opts))),
    );

  program
    .command("scenario")
    .description(
      "run a small checker scenario ('list' names them) on the simulated machine, optionally with an " +
        "injected bug; prints its steps and every violation the checkers find (exit status 1 if any)",
    )
    // Optional to commander, required by scenarioCommand: with `scenario --check split`, commander
    // takes 'split' as --check's value, and only the command can say so.
    .argument("[name]", "scenario name, or 'list'")
    .usage("[options] <name>")
    .addOption(
      new Option("-k, --kernel <version>", "kernel to model; both: v5.12, then v5.14")
        .choices([...KERNEL_CHOICES, "both"])
        .default("v5.14"),
    )
    .option("--inject <bug>", "run the kernel with a named bug (see page-table-test --inject list)")
    .addOption(
      checkOption(
        "only these checkers (all, or a comma list; 'list' names them; repeatable), and stop at the " +
          "first violation with its report on stderr; without --check every checker runs and every " +
          "violation is listed. Any violation makes the exit status 1",
      ),
    )
    .addOption(profileOption())
    .addOption(setOption())
    .addOption(fwbOption())
    .addOption(cpuOption())
    .option(
      "--json",
      'print one JSON object: the scenario, and per kernel its steps and violations (a --check violation: {"check_failed": {...}}); exit status as without it',
    )
    .action((name: string | undefined, opts: ScenarioOptions) =>
      out(withJsonCheckFailure(opts.json, () => scenarioCommand(name, opts))),
    );

  program
    .command("reproduce")
    .description(
      "the main job: run the cover letter's three command lines on v5.12 (before) and v5.14 (after) " +
        "in parallel worker threads and compare the simulated stage times (model predictions) with " +
        "the published measurements",
    )
    .addOption(profileOption())
    .addOption(
      repeatable(
        new Option(
          "--src <list>",
          "only these command lines, by their -s (comma-separated: anonymous, anonymous_thp, " +
            "anonymous_hugetlb_1gb; repeatable); default all three",
        ).argParser(joinRepeats),
      ),
    )
    .addOption(releaseOrderOption())
    .addOption(seedOption())
    .addOption(setOption())
    .addOption(fwbOption())
    .addOption(cpuOption())
    .addOption(maxMemoryOption())
    .option(
      "--json",
      'print one JSON object: {"rows": [...], "host_s": ...} (with --sweep: {"sweep", "runs", "host_s"})',
    )
    .option(
      "--html <file>",
      "also write the report as a self-contained web page with charts of the stage times and gains " +
        "(the model's beside the published ones; with --sweep, each row's deviation against the value) to <file>",
    )
    .option(
      "--sweep <name=values>",
      "the whole table once per value of one profile parameter, e.g. host-fault=500ns,1us,2us (each value as " +
        "--set takes it; at most 32; the simulations of every value share the worker threads): how many rows each " +
        'value puts inside the bands, then each value\'s table (JSON: {"sweep", "runs": [{"value", "rows"}], "host_s"})',
    )
    .option(
      "--mem-scale <f>",
      "multiply every -b by f (0 < f <= 1, e.g. 1/64) for a smaller, quicker run; its figures are " +
        "not comparable with the published ones",
    )
    .action(async (opts: ReproduceOptions) => out(await reproduceCommand(opts)));

  for (const cmd of program.commands) refuseRepeats(cmd);

  program
    .command("help")
    .description("display help for command")
    .argument("[command]", "the command to describe")
    .action((name: string | undefined) => {
      if (name === undefined) return program.help();
      const command = program.commands.find((c) => c.name() === name);
      if (command === undefined)
        throw unknownCommand(
          name,
          program.commands.map((c) => c.name()),
        );
      command.help();
    });

  return program;
}

/**
 * `help NAME` for a NAME that is no command: as commander says it for `s2sim NAME`, with the
 * closest command's name when one is close (a typo), else the list of commands.
 */
function unknownCommand(name: string, commands: readonly string[]): S2simError {
  let best: string | null = null;
  let bestDistance = Infinity;
  for (const c of commands) {
    const d = editDistance(name, c);
    // Close: at most a third of the longer name's letters differ (commander's suggestions are
    // of about that reach).
    if (d < bestDistance && d <= Math.max(name.length, c.length) / 3) {
      best = c;
      bestDistance = d;
    }
  }
  const hint = best !== null ? `did you mean ${best}?` : `commands: ${commands.join(", ")}`;
  return new S2simError("unknown-command", `unknown command '${name}' (${hint})`);
}

/** Levenshtein distance of `a` and `b` (insertions, deletions and substitutions). */
function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      next.push(Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + cost));
    }
    row = next;
  }
  return row[b.length]!;
}

/**
 * Commander's error text as one line: "error: " dropped and its suggestion, which it puts on a
 * line of its own ("\n(Did you mean --profile?)"), joined to the message.
 */
function commanderErrorLine(text: string): string {
  const line = text
    .replace(/^error: /, "")
    .replace(/\n\(Did you mean (.*)\?\)/, " (did you mean $1?)")
    .replace(/\n$/, "");
  return `${printable(line)}\n`;
}

/** Runs the CLI and returns the exit status. */
export async function main(argv: string[]): Promise<number> {
  watchStdout();
  const program = buildProgram((s) => process.stdout.write(s.endsWith("\n") ? s : s + "\n"));
  try {
    await program.parseAsync(argv, { from: "user" });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version exit with 0; commander already printed its message.
      return err.exitCode === 0 ? 0 : 2;
    }
    if (err instanceof AnswerWithStatus) {
      process.stdout.write(err.output.endsWith("\n") ? err.output : err.output + "\n");
      return err.status;
    }
    if (err instanceof CheckFailure) {
      process.stderr.write(`s2sim: check failed: ${err.message}\n`);
      if (err instanceof CheckFailureWithPage) process.stderr.write(`s2sim: ${err.pageLine}\n`);
      return 1;
    }
    if (err instanceof S2simError) {
      // One line, whatever the input it quotes holds (a newline, a terminal's escape sequence).
      process.stderr.write(`s2sim: ${printable(err.message)}\n`);
      return 2;
    }
    throw err;
  }
}

/**
 * Output that cannot be written ends the run without a stack trace: a reader that went away (`s2sim
 * ... | head`) quietly, as other command-line tools do; anything else (a full disk) with one line.
 */
function watchStdout(): void {
  process.stdout.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code === "EPIPE") process.exit(0);
    process.stderr.write(`s2sim: cannot write the output: ${err.message}\n`);
    process.exit(1);
  });
}
