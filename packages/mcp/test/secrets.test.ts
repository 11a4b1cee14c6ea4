/**
 * The embedded defaults wire `services`: with nothing configured, tools read the tenant's credentials from the
 * encrypted store in the data folder, and a rotation made by another process (the `authsec` command) is used on
 * the next call; with `AUTHSEC_VAULT_ADDR`, they read from Vault and only from Vault.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuthSecError, resolveMasterKey, silentLogger } from '@authsec/core';
import { openStorage, type Storage } from '@authsec/core/postgres';
import { type DevIdp, startDevIdp } from '@authsec/dev-idp';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { protect } from '../src/protect.js';
import { type RunningMcpServer, runMcpServerWithOAuth } from '../src/run.js';
import { connectHttpClient, freePort, type HttpTestClient } from './helpers/http.js';

const SERVICE = 'GitHub API Integration';

/** A local HTTP server that records the requests it receives and answers `answer`. */
async function recorder(answer: (headers: IncomingHttpHeaders) => { status: number; body: unknown }) {
  const seen: { path: string; headers: IncomingHttpHeaders }[] = [];
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      seen.push({ path: req.url ?? '', headers: req.headers });
      const { status, body } = answer(req.headers);
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

// The brief's tool, reduced to what matters here: the stored token goes to the service's URL.
const callService = protect('call_service', { scopes: ['read'] }, async (_args, context) => {
  const service = await context.services.getServiceCredentials(SERVICE);
  const token = await context.services.getServiceToken(SERVICE);
  const response = await fetch(`${service.url}/user/repos`, {
    headers: { authorization: `Bearer ${token}` },
  });
  if (!response.ok) throw new AuthSecError('SERVICE_UNAVAILABLE', `The API answered ${response.status}`);
  return [{ type: 'text', text: `status ${response.status}` }];
});

const textOf = (result: CallToolResult) =>
  result.content.map((c) => (c.type === 'text' ? c.text : '')).join('');

describe('runMcpServerWithOAuth defaults: services', () => {
  let idp: DevIdp;
  let api: Awaited<ReturnType<typeof recorder>>;
  const dirs: string[] = [];
  const closers: (() => Promise<void>)[] = [];

  const start = async (env: Record<string, string> = {}) => {
    const dataDir = mkdtempSync(join(tmpdir(), 'authsec-mcp-secrets-'));
    dirs.push(dataDir);
    const port = await freePort();
    const url = `http://127.0.0.1:${port}/mcp`;
    const running: RunningMcpServer = await runMcpServerWithOAuth({
      appName: 'secrets-defaults',
      tools: [callService],
      transport: 'http',
      port,
      handleSignals: false,
      exitOnClose: false,
      env: {
        AUTHSEC_ISSUER: idp.issuer,
        AUTHSEC_RESOURCE_URL: url,
        AUTHSEC_DATA_DIR: dataDir,
        AUTHSEC_LOG_LEVEL: 'silent',
        ...env,
      },
    });
    closers.push(() => running.close());
    const user = idp.users.find((u) => u.tenant_id === 'acme-corp' && u.scopes.includes('read'))!;
    const client: HttpTestClient = await connectHttpClient(
      url,
      await idp.issueToken(user.email, { audience: url }),
    );
    closers.push(() => client.close());
    const call = async () =>
      (await client.client.callTool({ name: 'call_service', arguments: {} })) as CallToolResult;
    return { dataDir, call };
  };

  beforeAll(async () => {
    idp = await startDevIdp({ port: 0 });
    api = await recorder(() => ({ status: 200, body: [] }));
  });
  afterAll(async () => {
    for (const close of closers.reverse()) await close().catch(() => {});
    await api?.close();
    await idp?.close();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it('without Vault: the encrypted store in the data folder; a rotation by another process is used at once', async () => {
    const { dataDir, call } = await start();
    // Nothing stored yet: a clear refusal.
    const missing = await call();
    expect(missing.isError).toBe(true);
    expect(textOf(missing)).toContain(`Unknown service '${SERVICE}'`);

    // "Another process" (the authsec command) opens the same data folder and stores the token.
    const masterKey = resolveMasterKey({
      masterKey: undefined,
      dataDir,
      development: true,
      logger: silentLogger,
    });
    const admin: Storage = await openStorage({ dataDir, masterKey, logger: silentLogger });
    closers.push(() => admin.close());
    await admin.secrets.write('acme-corp', {
      name: SERVICE,
      url: api.url,
      credentials: { access_token: 'ghp_defaults_first' },
    });
    const before = api.seen.length;
    expect((await call()).isError).toBeFalsy();
    expect(api.seen.slice(before).map((r) => r.headers.authorization)).toEqual(['Bearer ghp_defaults_first']);

    await admin.secrets.rotate('acme-corp', SERVICE, { access_token: 'ghp_defaults_second' });
    const after = api.seen.length;
    expect((await call()).isError).toBeFalsy();
    expect(api.seen.slice(after).map((r) => r.headers.authorization)).toEqual(['Bearer ghp_defaults_second']);
  });

  it('with AUTHSEC_VAULT_ADDR: Vault only (its token sent), a sealed Vault a clear refusal, no fallback', async () => {
    const vault = await recorder(() => ({ status: 503, body: { errors: ['Vault is sealed'] } }));
    closers.push(() => vault.close());
    const { call } = await start({ AUTHSEC_VAULT_ADDR: vault.url, AUTHSEC_VAULT_TOKEN: 'vault-test-token' });
    const before = api.seen.length;
    const result = await call();
    expect(result.isError).toBe(true);
    expect(api.seen.length).toBe(before);
    expect(vault.seen.length).toBeGreaterThan(0);
    for (const r of vault.seen) expect(r.headers['x-vault-token']).toBe('vault-test-token');
    expect(vault.seen.map((r) => r.path)).toContain(
      '/v1/secret/data/authsec/acme-corp/github-api-integration',
    );
  });
});
