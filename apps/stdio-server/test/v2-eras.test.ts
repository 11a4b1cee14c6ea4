/**
 * The v2 stdio server (`dist/main.js`, SDK v2) with the v2 client as the oracle, once pinned to 2026-07-28 and
 * once in legacy mode, against the real dev IdP: before login only the `oauth_*` tools, after the browser
 * login exactly the user's tools, `notifications/tools/list_changed` after login and logout (on the listen
 * stream in 2026-07-28), and a hidden tool answered like an unknown one.
 */
import { ProtocolError } from '@modelcontextprotocol/client';
import { afterAll, describe, expect, it } from 'vitest';
import {
  ADMIN,
  ADMIN_TOOLS,
  ANALYST,
  ANALYST_TOOLS,
  errorCode,
  freePort,
  LOGIN_TOOLS,
  tempDir,
  textOf,
} from './helpers/stdio.js';
import { ERAS, sorted, V2StdioApp } from './helpers/stdio-v2.js';

describe.each(ERAS)('v2 stdio server, %s era', (era) => {
  const data = tempDir(`v2-${era}`);
  let app: V2StdioApp;

  afterAll(async () => {
    await app?.close();
    data.remove();
  });

  it('before login: only the oauth_* tools; a protected tool is unknown', async () => {
    app = await new V2StdioApp(era, {
      AUTHSEC_DATA_DIR: data.path,
      AUTHSEC_DEV_IDP_PORT: String(await freePort()),
      AUTHSEC_REMEMBER_LOGIN: 'false',
    }).start();
    expect(await app.tools()).toEqual(sorted(LOGIN_TOOLS));
    const hidden = await app.call('admin_panel').catch((error: unknown) => error);
    const unknown = await app.call('no_such_tool').catch((error: unknown) => error);
    expect(hidden).toBeInstanceOf(ProtocolError);
    expect((hidden as ProtocolError).code).toBe(-32602);
    // Hidden is unknown: the same answer, the name aside.
    expect((hidden as Error).message.replace('admin_panel', 'X')).toBe(
      (unknown as Error).message.replace('no_such_tool', 'X'),
    );
  });

  it('after the browser login: exactly the analyst’s tools, with list_changed', async () => {
    await app.browserLogin(ANALYST);
    expect(await app.tools()).toEqual(sorted([...LOGIN_TOOLS, ...ANALYST_TOOLS]));
    expect(textOf(await app.call('hello'))).toBe(`Hello, ${ANALYST.email}!`);
    const status = await app.login<{ status: string; user_info: { email: string } }>('oauth_status');
    expect(status.status).toBe('authenticated');
    expect(status.user_info.email).toBe(ANALYST.email);
    // A tool of the admin's stays hidden from the analyst.
    await expect(app.call('admin_panel')).rejects.toMatchObject({ code: -32602 });
  });

  it('logout hides the tools again, with list_changed', async () => {
    const seen = app.changes;
    expect((await app.login<{ status: string }>('oauth_logout')).status).toBe('logged_out');
    await app.changedSince(seen);
    expect(await app.tools()).toEqual(sorted(LOGIN_TOOLS));
    await expect(app.call('hello')).rejects.toMatchObject({ code: -32602 });
  });

  it('another user logs in on the same connection: exactly the admin’s tools', async () => {
    await app.browserLogin(ADMIN);
    expect(await app.tools()).toEqual(sorted([...LOGIN_TOOLS, ...ADMIN_TOOLS]));
    expect(textOf(await app.call('admin_panel'))).toBe('Admin panel accessed');
    expect(errorCode(await app.call('hello'))).toBeUndefined();
  });
});
