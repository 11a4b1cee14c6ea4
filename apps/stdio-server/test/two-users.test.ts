/**
 * Two users at once: two MCP clients each start their own `apps/stdio-server` process, at the same moment and
 * on one data folder (the embedded PGlite and dev IdP are shared between them). Each process sees only its
 * own login: its own tools and identity, whatever the other one does.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ADMIN,
  ADMIN_TOOLS,
  ANALYST,
  ANALYST_TOOLS,
  errorCode,
  freePort,
  LOGIN_TOOLS,
  StdioApp,
  tempDir,
  textOf,
  tokensIn,
} from './helpers/stdio.js';

describe('two stdio processes on one data folder, started concurrently', () => {
  const data = tempDir('two-users');
  let admin: StdioApp;
  let analyst: StdioApp;

  beforeAll(async () => {
    const env = {
      AUTHSEC_DATA_DIR: data.path,
      AUTHSEC_DEV_IDP_PORT: String(await freePort()),
      // Each client is its own user here: neither may resume a login the other remembered.
      AUTHSEC_REMEMBER_LOGIN: 'false',
    };
    admin = new StdioApp(env);
    analyst = new StdioApp(env);
    try {
      await Promise.all([admin.start(), analyst.start()]);
    } catch (error) {
      // Say why a server did not come up (its own words), not only that the connection closed.
      throw new Error(
        `a stdio server did not start: ${String(error)}\nadmin stderr:\n${admin.stderrTail()}\nanalyst stderr:\n${analyst.stderrTail()}`,
      );
    }
  });

  afterAll(async () => {
    await Promise.allSettled([admin?.close(), analyst?.close()]);
    data.remove();
  });

  it('both start and list only the login tools', async () => {
    const [a, b] = await Promise.all([admin.tools(), analyst.tools()]);
    expect(a).toEqual([...LOGIN_TOOLS]);
    expect(b).toEqual([...LOGIN_TOOLS]);
  });

  it("the admin's login shows the admin's tools there, and nothing changes for the other process", async () => {
    const analystSeen = analyst.changes;
    await admin.browserLogin(ADMIN);
    expect(await admin.tools()).toEqual([...LOGIN_TOOLS, ...ADMIN_TOOLS]);
    expect(textOf(await admin.call('hello'))).toBe(`Hello, ${ADMIN.email}!`);
    // The other connection never runs as this login, not even "the latest login".
    expect(await analyst.tools()).toEqual([...LOGIN_TOOLS]);
    expect(errorCode(await analyst.call('hello'))).toBe('TOKEN_MISSING');
    expect((await analyst.login<{ status: string }>('oauth_status')).status).toBe('not_found');
    expect(analyst.changes).toBe(analystSeen);
  });

  it('both logged in at once: each sees only its own tools and identity', async () => {
    await analyst.browserLogin(ANALYST);
    const [a, b] = await Promise.all([admin.tools(), analyst.tools()]);
    expect(a).toEqual([...LOGIN_TOOLS, ...ADMIN_TOOLS]);
    expect(b).toEqual([...LOGIN_TOOLS, ...ANALYST_TOOLS]);
    // Interleaved calls, in parallel: every answer names the caller of its own process.
    const answers = await Promise.all(
      Array.from({ length: 6 }, (_, i) => (i % 2 === 0 ? admin : analyst).call('hello')),
    );
    answers.forEach((answer, i) => {
      expect(textOf(answer)).toBe(`Hello, ${i % 2 === 0 ? ADMIN.email : ANALYST.email}!`);
    });
    expect(errorCode(await analyst.call('admin_panel'))).toBe('PERMISSION_DENIED');
    expect(textOf(await admin.call('admin_panel'))).toBe('Admin panel accessed');
    const [infoA, infoB] = await Promise.all([
      admin.login<{ user_info: { email: string } }>('oauth_user_info'),
      analyst.login<{ user_info: { email: string } }>('oauth_user_info'),
    ]);
    expect(infoA.user_info.email).toBe(ADMIN.email);
    expect(infoB.user_info.email).toBe(ANALYST.email);
  });

  it("the admin's logout ends only the admin's login", async () => {
    const seen = admin.changes;
    const analystSeen = analyst.changes;
    expect((await admin.login<{ status: string }>('oauth_logout')).status).toBe('logged_out');
    await admin.changedSince(seen);
    expect(await admin.tools()).toEqual([...LOGIN_TOOLS]);
    expect(errorCode(await admin.call('hello'))).toBe('TOKEN_MISSING');
    expect(await analyst.tools()).toEqual([...LOGIN_TOOLS, ...ANALYST_TOOLS]);
    expect(textOf(await analyst.call('hello'))).toBe(`Hello, ${ANALYST.email}!`);
    expect(analyst.changes).toBe(analystSeen);
  });

  it('the admin logs in again while the analyst stays logged in; then the analyst logs out', async () => {
    await admin.browserLogin(ADMIN);
    expect(textOf(await admin.call('hello'))).toBe(`Hello, ${ADMIN.email}!`);
    expect(textOf(await analyst.call('hello'))).toBe(`Hello, ${ANALYST.email}!`);
    const seen = analyst.changes;
    expect((await analyst.login<{ status: string }>('oauth_logout')).status).toBe('logged_out');
    await analyst.changedSince(seen);
    expect(await analyst.tools()).toEqual([...LOGIN_TOOLS]);
    expect(await admin.tools()).toEqual([...LOGIN_TOOLS, ...ADMIN_TOOLS]);
    expect(textOf(await admin.call('hello'))).toBe(`Hello, ${ADMIN.email}!`);
  });

  it('no tool result in either process carried a token', () => {
    expect(tokensIn([admin, analyst])).toEqual([]);
  });
});
