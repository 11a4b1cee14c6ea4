import { exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  AuthSecError,
  type AuthSecOptions,
  createAuthSec,
  createResourceServer,
  isLoopbackHost,
  MemoryAuditSink,
  type Principal,
  type ResourceServerOptions,
  silentLogger,
} from '../src/index.js';
import { SAMPLE_TOOLS } from './fixtures/sample-tools.js';

const ISSUER = 'https://idp.test';
const RESOURCE = 'https://mcp.test/mcp';
const METADATA_URL = 'https://mcp.test/.well-known/oauth-protected-resource/mcp';
let privateKey: Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
let publicJwk: JWK;

beforeAll(async () => {
  const pair = await generateKeyPair('ES256');
  privateKey = pair.privateKey;
  publicJwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256' };
});

async function token(claims: Record<string, unknown>, audience = RESOURCE): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
    .setIssuer(ISSUER)
    .setAudience(audience)
    .setSubject(String(claims.sub ?? 'user-1'))
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + 300)
    .sign(privateKey);
}

const JOHN = {
  sub: 'john',
  email: 'john@company.com',
  tenant_id: 'acme-corp',
  roles: ['admin', 'developer'],
  groups: ['engineering'],
  scope: 'read write',
  resources: ['projects', 'analytics'],
};
const ALICE = {
  sub: 'alice',
  tenant_id: 'acme-corp',
  roles: ['analyst'],
  scope: 'read',
  resources: ['analytics'],
};

function setup(extra: Partial<ResourceServerOptions> = {}, engine: Partial<AuthSecOptions> = {}) {
  const sink = new MemoryAuditSink();
  const authsec = createAuthSec({
    issuers: [{ issuer: ISSUER, keys: [publicJwk] }],
    audience: RESOURCE,
    logger: silentLogger,
    audit: { sinks: [sink] },
    ...engine,
  });
  for (const [name, requirement] of Object.entries(SAMPLE_TOOLS))
    authsec.tools.register(name, requirement, name);
  const rs = createResourceServer({
    authsec,
    resourceUrl: RESOURCE,
    authorizationServers: [ISSUER],
    ...extra,
  });
  return { authsec, rs, sink };
}

async function refusal(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a refusal');
}

const call = (id: number, name: string) => ({
  jsonrpc: '2.0',
  id,
  method: 'tools/call',
  params: { name, arguments: {} },
});

describe('metadata', () => {
  it('is the RFC 9728 document, served at the path form and the root form', () => {
    const { rs } = setup({ resourceName: 'Acme MCP' });
    expect(rs.metadata()).toEqual({
      resource: RESOURCE,
      authorization_servers: [ISSUER],
      scopes_supported: ['write', 'read', 'admin'],
      bearer_methods_supported: ['header'],
      resource_name: 'Acme MCP',
    });
    expect(rs.metadataPaths).toEqual([
      '/.well-known/oauth-protected-resource/mcp',
      '/.well-known/oauth-protected-resource',
    ]);
    expect(rs.resourceMetadataUrl).toBe(METADATA_URL);
    expect(rs.mcpPath).toBe('/mcp');
  });

  it('never lists offline_access, and has one path for a resource at the root', () => {
    const { rs } = setup({ resourceUrl: 'https://mcp.test', scopesSupported: ['read', 'offline_access'] });
    expect(rs.metadata().scopes_supported).toEqual(['read']);
    expect(rs.metadata().resource).toBe('https://mcp.test');
    expect(rs.metadataPaths).toEqual(['/.well-known/oauth-protected-resource']);
  });

  it('refuses bad configuration with TypeErrors', () => {
    expect(() => setup({ resourceUrl: 'https://mcp.test/mcp/' })).toThrow(TypeError);
    expect(() => setup({ resourceUrl: 'https://mcp.test/mcp?x=1' })).toThrow(TypeError);
    expect(() => setup({ resourceUrl: 'ftp://mcp.test/mcp' })).toThrow(TypeError);
    expect(() => setup({ authorizationServers: [] })).toThrow(/authorizationServers/);
    expect(() => setup({ allowedOrigins: ['https://a.test/path'] })).toThrow(/allowedOrigins/);
    expect(() => setup({ insufficientScope: 'both' as 'http' })).toThrow(TypeError);
  });
});

