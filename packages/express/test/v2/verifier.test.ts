/**
 * AuthSec as the `OAuthTokenVerifier` of the SDK v2's own `requireBearerAuth` (`@modelcontextprotocol/express`),
 * on a real Express app, with a protected v2 server behind it through the SDK's `createMcpHandler` and
 * `toNodeHandler`, reached with the v2 client.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Principal, resolveMasterKey, silentLogger } from '@authsec/core';
import { openStorage } from '@authsec/core/postgres';
import { authSecTokenVerifier } from '@authsec/mcp/v2';
import { requireBearerAuth } from '@modelcontextprotocol/express';
import { toNodeHandler } from '@modelcontextprotocol/node';
import { createMcpHandler } from '@modelcontextprotocol/server';
import express from 'express';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ADMIN,
  ADMIN_TOOLS,
  ANALYST,
  attempt,
  closeAll,
  connect,
  ERAS,
  type Fixture,
  fixture,
  listen,
  text,
} from './helpers.js';

afterEach(closeAll);

/** An app with the SDK's bearer middleware (AuthSec as its verifier) on `/me` and in front of `/mcp`. */
async function serve(f: Fixture, requiredScopes?: string[]): Promise<string> {
  const verifier = authSecTokenVerifier(f.authsec);
  const app = express();
  const bearer = requireBearerAuth({
    verifier,
    expectedResource: new URL(f.url),
    ...(requiredScopes ? { requiredScopes } : {}),
  });
  app.get('/me', bearer, (req, res) => {
    const principal = req.auth?.extra?.principal as Principal;
    res.json({
      subject: principal.subject,
      tenant: principal.tenantId,
      scopes: req.auth?.scopes,
      clientId: req.auth?.clientId,
      resource: req.auth?.resource?.href,
      expiresAt: req.auth?.expiresAt,
    });
  });
  const mcp = toNodeHandler(createMcpHandler(f.server.factory, { legacy: 'stateless' }));
  app.all('/mcp', express.json(), bearer, (req, res) => {
    void mcp(req, res, req.body);
  });
  return listen(app, f.port);
}

const get = (base: string, token?: string) =>
  fetch(`${base}/me`, token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } });

describe('authSecTokenVerifier behind the SDK requireBearerAuth', () => {
  it('passes a valid token with the principal and the scopes with implied ones added', async () => {
    const f = await fixture();
    const base = await serve(f);
    const token = f.token({ ...ANALYST, scope: 'write', azp: 'client-9' });
    const res = await get(base, token);
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body.subject).toBe(ANALYST.sub);
    expect(body.tenant).toBe(ANALYST.tenant_id);
    // `write` implies `read` in the fixture's hierarchy: the SDK sees both.
    expect(body.scopes).toEqual(['write', 'read']);
    expect(body.clientId).toBe('client-9');
    expect(body.resource).toBe(f.url);
    expect(body.expiresAt).toBeGreaterThan(Date.now() / 1000);
  });

  it.each([
    ['expired', (f: Fixture) => f.token(ANALYST, { expiresIn: -120 })],
    ['for another audience', (f: Fixture) => f.token(ANALYST, { audience: 'https://other.example/mcp' })],
    ['naming no tenant', (f: Fixture) => f.token({ ...ANALYST, tenant_id: undefined })],
    ['naming an invalid tenant', (f: Fixture) => f.token({ ...ANALYST, tenant_id: 'No Such Tenant!' })],
    ['badly signed', (f: Fixture) => `${f.token(ANALYST).slice(0, -4)}AAAA`],
  ])('refuses a token %s with 401 invalid_token and a challenge', async (_case, make) => {
    const f = await fixture();
    const base = await serve(f);
    const res = await get(base, make(f));
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer .*error="invalid_token"/);
    expect(((await res.json()) as { error: string }).error).toBe('invalid_token');
  });

  it('honours requiredScopes (implied scopes count): 403 insufficient_scope otherwise', async () => {
    const f = await fixture();
    const base = await serve(f, ['read']);
    expect((await get(base, f.token({ ...ANALYST, scope: 'write' }))).status).toBe(200);
    const refused = await get(base, f.token({ ...ANALYST, scope: 'profile' }));
    expect(refused.status).toBe(403);
    expect(refused.headers.get('www-authenticate')).toMatch(/error="insufficient_scope"/);
    expect(((await refused.json()) as { error: string }).error).toBe('insufficient_scope');
  });

  /** A PGlite database in a fresh data folder, removed with {@link closeDatabases}. */
  const databases: (() => Promise<void>)[] = [];
  async function database() {
    const dataDir = mkdtempSync(join(tmpdir(), 'authsec-express-v2-'));
    const masterKey = resolveMasterKey({
      masterKey: undefined,
      dataDir,
      development: true,
      logger: silentLogger,
    });
    const storage = await openStorage({ dataDir, masterKey, logger: silentLogger });
    databases.push(async () => {
      await storage.close();
      rmSync(dataDir, { recursive: true, force: true });
    });
    return storage;
  }
  afterEach(async () => {
    await closeAll();
    for (const close of databases.splice(0)) await close();
  });

  it('refuses a tenant the database does not know with 401 invalid_token (PGlite directory)', async () => {
    const storage = await database();
    const f = await fixture({ directory: storage.directory });
    const base = await serve(f);
    const ghost = () => f.token({ ...ANALYST, tenant_id: 'ghost-corp' });
    await expect(f.authsec.authenticate(ghost())).rejects.toMatchObject({ code: 'TENANT_UNKNOWN' });
    const res = await get(base, ghost());
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/error="invalid_token"/);
    expect(((await res.json()) as { error: string }).error).toBe('invalid_token');
  });

  it('a database outage is a 500 server_error through the SDK middleware (fail closed, nothing leaked)', async () => {
    const storage = await database();
    const f = await fixture({ directory: storage.directory });
    const base = await serve(f);
    await storage.sql.close(); // the database goes away
    await expect(f.authsec.authenticate(f.token(ANALYST))).rejects.toMatchObject({
      code: 'SERVICE_UNAVAILABLE',
    });
    const res = await get(base, f.token(ANALYST));
    expect(res.status).toBe(500);
    const body = (await res.json()) as { error: string; error_description: string };
    expect(body.error).toBe('server_error');
    expect(body.error_description).not.toMatch(/database/i);
  });

  it('refuses a missing token with 401 and a bare challenge', async () => {
    const f = await fixture();
    const res = await get(await serve(f));
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
  });

  it('rejects a non-engine at creation', () => {
    expect(() => authSecTokenVerifier({} as never)).toThrow(TypeError);
    expect(() =>
      authSecTokenVerifier({ authenticate: async () => ({}) } as never, { resource: 'no url' }),
    ).toThrow(TypeError);
  });

  describe.each(ERAS)('a protected v2 server behind it, %s era', (era) => {
    it("serves exactly the caller's tools and refuses a hidden one as unknown", async () => {
      const f = await fixture();
      await serve(f);
      const client = await connect(f.url, f.token(ADMIN), era);
      const { tools } = await client.listTools();
      expect(tools.map((t) => t.name)).toEqual(ADMIN_TOOLS);
      expect(text(await client.callTool({ name: 'admin_panel', arguments: {} }))).toBe(
        `admin_panel by ${ADMIN.sub}`,
      );
      const analyst = await connect(f.url, f.token(ANALYST), era);
      const hidden = await attempt(analyst, 'admin_panel');
      expect(hidden).toBe(await attempt(analyst, 'no_such_tool'));
      expect(hidden).toMatch(/^-32602 .*not found/i);
    });
  });
});
