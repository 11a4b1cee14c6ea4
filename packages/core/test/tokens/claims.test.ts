import { describe, expect, it } from 'vitest';
import type { ClaimMapping, ClaimPreset } from '../../src/options.js';
import {
  compileClaimMapping,
  createTokenVerifier,
  mapClaims,
  resolveTenant,
  resolveTokenConfig,
} from '../../src/tokens/index.js';
import {
  claims,
  codeOf,
  memoryLogger,
  rsaKey,
  signRaw,
  syncCodeOf,
  testClock,
} from '../helpers/tokens-support.js';

const map = (
  value: Record<string, unknown>,
  mapping?: ClaimPreset | (ClaimMapping & { preset?: ClaimPreset }),
) => mapClaims(value, compileClaimMapping(mapping));

describe('generic mapping', () => {
  it('reads every field, splits scope strings and de-duplicates', () => {
    const mapped = map({
      sub: 'u1',
      email: 'u1@acme.example',
      tenant_id: 'acme-corp',
      client_id: 'app',
      roles: ['admin', 'admin', 'dev'],
      groups: ['eng'],
      scope: 'read  write read',
      scp: ['deploy', 'write'],
      scopes: ['audit'],
      resources: ['projects'],
      permissions: ['production:write'],
    });
    expect(mapped).toEqual({
      subject: 'u1',
      email: 'u1@acme.example',
      tenant: 'acme-corp',
      clientId: 'app',
      roles: ['admin', 'dev'],
      groups: ['eng'],
      scopes: ['read', 'write', 'deploy', 'audit'],
      resources: ['projects'],
      permissions: ['production:write'],
    });
    expect(Object.isFrozen(mapped.roles)).toBe(true);
    expect(Object.isFrozen(mapped.scopes)).toBe(true);
  });

  it('takes scp as a space-separated string too', () => {
    expect(map({ sub: 'u', scp: 'a b' }).scopes).toEqual(['a', 'b']);
  });

  it('takes a single string as one value for non-scope lists', () => {
    expect(map({ sub: 'u', roles: 'admin', groups: 'Domain Users' })).toMatchObject({
      roles: ['admin'],
      groups: ['Domain Users'],
    });
  });

  it('uses azp when there is no client_id, and treats null as absent', () => {
    expect(map({ sub: 'u', azp: 'spa', email: null, roles: null })).toMatchObject({
      clientId: 'spa',
      email: undefined,
      roles: [],
    });
  });

  it('maps a machine caller (client credentials): no email, subject = sub, else the client id', () => {
    expect(map({ sub: 'svc-account', client_id: 'batch' })).toMatchObject({
      subject: 'svc-account',
      email: undefined,
      clientId: 'batch',
    });
    expect(map({ client_id: 'batch', scope: 'read' })).toMatchObject({
      subject: 'batch',
      email: undefined,
      clientId: 'batch',
      scopes: ['read'],
    });
    expect(map({ azp: 'cli' }).subject).toBe('cli');
  });

  it.each([
    ['roles a number', { sub: 'u', roles: 1 }],
    ['roles with a non-string', { sub: 'u', roles: ['a', null] }],
    ['groups an object', { sub: 'u', groups: { a: 1 } }],
    ['scope a number', { sub: 'u', scope: 3 }],
    ['scp an array with a number', { sub: 'u', scp: ['a', 2] }],
    ['sub a number', { sub: 1 }],
    ['sub an array', { sub: ['u'] }],
    ['email an object', { sub: 'u', email: {} }],
    ['email a boolean', { sub: 'u', email: true }],
    ['client_id a number', { client_id: 7 }],
    ['tenant a number', { sub: 'u', tenant_id: 1 }],
    ['no subject at all', { email: 'a@b.c' }],
    ['subject of 256 characters', { sub: 'x'.repeat(256) }],
    ['subject with a control character', { sub: 'a\u0000b' }],
  ])('refuses %s with TOKEN_INVALID', (_name, value) => {
    expect(syncCodeOf(() => map(value))).toBe('TOKEN_INVALID');
  });

  it('accepts a subject of exactly 255 characters', () => {
    expect(map({ sub: 'x'.repeat(255) }).subject).toHaveLength(255);
  });
});

