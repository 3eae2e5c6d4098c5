/**
 * Reading a small input file (a cost profile) whole and once, whatever the path names: a regular
 * file, or a pipe (a shell's `<(...)`), read to its end; or the process's standard input, which
 * may also be a socket. Anything else is refused before it is opened or read, so a device cannot
 * stream forever (`/dev/zero`) or wait for a terminal.
 */
import {
  closeSync,
  constants,
  fstatSync,
  openSync,
  readFileSync,
  readSync,
  realpathSync,
  statSync,
  type Stats,
} from "node:fs";
import { isatty } from "node:tty";
import { getSystemErrorMap } from "node:util";

/**
 * A file's bytes (`pipe`: read from a pipe, to its end), or why they could not be read (for people:
 * "no such file or directory").
 */
export type SmallFile = { readonly bytes: Buffer; readonly pipe: boolean } | { readonly why: string };

/** How long to wait before reading again a pipe whose writer has written nothing yet. */
const PIPE_POLL_MS = 5;

/** How long a pipe with no writer is given for one to open it. */
const PIPE_WRITER_WAIT_MS = 2000;

/** How long a pipe's writer may send nothing before the reader is told (`onWait`). */
export const PIPE_SILENT_MS = 2000;

/**
 * Reads all of `path`, a regular file or a pipe, if it holds at most `maxBytes` bytes. A pipe is
 * opened without waiting for a writer: one with none after {@link PIPE_WRITER_WAIT_MS} reads as
 * empty instead of hanging; else it is read until its writer closes it, and `onWait` is called
 * once, with the bytes received so far, if the writer has sent nothing for {@link PIPE_SILENT_MS}
 * (so a person can be told why nothing happens).
 */
export function readSmallFile(
  path: string,
  maxBytes: number,
  onWait?: (received: number) => void,
): SmallFile {
  let fd: number;
  try {
    // stat first: opening a device can wait (a terminal) or act (a tape rewinds).
    const refused = refusal(statSync(path), maxBytes);
    if (refused !== null) return { why: refused };
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    return { why: systemReason(err) };
  }
  try {
    // The path may have changed between stat and open.
    const st = fstatSync(fd);
    const refused = refusal(st, maxBytes);
    if (refused !== null) return { why: refused };
    // A named pipe opened this way may have no writer yet (one blocked in open is woken by ours):
    // it reads as at its end until one comes, so an end before any writer is waited out a while.
    // An anonymous pipe (a shell's `|` or `<(...)`) had its writer from the start: its end is real.
    return readAll(fd, st.isFIFO(), st.isFIFO() && isNamedPipe(path), maxBytes, onWait);
  } catch (err) {
    return { why: systemReason(err) };
  } finally {
    closeSync(fd);
  }
}

/**
 * Reads all of this process's standard input if it holds at most `maxBytes` bytes: a regular
 * file, a pipe, or a socket (what a Node parent's `stdio: "pipe"` gives, which no path opens),
 * read until its writer closes it; a terminal or another device is refused. `onWait`: as for
 * {@link readSmallFile}, for a pipe.
 */
export function readSmallStdin(maxBytes: number, onWait?: (received: number) => void): SmallFile {
  try {
    if (isatty(STDIN_FD))
      return { why: "standard input is a terminal; pipe the profile in, or give its path" };
    const st = fstatSync(STDIN_FD);
    const refused = st.isSocket() ? null : refusal(st, maxBytes);
    if (refused !== null) return { why: `standard input: ${refused}` };
    // An anonymous pipe or a socket: its writer came with it, so its end is real.
    if (st.isFIFO()) {
      const fd = reopenNonBlocking(st);
      if (fd !== null) {
        try {
          return readAll(fd, true, false, maxBytes, onWait);
        } finally {
          closeSync(fd);
        }
      }
    }
    return readAll(STDIN_FD, st.isFIFO() || st.isSocket(), false, maxBytes);
  } catch (err) {
    return { why: systemReason(err) };
  }
}

const STDIN_FD = 0;

/**
 * The pipe on standard input opened again, non-blocking, so that a silent writer can be waited
 * out with a word to the user; null where that cannot be done (no /dev/stdin, or it no longer
 * leads to the same pipe). Setting O_NONBLOCK on descriptor 0 itself would change it for the
 * process that shares it.
 */
