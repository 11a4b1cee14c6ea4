import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseMasterKey, type SessionStore, silentLogger } from '@authsec/core';
import {
  createPGliteClient,
  createPostgresSessionStore,
  ensureSessionSchema,
  type SqlClient,
} from '@authsec/core/postgres';
import { type DevIdp, startDevIdp } from '@authsec/dev-idp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRememberedLogin } from '../../src/login/remember.js';
import { signIn } from './helpers/browser.js';
import { ADMIN, ANALYST, type Harness, harness, RESOURCE } from './helpers/setup.js';

let idp: DevIdp;
let sql: SqlClient;
let dir: string;
const masterKey = parseMasterKey(randomBytes(32).toString('base64'));

beforeAll(async () => {
  idp = await startDevIdp({ logger: silentLogger });
  sql = await createPGliteClient();
  await ensureSessionSchema(sql);
  dir = await mkdtemp(join(tmpdir(), 'authsec-remember-'));
});

afterAll(async () => {
  await idp?.close();
  await sql?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** One "process": its own Postgres store on the shared database, and its own login provider. */
async function processWith(file: string | false): Promise<{ h: Harness; store: SessionStore }> {
  const store = createPostgresSessionStore({ sql, masterKey, cleanupIntervalMs: 0 });
  const h = await harness(idp, {
    sessions: store,
    remember: file === false ? false : { file, masterKey },
  });
  return { h, store };
}

async function stop(p: { h: Harness; store: SessionStore }) {
  await p.h.close();
  await p.store.close();
}

describe('remembered login (stdio restart)', () => {
  it('survives a restart through the Postgres store, and logout forgets it', async () => {
    const file = join(dir, 'a', 'data', 'remembered-login');
    const first = await processWith(file);
    const started = await first.h.body('stdio', 'oauth_start');
    const callback = await signIn(String(started.authorization_url), ADMIN.email, ADMIN.password);
    expect((await fetch(callback)).status).toBe(200);
    expect((await first.h.login.principalFor('stdio'))?.email).toBe(ADMIN.email);

    // The file: 0600 in a 0700 directory, sealed (no session id in clear).
    const content = await readFile(file, 'utf8');
    expect(content).not.toContain(String(started.session_id));
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'a', 'data'))).mode & 0o777).toBe(0o700);
    await stop(first);

    // "Restart": a new store and provider; the connection resumes the login without any tool call.
    const second = await processWith(file);
    const principal = await second.h.login.principalFor('stdio');
    expect(principal?.email).toBe(ADMIN.email);
    expect(second.h.login.sessionIdFor('stdio')).toBe(started.session_id);
    expect(await second.h.body('stdio', 'oauth_status')).toMatchObject({
      status: 'authenticated',
      session_id: started.session_id,
      accessible_tools: ['hello', 'admin_panel', 'view_reports'],
    });
    expect(await second.h.body('stdio', 'oauth_logout')).toMatchObject({ status: 'logged_out' });
    await expect(stat(file)).rejects.toMatchObject({ code: 'ENOENT' });
    // Logged out on this connection: the remembered login is not resumed again here.
    expect(await second.h.login.principalFor('stdio')).toBeUndefined();
    await stop(second);

    const third = await processWith(file);
    expect(await third.h.login.principalFor('stdio')).toBeUndefined();
    await stop(third);
  });

  it('is not used when remember is off, and a pasted-token login is remembered too', async () => {
    const file = join(dir, 'b', 'remembered-login');
    const off = await processWith(false);
    const token = await idp.issueToken(ANALYST.email, { audience: RESOURCE });
    await off.h.call('c1', 'oauth_authenticate', { jwt_token: token });
    await expect(stat(file)).rejects.toMatchObject({ code: 'ENOENT' });
    await stop(off);

    const on = await processWith(file);
    await on.h.call('c1', 'oauth_authenticate', { jwt_token: token });
    await stop(on);
    const again = await processWith(file);
    expect((await again.h.login.principalFor('c7'))?.email).toBe(ANALYST.email);
    await stop(again);
  });

  it('ignores and deletes a file it cannot open, and a file naming a dead session', async () => {
    const file = join(dir, 'c', 'remembered-login');
    const other = parseMasterKey(randomBytes(32).toString('base64'));
    await createRememberedLogin(file, other, silentLogger).write('A'.repeat(43));
    const p = await processWith(file);
    expect(await p.h.login.principalFor('c1')).toBeUndefined();
    await expect(stat(file)).rejects.toMatchObject({ code: 'ENOENT' });

    await createRememberedLogin(file, masterKey, silentLogger).write('B'.repeat(43));
    expect(await p.h.login.principalFor('c2')).toBeUndefined();
    await expect(stat(file)).rejects.toMatchObject({ code: 'ENOENT' });

    await writeFile(file, 'garbage\n', { mode: 0o644 });
    expect(await createRememberedLogin(file, masterKey, silentLogger).read()).toBeUndefined();
    await expect(stat(file)).rejects.toMatchObject({ code: 'ENOENT' });
    await stop(p);
  });
});
