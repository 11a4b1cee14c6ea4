import { randomBytes } from 'node:crypto';
import { linkSync, readFileSync, rmSync, writeFileSync } from 'node:fs';

/**
 * Creates `file` with `contents` (mode `mode`) unless it exists, and returns what the file holds: ours, or what
 * another process created first. Never a half-written file: the contents go to a temporary file in the same
 * folder first, and `link` publishes it whole, failing with `EEXIST` when another process won (a plain `wx`
 * write creates the file empty before writing it, so a process reading it in between saw nothing).
 */
export function createFileOnce(file: string, contents: string, mode: number): string {
  const temporary = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  writeFileSync(temporary, contents, { mode, flag: 'wx' });
  try {
    linkSync(temporary, file);
    return contents;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    return readFileSync(file, 'utf8');
  } finally {
    rmSync(temporary, { force: true });
  }
}