function reopenNonBlocking(stdin: Stats): number | null {
  // Descriptor 0 may be a pipe's write end (`0>&1`): opened again for reading it would be a read
  // end whose only writer is this process, never ending. Only a descriptor open for reading is.
  if (!openForReading(STDIN_FD)) return null;
  let fd: number;
  try {
    fd = openSync("/dev/stdin", constants.O_RDONLY | constants.O_NONBLOCK);
  } catch {
    return null;
  }
  let same = false;
  try {
    const st = fstatSync(fd);
    same = st.ino === stdin.ino && st.dev === stdin.dev;
  } finally {
    if (!same) closeSync(fd);
  }
  return same ? fd : null;
}

/** Whether descriptor `fd` is open for reading, from /proc (false where that cannot be read). */
function openForReading(fd: number): boolean {
  try {
    const flags = /^flags:\s*([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, "latin1"));
    if (flags === null) return false;
    // O_ACCMODE is 3 on Linux (Node does not export it); /proc is Linux's anyway.
    const access = parseInt(flags[1]!, 8) & 3;
    return access === constants.O_RDONLY || access === constants.O_RDWR;
  } catch {
    return false;
  }
}

/**
 * Reads `fd` to its end, or until it gives more than `maxBytes` bytes. `stream`: a pipe or a
 * socket (for the result); `named`: a named pipe, whose end before any writer came is waited out
 * for {@link PIPE_WRITER_WAIT_MS}. A descriptor that would block (opened non-blocking) is polled.
 */
function readAll(
  fd: number,
  stream: boolean,
  named: boolean,
  maxBytes: number,
  onWait?: (received: number) => void,
): SmallFile {
  const buffer = Buffer.alloc(maxBytes + 1);
  let length = 0;
  const writerDeadline = Date.now() + PIPE_WRITER_WAIT_MS;
  let writer = false;
  let silentSince = Date.now();
  let told = onWait === undefined;
  for (;;) {
    let n: number;
    try {
      n = readSync(fd, buffer, length, buffer.length - length, null);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EAGAIN") return { why: systemReason(err) };
      // A pipe whose writer has written nothing yet.
      writer = true;
      if (!told && Date.now() - silentSince >= PIPE_SILENT_MS) {
        told = true;
        onWait!(length);
      }
      sleep(PIPE_POLL_MS);
      continue;
    }
    if (n === 0) {
      if (named && !writer && Date.now() < writerDeadline) {
        sleep(PIPE_POLL_MS);
        continue;
      }
      return { bytes: buffer.subarray(0, length), pipe: stream };
    }
    writer = true;
    silentSince = Date.now();
    length += n;
    if (length > maxBytes) return { why: tooLarge(maxBytes) };
  }
}

/**
 * Whether `path` leads to a pipe in the file system (made by mkfifo). A path to an anonymous pipe
 * (`/dev/stdin`, `/dev/fd/63`) resolves to no file: its link reads `pipe:[inode]`.
 */
function isNamedPipe(path: string): boolean {
  try {
    return statSync(realpathSync(path)).isFIFO();
  } catch {
    return false;
  }
}

/** Why a file of this type and size is not read, or null if it is. */
function refusal(st: Stats, maxBytes: number): string | null {
  if (st.isFile()) return st.size > maxBytes ? tooLarge(maxBytes) : null;
  if (st.isFIFO()) return null;
  const kind = st.isDirectory()
    ? "a directory"
    : st.isCharacterDevice()
      ? "a character device"
      : st.isBlockDevice()
        ? "a block device"
        : st.isSocket()
          ? "a socket"
          : "not a file";
  return `it is ${kind}, not a regular file or a pipe`;
}

function tooLarge(maxBytes: number): string {
  return `it is larger than ${maxBytes >= 2 ** 20 ? `${maxBytes / 2 ** 20} MiB` : `${maxBytes} bytes`}`;
}

/** Blocks this thread for `ms` milliseconds (the read is synchronous, as the profile's loading is). */
function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** The system's wording of a failed call ("permission denied"), else its message. */
export function systemReason(err: unknown): string {
  const errno = (err as NodeJS.ErrnoException).errno;
  const known = errno === undefined ? undefined : getSystemErrorMap().get(errno);
  return known?.[1] ?? (err instanceof Error ? err.message : String(err));
}
