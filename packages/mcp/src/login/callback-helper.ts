/**
 * The detached loopback callback helper of a data folder (see `handoff.ts`), run as
 * `node callback-helper.js <data folder>`. It prints `ready <port>` once listening (or the port of the helper
 * already holding the folder's lock), then serves `GET /callback` on 127.0.0.1 for the logins it was told to
 * expect, and exits when none is left or 10 minutes after the newest. It never sees a token or a key.
 */

import { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createLogger } from '@authsec/core';
import { type CallbackPage, createCallbackServer } from './callback-server.js';
import {
  digest,
  ensureFolders,
  HELPER_CALLBACK_PATH,
  HELPER_LIFETIME_MS,
  handoffPaths,
  isAlive,
  writeAtomically,
} from './handoff.js';

const dataDir = process.argv[2];
if (!dataDir) {
  process.stderr.write('usage: callback-helper <data folder>\n');
  process.exit(2);
}
const paths = handoffPaths(dataDir);
ensureFolders(paths);
const logger = createLogger({ level: 'warn' });
const SWEEP_MS = 1000;

/** Takes the folder's lock; `false` when a live helper holds it. */
function lock(): boolean {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(paths.lock, String(process.pid), { mode: 0o600, flag: 'wx' });
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = Number(readFileSync(paths.lock, 'utf8'));
      if (Number.isInteger(holder) && holder !== process.pid && isAlive(holder)) return false;
      rmSync(paths.lock, { force: true });
    }
  }
  return false;
}

/** Another helper serves this folder: report its port once it has written it, then leave. */
async function reportOther(): Promise<never> {
  for (let i = 0; i < 100; i++) {
    try {
      const { port } = JSON.parse(readFileSync(paths.info, 'utf8')) as { port: number };
      process.stdout.write(`ready ${port}\n`);
      process.exit(0);
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  process.exit(1);
}

/** How many logins are expected now; expired ones are deleted. */
function sweep(): number {
  let count = 0;
  const now = Date.now();
  for (const name of readdirSync(paths.expected)) {
    const file = join(paths.expected, name);
    let expiresAt = 0;
    try {
      const text = readFileSync(file, 'utf8');
      expiresAt = name.startsWith('reserve-')
        ? Number(text)
        : (JSON.parse(text) as { expiresAt: number }).expiresAt;
    } catch {
      // Half-written or unreadable: judged by its age below.
      expiresAt = statSync(file, { throwIfNoEntry: false })?.mtimeMs ?? 0;
      expiresAt += HELPER_LIFETIME_MS;
    }
    if (!(expiresAt > now)) {
      rmSync(file, { force: true });
      continue;
    }
    count++;
  }
  return count;
}

const handle = async (url: URL): Promise<CallbackPage> => {
  const state = url.searchParams.get('state') ?? '';
  const expectedFile = join(paths.expected, digest(state));
  let session: string;
  try {
    session = (JSON.parse(readFileSync(expectedFile, 'utf8')) as { session: string }).session;
  } catch {
    return {
      status: 400,
      title: 'Login not recognised',
      message: 'This login is unknown, already finished or expired. Start again with oauth_start.',
    };
  }
  if (!/^[0-9a-f]{64}$/.test(session)) throw new Error('damaged expected-login file');
  writeAtomically(join(paths.received, session), url.searchParams.toString());
  rmSync(expectedFile, { force: true });
  return {
    status: 200,
    title: 'Sign-in received',
    message:
      'You can close this page and return to your application: it finishes the login by itself (or at its next oauth_status).',
  };
};

if (!lock()) await reportOther();
const started = Date.now();
const server = createCallbackServer({
  host: '127.0.0.1',
  port: 0,
  path: HELPER_CALLBACK_PATH,
  handle,
  logger,
});
const redirectUri = await server.start();
const port = Number(new URL(redirectUri).port);
writeAtomically(paths.info, JSON.stringify({ pid: process.pid, port }));
process.stdout.write(`ready ${port}\n`);

// The listener is unref'd (callback-server.ts); this timer keeps the helper alive until nothing is expected.
const timer = setInterval(() => {
  const count = sweep();
  // A short grace after start: the process that started the helper writes what to expect right after.
  if (count > 0 || Date.now() - started < 5 * SWEEP_MS) return;
  clearInterval(timer);
  rmSync(paths.info, { force: true });
  rmSync(paths.lock, { force: true });
  void server.close().then(() => process.exit(0));
}, SWEEP_MS);
