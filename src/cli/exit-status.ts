/**
 * A command's answer that asks for a nonzero exit status without being an error (no "s2sim:" line
 * on stderr): `page-table-test --dry-run` of a run that would be refused prints its estimate on
 * stdout and exits with 1, so scripts can test the answer.
 */
export class AnswerWithStatus extends Error {
  /**
   * @param output - what the command prints on stdout
   * @param status - the process's exit status (nonzero)
   */
  constructor(
    readonly output: string,
    readonly status: number,
  ) {
    super(`exit status ${status}`);
    this.name = "AnswerWithStatus";
  }
}
