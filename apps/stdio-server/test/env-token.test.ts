/**
 * Credentials from the environment for stdio: `AUTHSEC_ACCESS_TOKEN` and `AUTHSEC_ACCESS_TOKEN_FILE`, verified
 * like any token (signature, issuer, audience, lifetime, directory claims) against a dev IdP of the test's own
 * (AUTHSEC_ISSUER), with the v2 client in both eras. A bad token stops the server at start with an error
 * naming the variable; a token that expires hides the tools (list_changed); a replaced token file takes over.
 */
import { spawn } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type DevIdp, startDevIdp } from '@authsec/dev-idp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ADMIN,
  ADMIN_TOOLS,
  ANALYST,
  ANALYST_TOOLS,
  forge,
  MAIN_JS,
  StdioApp,
  serverProcess,
  tempDir,
  textOf,
  tokensIn,
} from './helpers/stdio.js';
import { sorted, V2StdioApp } from './helpers/stdio-v2.js';

const AUDIENCE = 'urn:authsec:e2e-env-token';

describe('AUTHSEC_ACCESS_TOKEN and AUTHSEC_ACCESS_TOKEN_FILE over stdio (v2)', () => {
  const data = tempDir('env-token');
  let idp: DevIdp;
  let base: Record<string, string>;
  const apps: V2StdioApp[] = [];

  beforeAll(async () => {
    idp = await startDevIdp({ port: 0 });
    base = {
      AUTHSEC_DATA_DIR: data.path,
      AUTHSEC_ISSUER: idp.issuer,
      AUTHSEC_CLIENT_ID: 'authsec-dev',
      AUTHSEC_RESOURCE_URL: AUDIENCE,
      AUTHSEC_REMEMBER_LOGIN: 'false',
    };
  });

  afterAll(async () => {
    await Promise.allSettled(apps.map((a) => a.close()));
    await idp?.close();
    data.remove();
  });

  /** Starts the server expecting it to refuse to start: its exit code and stderr. */
  function refusedStart(env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
    const params = serverProcess(MAIN_JS, { ...base, ...env });
    return new Promise((resolve) => {
      const child = spawn(params.command, params.args, {
        env: params.env,
        stdio: ['pipe', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString('utf8');
      });
      child.on('exit', (code) => resolve({ code, stderr }));
    });
  }

  it('AUTHSEC_ACCESS_TOKEN: exactly the token user’s tools, no oauth_* tools (2026-07-28)', async () => {
    const token = await idp.issueToken(ANALYST.email, { audience: AUDIENCE });
    const app = await new V2StdioApp('modern', { ...base, AUTHSEC_ACCESS_TOKEN: token }).start();
    apps.push(app);
    expect(await app.tools()).toEqual(sorted(ANALYST_TOOLS));
    expect(textOf(await app.call('hello'))).toBe(`Hello, ${ANALYST.email}!`);
    await expect(app.call('admin_panel')).rejects.toMatchObject({ code: -32602 });
    await expect(app.call('oauth_start')).rejects.toMatchObject({ code: -32602 });
  });

  it('the v1 line (main-v1.js) takes the same variable', async () => {
    const token = await idp.issueToken(ADMIN.email, { audience: AUDIENCE });
    const app = await new StdioApp({ ...base, AUTHSEC_ACCESS_TOKEN: token }).start();
    try {
      expect(await app.tools()).toEqual([...ADMIN_TOOLS]);
      expect(textOf(await app.call('hello'))).toBe(`Hello, ${ADMIN.email}!`);
      expect(tokensIn([app])).toEqual([]);
    } finally {
      await app.close();
    }
  });

  it.each([
    ['another audience', 'TOKEN_AUDIENCE', () => idp.issueToken(ANALYST.email, { audience: 'urn:other:x' })],
    [
      'expired',
      'TOKEN_EXPIRED',
      () => idp.issueToken(ANALYST.email, { audience: AUDIENCE, ttlSeconds: -120 }),
    ],
    [
      'forged',
      'TOKEN_INVALID',
      async () => forge(await idp.issueToken(ANALYST.email, { audience: AUDIENCE })),
    ],
    ['not a JWT', 'TOKEN_INVALID', async () => 'not-a-token'],
  ])(
    'AUTHSEC_ACCESS_TOKEN %s: the server refuses to start, naming the variable and %s',
    async (_what, code, make) => {
      const token = await make();
      const { code: exit, stderr } = await refusedStart({ AUTHSEC_ACCESS_TOKEN: token });
      expect(exit).toBe(1);
      expect(stderr).toContain('AUTHSEC_ACCESS_TOKEN: the token was refused');
      expect(stderr).toContain(`(${code})`);
      expect(stderr).not.toContain(token.slice(0, 20));
    },
  );

  it('both variables, or an unreadable file: a start error naming the variable', async () => {
    const both = await refusedStart({ AUTHSEC_ACCESS_TOKEN: 'x', AUTHSEC_ACCESS_TOKEN_FILE: '/nonexistent' });
    expect(both.code).toBe(1);
    expect(both.stderr).toContain('AUTHSEC_ACCESS_TOKEN and AUTHSEC_ACCESS_TOKEN_FILE are both set');
    const missing = await refusedStart({ AUTHSEC_ACCESS_TOKEN_FILE: join(data.path, 'no-such-file') });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('AUTHSEC_ACCESS_TOKEN_FILE: cannot read the token file');
  });

  it('AUTHSEC_ACCESS_TOKEN_FILE (legacy era): a world-readable file is warned about; expiry hides the tools; a replaced file takes over', async () => {
    const file = join(data.path, 'token');
    writeFileSync(file, `${await idp.issueToken(ADMIN.email, { audience: AUDIENCE, ttlSeconds: 6 })}\n`);
    chmodSync(file, 0o644);
    const app = await new V2StdioApp('legacy', { ...base, AUTHSEC_ACCESS_TOKEN_FILE: file }).start();
    apps.push(app);
    expect(await app.tools()).toEqual(sorted(ADMIN_TOOLS));
    expect(app.stderrTail(50)).toContain(
      'AUTHSEC_ACCESS_TOKEN_FILE: the token file can be read by group or others',
    );
    expect(textOf(await app.call('admin_panel'))).toBe('Admin panel accessed');

    // At the token's expiry the tools go, with list_changed, and the warning names the variable.
    let seen = app.changes;
    await app.changedSince(seen, 15_000);
    expect(await app.tools()).toEqual([]);
    await expect(app.call('hello')).rejects.toMatchObject({ code: -32602 });
    expect(app.stderrTail(50)).toContain(
      'AUTHSEC_ACCESS_TOKEN_FILE: the token is no longer accepted (TOKEN_EXPIRED)',
    );

    // A new token in the file takes over without a restart.
    seen = app.changes;
    writeFileSync(file, await idp.issueToken(ANALYST.email, { audience: AUDIENCE }), { mode: 0o600 });
    await app.changedSince(seen, 15_000);
    expect(await app.tools()).toEqual(sorted(ANALYST_TOOLS));
    expect(textOf(await app.call('hello'))).toBe(`Hello, ${ANALYST.email}!`);
  });
});
