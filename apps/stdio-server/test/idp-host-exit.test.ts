/**
 * Several stdio processes share one embedded dev IdP: the first hosts it, the others use it. When the host
 * process exits (its MCP client closed) while another one keeps running, the survivor must still be able to
 * log in, as it still can use the shared database (which elects a new host).
 * Every process watches the IdP and hosts it again (same port, same keys) when it is gone.
 */
import { describe, expect, it } from 'vitest';
import { ADMIN, ADMIN_TOOLS, freePort, LOGIN_TOOLS, StdioApp, tempDir, textOf } from './helpers/stdio.js';

describe('the embedded dev IdP outlives the process that hosted it', () => {
  it('a process still running after the IdP host exited can log in', async () => {
    const data = tempDir('idp-host');
    const env = {
      AUTHSEC_DATA_DIR: data.path,
      AUTHSEC_DEV_IDP_PORT: String(await freePort()),
      AUTHSEC_REMEMBER_LOGIN: 'false',
    };
    const host = await new StdioApp(env).start();
    let survivor: StdioApp | undefined;
    try {
      expect(await host.tools()).toEqual([...LOGIN_TOOLS]);
      survivor = await new StdioApp(env).start();
      expect(await survivor.tools()).toEqual([...LOGIN_TOOLS]);
      await host.close();
      // Allow the survivor a few seconds to take over, as the shared database does.
      let started: { status?: string } = {};
      const s = survivor;
      for (let i = 0; i < 10 && started.status !== 'ready_for_authentication'; i++) {
        started = (await s.call('oauth_start')).structuredContent as { status?: string };
        if (started.status !== 'ready_for_authentication') await new Promise((r) => setTimeout(r, 1500));
      }
      expect(started.status).toBe('ready_for_authentication');
      await s.browserLogin(ADMIN);
      expect(await s.tools()).toEqual([...LOGIN_TOOLS, ...ADMIN_TOOLS]);
      expect(textOf(await s.call('hello'))).toBe(`Hello, ${ADMIN.email}!`);
    } finally {
      await Promise.allSettled([host.close(), survivor?.close()]);
      data.remove();
    }
  }, 60_000);
});
