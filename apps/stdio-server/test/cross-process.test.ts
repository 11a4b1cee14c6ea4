/**
 * A login started and finished by two different processes, as the MCP Inspector CLI does (a new server process
 * per call): process A runs `oauth_start` and exits; the browser completes the sign-in (the data folder's
 * detached callback helper receives it); process B's `oauth_status` sees the login. The `session_id` is bound to
 * its data folder: a copy presented on another folder, or a tampered one, is refused.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { type DevIdp, startDevIdp } from '@authsec/dev-idp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ANALYST,
  ANALYST_TOOLS,
  eventually,
  followSignIn,
  freePort,
  isAlive,
  LOGIN_TOOLS,
  tempDir,
  textOf,
} from './helpers/stdio.js';
import { sorted, V2StdioApp } from './helpers/stdio-v2.js';

describe('cross-process login over stdio (v2)', () => {
  const data = tempDir('cross-a');
  const other = tempDir('cross-b');
  let env: Record<string, string>;
  const apps: V2StdioApp[] = [];
  let started: { status: string; session_id: string; authorization_url: string };
  let helperPid: number;

  const start = async (era: 'modern' | 'legacy', on = env): Promise<V2StdioApp> => {
    const app = await new V2StdioApp(era, on).start();
    apps.push(app);
    return app;
  };

  let idp: DevIdp;

  beforeAll(async () => {
    // The authorization server stays up while no server process runs (the embedded one lives in whichever
    // server process hosts it): the test hosts the dev IdP on the port the processes use, and they use it.
    idp = await startDevIdp({ host: '127.0.0.1', port: await freePort() });
    env = {
      AUTHSEC_DATA_DIR: data.path,
      AUTHSEC_DEV_IDP_PORT: new URL(idp.issuer).port,
      AUTHSEC_REMEMBER_LOGIN: 'false',
    };
  });

  afterAll(async () => {
    await Promise.allSettled(apps.map((a) => a.close()));
    await idp?.close();
    data.remove();
    other.remove();
  });

  it('process A runs oauth_start and exits', async () => {
    const a = await start('modern');
    started = await a.login('oauth_start');
    expect(started.status).toBe('ready_for_authentication');
    // The session_id carries the data folder's MAC; the key file is the OS user's alone.
    expect(started.session_id).toMatch(/^[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{43}$/);
    const keyFile = join(data.path, 'login-callback', 'session-id.key');
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    const helper = JSON.parse(readFileSync(join(data.path, 'login-callback', 'helper.json'), 'utf8')) as {
      pid: number;
      port: number;
    };
    helperPid = helper.pid;
    expect(new URL(started.authorization_url).searchParams.get('redirect_uri')).toBe(
      `http://127.0.0.1:${helper.port}/callback`,
    );
    const pid = a.transport.pid!;
    await a.close();
    await eventually(() => !isAlive(pid), 10_000, 'process A to exit');
    expect(isAlive(helperPid)).toBe(true);
  });

  it('the browser completes the sign-in while no server process runs', async () => {
    const page = await followSignIn(started.authorization_url, ANALYST);
    expect(page).toContain('Sign-in received');
  });

  it("process B's oauth_status sees the login, and B lists the user's tools", async () => {
    const b = await start('legacy');
    expect(await b.tools()).toEqual(sorted(LOGIN_TOOLS));
    const seen = b.changes;
    const status = await b.login<{ status: string; session_id: string; user_info: { email: string } }>(
      'oauth_status',
      { session_id: started.session_id },
    );
    expect(status.status).toBe('authenticated');
    expect(status.session_id).toBe(started.session_id);
    expect(status.user_info.email).toBe(ANALYST.email);
    await b.changedSince(seen);
    expect(await b.tools()).toEqual(sorted([...LOGIN_TOOLS, ...ANALYST_TOOLS]));
    expect(textOf(await b.call('hello'))).toBe(`Hello, ${ANALYST.email}!`);
  });

  it('the callback helper is gone once nothing is expected', async () => {
    await eventually(() => !isAlive(helperPid), 15_000, 'the callback helper to exit');
    expect(existsSync(join(data.path, 'login-callback', 'helper.json'))).toBe(false);
  });

  it('a copied session_id is refused on another data folder', async () => {
    const c = await start('modern', {
      AUTHSEC_DATA_DIR: other.path,
      AUTHSEC_DEV_IDP_PORT: String(await freePort()),
      AUTHSEC_REMEMBER_LOGIN: 'false',
    });
    const result = await c.call('oauth_status', { session_id: started.session_id });
    expect(result.isError).toBe(true);
    expect(result.structuredContent).toMatchObject({
      status: 'error',
      error: 'PERMISSION_DENIED',
      reason: 'session_binding',
    });
    expect(await c.tools()).toEqual(sorted(LOGIN_TOOLS));
  });

  it('a tampered MAC, or an id without one, is refused on the same data folder', async () => {
    const d = await start('legacy');
    const [id, mac] = started.session_id.split('.') as [string, string];
    const flipped = `${id}.${mac.startsWith('A') ? 'B' : 'A'}${mac.slice(1)}`;
    for (const session_id of [flipped, id]) {
      const result = await d.call('oauth_status', { session_id });
      expect(result.structuredContent).toMatchObject({
        error: 'PERMISSION_DENIED',
        reason: 'session_binding',
      });
    }
    expect(await d.tools()).toEqual(sorted(LOGIN_TOOLS));
  });
});