describe('presets', () => {
  it('keycloak: realm roles plus every client role, flattened', () => {
    const mapped = map(
      {
        sub: 'kc-user',
        azp: 'mcp-client',
        realm_access: { roles: ['admin', 'offline_access'] },
        resource_access: {
          'mcp-api': { roles: ['deployer', 'admin'] },
          account: { roles: ['view-profile'] },
        },
        groups: ['/engineering', 'devops'],
        scope: 'openid read',
      },
      'keycloak',
    );
    expect(mapped.roles).toEqual(['admin', 'offline_access', 'deployer', 'view-profile']);
    expect(mapped.groups).toEqual(['/engineering', 'devops']);
    expect(mapped.scopes).toEqual(['openid', 'read']);
    expect(mapped.clientId).toBe('mcp-client');
  });

  it('keycloak with one client only, through a custom mapping over the preset', () => {
    const mapped = map(
      {
        sub: 'kc-user',
        realm_access: { roles: ['admin'] },
        resource_access: { 'mcp-api': { roles: ['deployer'] }, account: { roles: ['view-profile'] } },
      },
      { preset: 'keycloak', roles: ['realm_access.roles', 'resource_access.mcp-api.roles'] },
    );
    expect(mapped.roles).toEqual(['admin', 'deployer']);
  });

  it('auth0: namespaced claims and permissions', () => {
    const mapped = map(
      {
        sub: 'auth0|123',
        azp: 'spa-client',
        'https://acme.example/roles': ['admin'],
        'https://acme.example/groups': ['engineering'],
        'https://acme.example/tenant_id': 'acme-corp',
        'https://acme.example/email': 'a@acme.example',
        permissions: ['production:write', 'read:reports'],
        scope: 'openid read:reports',
      },
      'auth0',
    );
    expect(mapped).toMatchObject({
      subject: 'auth0|123',
      email: 'a@acme.example',
      tenant: 'acme-corp',
      clientId: 'spa-client',
      roles: ['admin'],
      groups: ['engineering'],
      permissions: ['production:write', 'read:reports'],
      scopes: ['openid', 'read:reports'],
    });
  });

  it('auth0: a namespaced claim of the wrong type is refused', () => {
    expect(syncCodeOf(() => map({ sub: 'u', 'https://acme.example/roles': 5 }, 'auth0'))).toBe(
      'TOKEN_INVALID',
    );
  });

  it('entra: roles, scp string, groups, tid lower-cased, tenant_id first', () => {
    const tid = '72F988BF-86F1-41AF-91AB-2D7CD011DB47';
    const mapped = map(
      {
        sub: 'pairwise',
        appid: 'app-guid',
        roles: ['Admin'],
        scp: 'User.Read Files.Read',
        groups: ['g1'],
        tid,
      },
      'entra',
    );
    expect(mapped).toMatchObject({
      tenant: tid.toLowerCase(),
      clientId: 'app-guid',
      roles: ['Admin'],
      scopes: ['User.Read', 'Files.Read'],
      groups: ['g1'],
    });
    expect(map({ sub: 'u', tid, tenant_id: 'acme-corp' }, 'entra').tenant).toBe('acme-corp');
  });

  it('okta: groups, scp array, cid', () => {
    const mapped = map(
      { sub: 'a@acme.example', cid: '0oa1', scp: ['openid', 'read'], groups: ['Everyone', 'Engineering'] },
      'okta',
    );
    expect(mapped).toMatchObject({
      clientId: '0oa1',
      scopes: ['openid', 'read'],
      groups: ['Everyone', 'Engineering'],
    });
  });
});