describe('authenticate and challenge', () => {
  it('401 without a token: a bare challenge with resource_metadata and scope, no error', async () => {
    const { rs } = setup();
    const error = await refusal(rs.authenticate({}));
    expect(error).toMatchObject({ code: 'TOKEN_MISSING' });
    const response = rs.challenge(error);
    expect(response.status).toBe(401);
    expect(response.headers['www-authenticate']).toBe(
      `Bearer scope="write read admin", resource_metadata="${METADATA_URL}"`,
    );
    expect(response.body.code).toBe('TOKEN_MISSING');
  });

  it('401 invalid_token for a malformed or forged token and for another audience', async () => {
    const { rs } = setup();
    const good = await token(JOHN);
    const forged = `${good.slice(0, good.lastIndexOf('.'))}.${'A'.repeat(86)}`;
    const cases: [string, string][] = [
      ['Bearer not-a-jwt', 'TOKEN_INVALID'],
      [`Bearer ${forged}`, 'TOKEN_INVALID'],
      [`Bearer ${await token(JOHN, 'https://other.test/mcp')}`, 'TOKEN_AUDIENCE'],
      ['Basic dXNlcjpwYXNz', 'TOKEN_INVALID'],
    ];
    for (const [authorization, code] of cases) {
      const error = await refusal(rs.authenticate({ authorization }));
      expect(error).toMatchObject({ code });
      const response = rs.challenge(error);
      expect(response.status).toBe(401);
      expect(response.headers['www-authenticate']).toMatch(
        /^Bearer error="invalid_token", error_description=/,
      );
      expect(response.headers['www-authenticate']).toContain(`resource_metadata="${METADATA_URL}"`);
      expect(response.headers['www-authenticate']).toContain('scope="write read admin"');
    }
  });

  it('refuses two Authorization headers', async () => {
    const { rs } = setup();
    const good = `Bearer ${await token(JOHN)}`;
    expect(await refusal(rs.authenticate({ authorization: [good, good] }))).toMatchObject({
      code: 'TOKEN_INVALID',
    });
  });

  it('401 invalid_token for an unknown tenant, 503 without details for an unreachable dependency', async () => {
    const failing = (code: 'TENANT_UNKNOWN' | 'SERVICE_UNAVAILABLE') =>
      setup(
        {},
        {
          directory: {
            resolve: async () => {
              throw new AuthSecError(
                code,
                code === 'TENANT_UNKNOWN' ? 'Unknown tenant' : 'database down: 10.0.0.7',
              );
            },
          },
        },
      ).rs;
    const unknown = failing('TENANT_UNKNOWN');
    const tenantError = await refusal(unknown.authenticate({ authorization: `Bearer ${await token(JOHN)}` }));
    expect(tenantError).toMatchObject({ code: 'TENANT_UNKNOWN' });
    const tenant = unknown.challenge(tenantError);
    expect(tenant.status).toBe(401);
    expect(tenant.headers['www-authenticate']).toContain('error="invalid_token"');

    const down = failing('SERVICE_UNAVAILABLE');
    const downError = await refusal(down.authenticate({ authorization: `Bearer ${await token(JOHN)}` }));
    const unavailable = down.challenge(downError);
    expect(unavailable.status).toBe(503);
    expect(unavailable.headers['www-authenticate']).toBeUndefined();
    expect(unavailable.headers['retry-after']).toBe('5');
    expect(JSON.stringify(unavailable.body)).not.toContain('10.0.0.7');
    expect(unavailable.body.code).toBe('SERVICE_UNAVAILABLE');
  });

  it('403 without an OAuth challenge for PERMISSION_DENIED, 500 generic for anything else', () => {
    const { rs } = setup();
    const denied = rs.challenge(new AuthSecError('PERMISSION_DENIED', 'no'));
    expect(denied.status).toBe(403);
    expect(denied.headers['www-authenticate']).toBeUndefined();
    const bug = rs.challenge(new Error('secret detail'));
    expect(bug.status).toBe(500);
    expect(JSON.stringify(bug.body)).not.toContain('secret detail');
  });

  it('returns the principal, and the SDK AuthInfo shape for it', async () => {
    const { rs } = setup();
    const raw = await token(JOHN);
    const principal = await rs.authenticate({ authorization: `Bearer ${raw}` });
    expect(principal.subject).toBe('john');
    const info = rs.authInfo(principal, { authorization: `Bearer ${raw}` });
    expect(info).toMatchObject({ token: raw, scopes: ['read', 'write'], expiresAt: principal.expiresAt });
    expect(info.extra.principal).toBe(principal);
    expect(info.resource.href).toBe(RESOURCE);
  });
});

