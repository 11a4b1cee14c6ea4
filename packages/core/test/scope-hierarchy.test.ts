import { describe, expect, it } from 'vitest';
import {
  createAuthSec,
  createRequestPipeline,
  createResourceServer,
  isAuthSecError,
  silentLogger,
} from '../src/index.js';
import { createScopeExpander } from '../src/scope-hierarchy.js';
import { createLocalIssuer } from './helpers/local-issuer.js';

const ISSUER = 'https://idp.test';
const RESOURCE = 'https://mcp.test/mcp';
const IMPLIES = { admin: ['write'], write: ['read'] };

async function engine() {
  const idp = await createLocalIssuer(ISSUER);
  const authsec = createAuthSec({
    issuers: [{ issuer: ISSUER, keys: [idp.publicJwk] }],
    audience: RESOURCE,
    logger: silentLogger,
    scopes: { implies: IMPLIES },
  });
  authsec.tools.register('read_reports', { scopes: ['read'] }, 'read_reports');
  authsec.tools.register('purge', { scopes: ['admin'] }, 'purge');
  const token = (scope: string) => idp.token({ sub: 'ada', tenant_id: 'acme-corp', scope }, RESOURCE);
  return { authsec, token };
}

describe('scope hierarchies', () => {
  it('expands a caller’s scopes transitively, once per principal', async () => {
    const { authsec, token } = await engine();
    const raw = await token('admin');
    const admin = await authsec.authenticate(raw);
    expect([...admin.scopes].sort()).toEqual(['admin', 'read', 'write']);
    // The same token again is a cache hit: the same expanded principal, not another copy.
    expect(await authsec.authenticate(raw)).toBe(admin);
    const reader = await authsec.authenticate(await token('read'));
    expect(reader.scopes).toEqual(['read']);
  });

  it('is honoured in decisions and lists: admin may read, read may not purge', async () => {
    const { authsec, token } = await engine();
    const admin = await authsec.authenticate(await token('admin'));
    const reader = await authsec.authenticate(await token('read'));
    expect(authsec.can(admin, { scopes: ['read'] })).toBe(true);
    expect(
      authsec
        .visibleTools(admin)
        .map((t) => t.name)
        .sort(),
    ).toEqual(['purge', 'read_reports']);
    expect(authsec.visibleTools(reader).map((t) => t.name)).toEqual(['read_reports']);
    try {
      authsec.authorizeTool(reader, { tool: 'purge' });
      throw new Error('expected a refusal');
    } catch (error) {
      expect(isAuthSecError(error) && error.code).toBe('INSUFFICIENT_SCOPE');
    }
  });

  it('steps up with a challenge naming the higher scope, and lets a token that implies it through', async () => {
    const { authsec, token } = await engine();
    const resourceServer = createResourceServer({
      authsec,
      resourceUrl: RESOURCE,
      authorizationServers: [ISSUER],
    });
    const pipeline = createRequestPipeline({ resourceServer });
    const call = (scope: string) =>
      token(scope).then((t) =>
        pipeline.handle({
          method: 'POST',
          headers: { host: 'mcp.test', authorization: `Bearer ${t}` },
          body: {
            parsed: {
              jsonrpc: '2.0',
              id: 1,
              method: 'tools/call',
              params: { name: 'read_reports', arguments: {} },
            },
          },
        }),
      );
    const writer = await call('write');
    expect(writer.kind).toBe('forward');
    const nothing = await call('profile');
    expect(nothing.kind === 'respond' && nothing.response.status).toBe(403);
    expect(nothing.kind === 'respond' && nothing.response.headers['www-authenticate']).toContain(
      'scope="read profile"',
    );
  });

  it('allows cycles, and refuses a malformed hierarchy with a TypeError', () => {
    const expand = createScopeExpander({ implies: { a: ['b'], b: ['a'] } });
    const principal = Object.freeze({ scopes: Object.freeze(['a']) }) as never;
    expect([...expand(principal).scopes].sort()).toEqual(['a', 'b']);
    expect(() => createScopeExpander({ implies: { 'bad scope': ['x'] } })).toThrow(TypeError);
    expect(() => createScopeExpander({ implies: { a: 'b' as never } })).toThrow(TypeError);
    expect(() => createScopeExpander({ implies: null as never })).toThrow(TypeError);
  });
});