describe('paths', () => {
  it('tries a key containing dots whole before walking it', () => {
    const value = { sub: 'u', 'a.b': ['whole'], a: { b: ['walked'] } };
    expect(map(value, { roles: ['a.b'] }).roles).toEqual(['whole']);
    expect(map({ sub: 'u', a: { b: ['walked'] } }, { roles: ['a.b'] }).roles).toEqual(['walked']);
    expect(
      map({ sub: 'u', 'https://acme.example/roles': ['x'] }, { roles: ['https://acme.example/roles'] }).roles,
    ).toEqual(['x']);
  });

  it('never walks into prototypes or arrays', () => {
    const value = JSON.parse('{"sub":"u","__proto__":{"polluted":["yes"]},"list":[["x"]]}') as Record<
      string,
      unknown
    >;
    expect(map(value, { roles: ['constructor.name', 'toString', 'list.0'] }).roles).toEqual([]);
    expect(map(value, { roles: ['__proto__.polluted'] }).roles).toEqual(['yes']);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('merges several paths in order', () => {
    expect(
      map({ sub: 'u', r1: ['b', 'a'], nested: { r2: ['a', 'c'] } }, { roles: ['r1', 'nested.r2'] }).roles,
    ).toEqual(['b', 'a', 'c']);
  });

  it('rejects bad mappings at start with CONFIG_INVALID', () => {
    const bad: unknown[] = [
      'azure',
      { preset: 'azure' },
      { role: ['roles'] },
      { roles: [] },
      { roles: 'roles' },
      { roles: [''] },
      { roles: ['a..b'] },
      { roles: [1] },
      42,
    ];
    for (const mapping of bad) {
      expect(syncCodeOf(() => compileClaimMapping(mapping as ClaimPreset))).toBe('CONFIG_INVALID');
    }
  });
});

describe('tenant resolution', () => {
  it('applies the token tenant, the bound tenant and the default tenant', () => {
    expect(resolveTenant('acme-corp', undefined, undefined)).toBe('acme-corp');
    expect(resolveTenant(undefined, 'bound', 'fallback')).toBe('bound');
    expect(resolveTenant(undefined, undefined, 'fallback')).toBe('fallback');
    expect(resolveTenant('bound', 'bound', undefined)).toBe('bound');
    for (const [named, bound, fallback] of [
      [undefined, undefined, undefined],
      ['other', 'bound', undefined],
      ['UPPER', undefined, undefined],
      ['', undefined, 'fallback'],
    ] as const) {
      expect(syncCodeOf(() => resolveTenant(named, bound, fallback))).toBe('TENANT_UNKNOWN');
    }
  });

  it('end to end: entra tid becomes the tenant, and the default tenant fills in', async () => {
    const clock = testClock();
    const logger = memoryLogger();
    const key = rsaKey('entra-1');
    const verifier = createTokenVerifier(
      resolveTokenConfig(
        {
          issuers: [
            { issuer: 'https://login.example/entra/v2.0', keys: [key.publicJwk], claims: 'entra' },
            { issuer: 'https://plain.example', keys: [key.publicJwk] },
          ],
          audience: 'api://mcp',
          defaultTenant: 'default-tenant',
          clock,
        },
        logger,
      ),
      logger,
    );
    const tid = 'AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE';
    const entraToken = signRaw(
      { alg: 'RS256', kid: key.kid },
      claims(clock, { iss: 'https://login.example/entra/v2.0', aud: 'api://mcp', tid, tenant_id: undefined }),
      key,
    );
    expect((await verifier.verify(entraToken)).tenantId).toBe(tid.toLowerCase());
    const plainToken = signRaw(
      { alg: 'RS256', kid: key.kid },
      claims(clock, { iss: 'https://plain.example', aud: 'api://mcp', tenant_id: undefined }),
      key,
    );
    expect((await verifier.verify(plainToken)).tenantId).toBe('default-tenant');
    const hostile = signRaw(
      { alg: 'RS256', kid: key.kid },
      claims(clock, { iss: 'https://plain.example', aud: 'api://mcp', tenant_id: 'Default-Tenant' }),
      key,
    );
    expect(await codeOf(verifier.verify(hostile))).toBe('TENANT_UNKNOWN');
    verifier.close();
  });
});
