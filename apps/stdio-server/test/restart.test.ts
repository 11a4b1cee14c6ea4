/**
 * A restarted server keeps the login: over stdio the login is remembered for the local OS user in the data
 * folder (AUTHSEC_REMEMBER_LOGIN defaults to true), so the next process on that folder starts logged in, until
 * `oauth_logout` forgets it.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ADMIN,
  ADMIN_TOOLS,
  errorCode,
  freePort,
  isAlive,
  LOGIN_TOOLS,
  StdioApp,
  tempDir,
  textOf,
  tokensIn,
} from './helpers/stdio.js';

describe('restart keeps the login (remembered in the data folder)', () => {
  const data = tempDir('restart');
  let env: Record<string, string>;
  const apps: StdioApp[] = [];
  let current: StdioApp | undefined;
  let sessionId: string;

  const start = async (): Promise<StdioApp> => {
    const app = await new StdioApp(env).start();
    apps.push(app);
    current = app;
    return app;
  };

  /** Closes the client; the server process exits. */
  const stop = async (app: StdioApp): Promise<void> => {
    await app.close();
    expect(app.pid).toBeDefined();
    expect(isAlive(app.pid!)).toBe(false);
    current = undefined;
  };

  beforeAll(async () => {
    env = { AUTHSEC_DATA_DIR: data.path, AUTHSEC_DEV_IDP_PORT: String(await freePort()) };
  });

  afterAll(async () => {
    await Promise.allSettled(apps.map((a) => a.close()));
    data.remove();
  });

  it('first process: log in through the browser, then the client closes and the process exits', async () => {
    const app = await start();
    expect(await app.tools()).toEqual([...LOGIN_TOOLS]);
    sessionId = await app.browserLogin(ADMIN);
    expect(await app.tools()).toEqual([...LOGIN_TOOLS, ...ADMIN_TOOLS]);
    // What is remembered is sealed: no token in clear in the data folder's login file.
    const files = readdirSync(join(data.path, 'logins'));
    expect(files.length).toBe(1);
    const sealed = readFileSync(join(data.path, 'logins', files[0]!), 'utf8');
    expect(sealed).not.toContain('eyJ');
    expect(sealed).not.toContain(sessionId);
    await stop(app);
  });

  it("second process on the same data folder: tools/list already shows the user's tools", async () => {
    const app = await start();
    expect(await app.tools()).toEqual([...LOGIN_TOOLS, ...ADMIN_TOOLS]);
    expect(textOf(await app.call('hello'))).toBe(`Hello, ${ADMIN.email}!`);
    const status = await app.login<{ status: string; session_id: string; user_info: { email: string } }>(
      'oauth_status',
    );
    expect(status).toMatchObject({ status: 'authenticated', session_id: sessionId });
    expect(status.user_info.email).toBe(ADMIN.email);
  });

  it('oauth_logout there forgets the login', async () => {
    const app = current!;
    const seen = app.changes;
    expect((await app.login<{ status: string }>('oauth_logout')).status).toBe('logged_out');
    await app.changedSince(seen);
    expect(await app.tools()).toEqual([...LOGIN_TOOLS]);
    expect(readdirSync(join(data.path, 'logins'))).toEqual([]);
    await stop(app);
  });

  it('a third process starts logged out', async () => {
    const app = await start();
    expect(await app.tools()).toEqual([...LOGIN_TOOLS]);
    expect(errorCode(await app.call('hello'))).toBe('TOKEN_MISSING');
    expect((await app.login<{ status: string }>('oauth_status')).status).not.toBe('authenticated');
    // The old session id does not bring the login back either.
    const presented = await app.login<{ status: string }>('oauth_status', { session_id: sessionId });
    expect(presented.status).toBe('logged_out');
    expect(await app.tools()).toEqual([...LOGIN_TOOLS]);
    await stop(app);
  });

  it('no tool result of any process carried a token', () => {
    expect(tokensIn(apps)).toEqual([]);
  });
});
