/**
 * Cross-process login over stdio (the MCP Inspector CLI starts a new server process per call): the loopback
 * callback is served by a small detached helper process, one per data folder, that outlives the process that
 * ran `oauth_start`. The helper only receives: it writes the callback's query (code and state) for a login it
 * was told to expect, 0600 in the data folder, and answers the browser. Whichever process asks next about that
 * login (the one that started it, polling, or any later one presenting its `session_id`) claims the query and
 * finishes the login itself: the code is useless without the PKCE verifier, which only the session store holds,
 * sealed. The helper exits once nothing is expected any more, or 10 minutes after the last login it was told of.
 *
 * Files under `<data folder>/login-callback/`: `helper.json` ({ pid, port }), `helper.lock` (the pid holding
 * it), `expected/<sha256(state)>` (the session it belongs to, hashed, and when it expires), `expected/reserve-*`
 * (a login being started: keeps the helper alive), `received/<sha256(session id)>` (the callback's query).
 */

import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AuthSecError } from '@authsec/core';

/** How long a helper waits for logins it was told of (the session store's pending lifetime). */
export const HELPER_LIFETIME_MS = 10 * 60 * 1000;
/** The redirect URI's path on the helper. */
export const HELPER_CALLBACK_PATH = '/callback';

/** The files of the handoff in a data folder. */
export interface HandoffPaths {
  readonly root: string;
  readonly info: string;
  readonly lock: string;
  readonly expected: string;
  readonly received: string;
}

/** The handoff's files under `dataDir`. */
export function handoffPaths(dataDir: string): HandoffPaths {
  const root = join(dataDir, 'login-callback');
  return {
    root,
    info: join(root, 'helper.json'),
    lock: join(root, 'helper.lock'),
    expected: join(root, 'expected'),
    received: join(root, 'received'),
  };
}

/** Hex SHA-256: file names never hold a state or a session id in clear. */
export const digest = (value: string): string => createHash('sha256').update(value).digest('hex');

/** Creates the folders, 0700. */
export function ensureFolders(paths: HandoffPaths): void {
  for (const dir of [paths.root, paths.expected, paths.received])
    mkdirSync(dir, { recursive: true, mode: 0o700 });
}

/** Writes `data` to `file` atomically (a reader sees the old file or the new one), mode 0600. */
export function writeAtomically(file: string, data: string): void {
  const temporary = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  writeFileSync(temporary, data, { mode: 0o600, flag: 'wx' });
  renameSync(temporary, file);
}

/** Whether a process id is alive (signal 0). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The running helper's port, if one is alive. */
function runningHelper(paths: HandoffPaths): number | undefined {
  try {
    const info = JSON.parse(readFileSync(paths.info, 'utf8')) as { pid?: unknown; port?: unknown };
    if (typeof info.pid === 'number' && typeof info.port === 'number' && isAlive(info.pid)) return info.port;
  } catch {
    // No helper, or a damaged file: start one.
  }
  return undefined;
}

/** Starts the helper, detached, and waits for the port it listens on (or the port of one already running). */
function startHelper(dataDir: string, script: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, dataDir], {
      detached: true,
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    let output = '';
    const timer = setTimeout(
      () => fail(new Error('the login callback helper did not start in time')),
      10_000,
    );
    const fail = (cause: unknown) => {
      clearTimeout(timer);
      child.stdout?.destroy();
      reject(
        new AuthSecError('SERVICE_UNAVAILABLE', 'The login callback listener could not start', { cause }),
      );
    };
    child.once('error', fail);
    child.once('exit', (code) => fail(new Error(`the login callback helper exited (${code})`)));
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString('utf8');
      const match = /^ready (\d+)\n/.exec(output);
      if (!match) return;
      clearTimeout(timer);
      child.removeAllListeners('exit');
      child.stdout?.destroy();
      child.unref();
      resolve(Number(match[1]));
    });
  });
}

/** One login being started: its redirect URI, then what the helper must expect. */
export interface HandoffStart {
  readonly redirectUri: string;
  /** Tells the helper to accept the callback of `state` for `sessionId` until `expiresAt` (ms). */
  expect(state: string, sessionId: string, expiresAt: number): void;
  /** The login was not started after all. */
  abandon(): void;
}

/** The handoff of a data folder. */
export interface LoginHandoff {
  /** Reserves the helper (started when none runs) for one login. */
  begin(): Promise<HandoffStart>;
  /** The callback query received for `sessionId`, taken (only one process gets it), or `undefined`. */
  claim(sessionId: string): URLSearchParams | undefined;
  /** Stops expecting the callback of `state` (the login ended otherwise). */
  forget(state: string): void;
}

/** Options of {@link createLoginHandoff}. */
export interface LoginHandoffOptions {
  /** The data folder (one helper per folder). */
  readonly dataDir: string;
  /** The helper's script. Default: `callback-helper.js` beside this module. */
  readonly helperScript?: string;
}

/** Creates the handoff of a data folder. Nothing is started before {@link LoginHandoff.begin}. */
export function createLoginHandoff(options: LoginHandoffOptions): LoginHandoff {
  const paths = handoffPaths(options.dataDir);
  const script = options.helperScript ?? fileURLToPath(new URL('./callback-helper.js', import.meta.url));
  return {
    async begin() {
      ensureFolders(paths);
      // Reserved before the helper is looked for: a helper about to exit sees it and stays (see the helper).
      const reservation = join(paths.expected, `reserve-${randomBytes(12).toString('hex')}`);
      writeFileSync(reservation, String(Date.now() + HELPER_LIFETIME_MS), { mode: 0o600 });
      const release = () => rmSync(reservation, { force: true });
      let port: number;
      try {
        port = runningHelper(paths) ?? (await startHelper(options.dataDir, script));
      } catch (error) {
        release();
        throw error;
      }
      return {
        redirectUri: `http://127.0.0.1:${port}${HELPER_CALLBACK_PATH}`,
        expect(state, sessionId, expiresAt) {
          writeAtomically(
            join(paths.expected, digest(state)),
            JSON.stringify({ session: digest(sessionId), expiresAt }),
          );
          release();
        },
        abandon: release,
      };
    },
    claim(sessionId) {
      const file = join(paths.received, digest(sessionId));
      const taken = `${file}.${randomBytes(6).toString('hex')}.claimed`;
      try {
        renameSync(file, taken);
      } catch {
        return undefined;
      }
      try {
        return new URLSearchParams(readFileSync(taken, 'utf8'));
      } finally {
        rmSync(taken, { force: true });
      }
    },
    forget(state) {
      rmSync(join(paths.expected, digest(state)), { force: true });
    },
  };
}