describe('preflightToolCall (insufficient_scope step-up)', () => {
  let alice: Principal;
  let john: Principal;
  beforeAll(async () => {
    const { rs } = setup();
    alice = await rs.authenticate({ authorization: `Bearer ${await token(ALICE)}` });
    john = await rs.authenticate({ authorization: `Bearer ${await token(JOHN)}` });
  });

  it('answers 403 insufficient_scope with every scope needed plus those held, and audits it', () => {
    const { rs, sink } = setup();
    const response = rs.preflightToolCall(alice, call(1, 'create_resource'));
    expect(response?.status).toBe(403);
    expect(response?.headers['www-authenticate']).toMatch(
      /^Bearer error="insufficient_scope", error_description="/,
    );
    expect(response?.headers['www-authenticate']).toContain('scope="write read"');
    expect(response?.headers['www-authenticate']).toContain(`resource_metadata="${METADATA_URL}"`);
    expect(response?.body.code).toBe('INSUFFICIENT_SCOPE');
    expect(sink.events).toContainEqual(
      expect.objectContaining({
        action: 'tool.call',
        decision: 'deny',
        target: 'create_resource',
        reason: 'INSUFFICIENT_SCOPE',
      }),
    );
  });

  it('leaves allowed calls, PERMISSION_DENIED, unknown tools and other methods to the server', () => {
    const { rs } = setup();
    expect(rs.preflightToolCall(john, call(1, 'create_resource'))).toBeUndefined();
    expect(rs.preflightToolCall(alice, call(1, 'admin_panel'))).toBeUndefined();
    expect(rs.preflightToolCall(alice, call(1, 'no_such_tool'))).toBeUndefined();
    expect(rs.preflightToolCall(alice, { jsonrpc: '2.0', id: 1, method: 'tools/list' })).toBeUndefined();
    expect(rs.preflightToolCall(alice, 'garbage')).toBeUndefined();
    expect(rs.preflightToolCall(alice, { method: 'tools/call', params: { name: 42 } })).toBeUndefined();
  });

  it('merges the scopes of every step-up call of a batch, and ignores batches without one', () => {
    const { rs } = setup({ scopesSupported: ['read', 'write', 'admin'] });
    const noAnalytics = { ...alice, resources: [], scopes: [] } as Principal;
    const batch = [call(1, 'hello'), call(2, 'create_resource'), call(3, 'list_my_repos')];
    const response = rs.preflightToolCall(noAnalytics, batch);
    expect(response?.status).toBe(403);
    expect(response?.headers['www-authenticate']).toContain('scope="write read"');
    expect(rs.preflightToolCall(alice, [call(1, 'hello'), call(2, 'admin_panel')])).toBeUndefined();
  });

  it("is off with insufficientScope: 'result'", () => {
    const { rs } = setup({ insufficientScope: 'result' });
    expect(rs.insufficientScope).toBe('result');
    expect(rs.preflightToolCall(alice, call(1, 'create_resource'))).toBeUndefined();
  });
});

describe('origins and CORS', () => {
  it('accepts no Origin, its own, configured ones; refuses the rest', () => {
    const { rs } = setup({ allowedOrigins: ['https://app.test'] });
    expect(rs.checkOrigin(undefined)).toBe(true);
    expect(rs.checkOrigin('https://mcp.test')).toBe(true);
    expect(rs.checkOrigin('https://app.test')).toBe(true);
    for (const bad of [
      'https://evil.test',
      'http://mcp.test',
      'null',
      'http://127.0.0.1:3000',
      'https://mcp.test.evil',
    ])
      expect(rs.checkOrigin(bad)).toBe(false);
  });

  it('accepts any loopback origin when the resource is on loopback', () => {
    const { rs } = setup(
      { resourceUrl: 'http://127.0.0.1:3000/mcp' },
      { audience: 'http://127.0.0.1:3000/mcp' },
    );
    for (const ok of [
      'http://127.0.0.1:3000',
      'http://localhost:3000',
      'http://[::1]:3000',
      'http://localhost:6274',
    ])
      expect(rs.checkOrigin(ok)).toBe(true);
    expect(rs.checkOrigin('http://evil.test')).toBe(false);
    expect(rs.checkOrigin('http://127.0.0.1.evil.test')).toBe(false);
  });

  it('exposes WWW-Authenticate and Mcp-Session-Id to CORS origins only', () => {
    const { rs } = setup({ cors: { origins: ['https://app.test'] } });
    expect(rs.checkOrigin('https://app.test')).toBe(true);
    expect(rs.corsHeaders('https://app.test', false)).toEqual({
      'access-control-allow-origin': 'https://app.test',
      vary: 'Origin',
      'access-control-expose-headers': 'WWW-Authenticate, Mcp-Session-Id',
    });
    expect(rs.corsHeaders('https://app.test', true)['access-control-allow-headers']).toContain(
      'Mcp-Session-Id',
    );
    expect(rs.corsHeaders('https://evil.test', true)).toEqual({});
    expect(setup().rs.corsHeaders('https://app.test', false)).toEqual({});
  });
});

