import { beforeAll, describe, expect, it } from 'vitest';
import {
  AuthSecError,
  type AuthSecOptions,
  createAuthSec,
  createResourceServer,
  MemoryAuditSink,
  type ResourceServerOptions,
  silentLogger,
} from '../src/index.js';
import { SAMPLE_TOOLS } from './fixtures/sample-tools.js';
import { createLocalIssuer, type LocalIssuer } from './helpers/local-issuer.js';

const ISSUER = 'https://idp.test';
const RESOURCE = 'https://mcp.test/mcp';
const METADATA_URL = 'https://mcp.test/.well-known/oauth-protected-resource/mcp';
let idp: LocalIssuer;
let publicJwk: LocalIssuer['publicJwk'];

beforeAll(async () => {
  idp = await createLocalIssuer(ISSUER);
  publicJwk = idp.publicJwk;
});

const token = (claims: Record<string, unknown>, audience = RESOURCE) => idp.token(claims, audience);

const JOHN = {
  sub: 'john',
  email: 'john@company.com',
  tenant_id: 'acme-corp',
  roles: ['admin', 'developer'],
  groups: ['engineering'],
  scope: 'read write',
  resources: ['projects', 'analytics'],
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

describe('health', () => {
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