describe('sessions, clients, health', () => {
  it('binds sessions to issuer, tenant and subject', async () => {
    const { rs } = setup();
    const john = await rs.authenticate({ authorization: `Bearer ${await token(JOHN)}` });
    const alice = await rs.authenticate({ authorization: `Bearer ${await token(ALICE)}` });
    expect(rs.sessionOwner(john)).toBe(JSON.stringify([ISSUER, 'acme-corp', 'john']));
    expect(rs.sessionOwner(john)).not.toBe(rs.sessionOwner(alice));
    expect(rs.sessionOwner(undefined)).toBeNull();
  });

  it('refuses a session to another subject, and audits it', async () => {
    const { rs, sink } = setup();
    const john = await rs.authenticate({ authorization: `Bearer ${await token(JOHN)}` });
    const alice = await rs.authenticate({ authorization: `Bearer ${await token(ALICE)}` });
    expect(rs.canUseSession(rs.sessionOwner(john), john)).toBe(true);
    expect(rs.canUseSession(rs.sessionOwner(john), alice)).toBe(false);
    expect(rs.canUseSession(null, alice)).toBe(false);
    expect(rs.canUseSession(null, undefined)).toBe(true);
    expect(sink.events).toContainEqual(
      expect.objectContaining({
        action: 'authenticate',
        target: 'mcp-session',
        subject: 'alice',
        reason: 'PERMISSION_DENIED',
      }),
    );
  });

  it('trusts X-Forwarded-For only with trustProxy', () => {
    const plain = setup().rs;
    const proxied = setup({ trustProxy: true }).rs;
    expect(plain.isLoopbackClient({ remoteAddress: '127.0.0.1' })).toBe(true);
    expect(plain.isLoopbackClient({ remoteAddress: '10.0.0.2', forwardedFor: '127.0.0.1' })).toBe(false);
    expect(proxied.isLoopbackClient({ remoteAddress: '10.0.0.2', forwardedFor: '127.0.0.1, 10.0.0.1' })).toBe(
      true,
    );
    expect(proxied.isLoopbackClient({ remoteAddress: '127.0.0.1', forwardedFor: '203.0.113.9' })).toBe(false);
    expect(isLoopbackHost('127.8.9.10')).toBe(true);
    expect(isLoopbackHost('127.example')).toBe(false);
  });

  it('answers health, and readiness from the engine: not ready while a key set cannot be fetched', async () => {
    const { rs } = setup();
    expect(rs.health()).toEqual({ status: 'ok' });
    // Local keys: nothing to fetch, nothing to check.
    expect(await rs.ready()).toEqual({ status: 'ready', resource: RESOURCE, checks: {} });
    // Nothing listens on port 9 of loopback: the JWKS issuer's keys are unavailable, and so is the service.
    const down = 'http://127.0.0.1:9/idp';
    const { rs: remote, authsec } = setup(
      { authorizationServers: [down] },
      { issuers: [{ issuer: down, jwksUrl: `${down}/jwks` }] },
    );
    expect(await remote.ready()).toEqual({
      status: 'unavailable',
      resource: RESOURCE,
      checks: { [`keys ${down}`]: 'unavailable' },
    });
    await authsec.close();
    expect(await remote.ready()).toMatchObject({ status: 'unavailable', checks: { engine: 'unavailable' } });
  });
});
