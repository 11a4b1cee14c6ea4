import { describe, expect, it } from 'vitest';
import { type AuthSecError, isAuthSecError } from '../../src/errors.js';
import type { AuthSecOptions } from '../../src/options.js';
import { DEFAULT_ALGORITHMS, resolveTokenConfig } from '../../src/tokens/index.js';
import { ecKey, memoryLogger, rsaKey, syncCodeOf } from '../helpers/tokens-support.js';

const AUD = 'https://mcp.example/mcp';
const rs = rsaKey('r1');
const ec = ecKey('e1');
const SECRET = 's'.repeat(32);

function resolve(options: Record<string, unknown>) {
  const logger = memoryLogger();
  const config = resolveTokenConfig({ audience: AUD, ...options } as unknown as AuthSecOptions, logger);
  return { config, logger };
}

function configError(options: Record<string, unknown>): AuthSecError {
  try {
    resolve(options);
  } catch (error) {
    if (isAuthSecError(error)) return error;
    throw error;
  }
  throw new Error('expected CONFIG_INVALID, got a configuration');
}

describe('resolveTokenConfig defaults', () => {
  it('applies every default and freezes the result', () => {
    const { config, logger } = resolve({ issuers: ['https://issuer.example'] });
    expect(config.issuers).toHaveLength(1);
    expect(config.issuers[0]).toMatchObject({
      issuer: 'https://issuer.example',
      algorithms: DEFAULT_ALGORITHMS,
      keySource: { kind: 'remote', jwksUrl: undefined },
      introspection: undefined,
      tenantId: undefined,
    });
    expect(config).toMatchObject({
      audience: [AUD],
      clockToleranceSeconds: 30,
      maxTokenBytes: 8192,
      requiredTokenType: undefined,
      defaultTenant: undefined,
      cache: { enabled: true, maxEntries: 10_000 },
      jwks: { timeoutMs: 5000, maxBytes: 65_536, cooldownMs: 30_000, maxAgeMs: 600_000 },
    });
    expect(config.clock).toBe(Date.now);
    expect(typeof config.fetch).toBe('function');
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.issuers[0])).toBe(true);
    expect(Object.isFrozen(config.audience)).toBe(true);
    expect(logger.lines.filter((l) => l.level === 'warn')).toEqual([]);
    expect(DEFAULT_ALGORITHMS).not.toContain('HS256');
  });

  it('accepts http issuers and URLs on loopback only', () => {
    for (const issuer of ['http://127.0.0.1:8080', 'http://localhost:3000/realms/a', 'http://[::1]:9000']) {
      expect(resolve({ issuers: [issuer] }).config.issuers[0]!.issuer).toBe(issuer);
    }
  });

  it('gives a secret issuer HS256 and keeps engine-wide symmetric algorithms away from the others', () => {
    const { config, logger } = resolve({
      algorithms: ['RS256', 'HS256'],
      issuers: [
        { issuer: 'https://hs.example', secret: SECRET },
        { issuer: 'https://rs.example', keys: [rs.publicJwk] },
      ],
    });
    expect(config.issuers[0]!.algorithms).toEqual(['HS256']);
    expect(config.issuers[1]!.algorithms).toEqual(['RS256']);
    expect(logger.messages('warn').some((m) => m.includes('shared secret'))).toBe(true);
  });

  it('copies secrets and keys, so later changes to the options do not reach the verifier', () => {
    const secret = new Uint8Array(32).fill(7);
    const jwk = { ...rs.publicJwk };
    const { config } = resolve({
      issuers: [
        { issuer: 'https://hs.example', secret },
        { issuer: 'https://rs.example', keys: [jwk] },
      ],
    });
    secret.fill(0);
    jwk.n = 'changed';
    const source = config.issuers[0]!.keySource;
    expect(source.kind === 'secret' && source.secret[0]).toBe(7);
    const local = config.issuers[1]!.keySource;
    expect(local.kind === 'local' && local.keys[0]!.n).toBe(rs.publicJwk.n);
  });

  it('warns about insecure but allowed choices', () => {
    const { logger } = resolve({
      issuers: [{ issuer: 'https://hs.example', secret: SECRET }],
      clockToleranceSeconds: 120,
      cache: { enabled: false },
      jwks: { cooldownMs: 100 },
    });
    const warnings = logger.lines.filter((l) => l.level === 'warn').map((l) => l.fields?.option);
    expect(warnings).toEqual(
      expect.arrayContaining([
        'issuers[0].secret',
        'clockToleranceSeconds',
        'cache.enabled',
        'jwks.cooldownMs',
      ]),
    );
  });

  it('names the option in its message', () => {
    const error = configError({ issuers: [{ issuer: 'https://hs.example', secret: 'short' }] });
    expect(error.code).toBe('CONFIG_INVALID');
    expect(error.message.startsWith('issuers[0].secret:')).toBe(true);
  });
});

describe('resolveTokenConfig refuses bad values with CONFIG_INVALID', () => {
  const key = rs.publicJwk;
  const issuer = 'https://issuer.example';
  const cases: [string, Record<string, unknown>][] = [
    ['no issuers', { issuers: [] }],
    ['issuers missing', { issuers: undefined }],
    ['issuer empty', { issuers: [''] }],
    ['issuer a number', { issuers: [42] }],
    ['http issuer on a public host', { issuers: ['http://issuer.example'] }],
    ['http issuer on a private address', { issuers: ['http://10.0.0.1'] }],
    ['issuer with credentials', { issuers: ['https://user:pw@issuer.example'] }],
    ['issuer not a URL and no key source', { issuers: ['my-issuer'] }],
    ['duplicate issuer', { issuers: [issuer, issuer] }],
    ['jwksUrl over http on a public host', { issuers: [{ issuer, jwksUrl: 'http://issuer.example/jwks' }] }],
    ['jwksUrl not http(s)', { issuers: [{ issuer, jwksUrl: 'file:///etc/jwks.json' }] }],
    ['jwksUrl not a URL', { issuers: [{ issuer, jwksUrl: 'jwks.json' }] }],
    ['keys and secret together', { issuers: [{ issuer, keys: [key], secret: SECRET }] }],
    ['jwksUrl and keys together', { issuers: [{ issuer, keys: [key], jwksUrl: `${issuer}/jwks` }] }],
    ['secret of 31 bytes', { issuers: [{ issuer, secret: 's'.repeat(31) }] }],
    ['secret of 31 bytes as Uint8Array', { issuers: [{ issuer, secret: new Uint8Array(31) }] }],
    ['secret a number', { issuers: [{ issuer, secret: 12345 }] }],
    ['HS384 with a 32-byte secret', { issuers: [{ issuer, secret: SECRET, algorithms: ['HS384'] }] }],
    ['RS256 for a secret issuer', { issuers: [{ issuer, secret: SECRET, algorithms: ['RS256'] }] }],
    ['HS256 for an issuer without a secret', { issuers: [{ issuer, keys: [key], algorithms: ['HS256'] }] }],
    [
      'engine-wide HS256 with no secret issuer',
      { issuers: [{ issuer, keys: [key] }], algorithms: ['HS256'] },
    ],
    [
      'engine-wide symmetric only, for an asymmetric issuer',
      { issuers: [{ issuer, keys: [key] }], algorithms: ['HS256'] },
    ],
    ['alg none', { issuers: [issuer], algorithms: ['none'] }],
    ['alg NONE', { issuers: [issuer], algorithms: ['RS256', 'NONE'] }],
    ['alg none for one issuer', { issuers: [{ issuer, keys: [key], algorithms: ['none'] }] }],
    ['unknown algorithm', { issuers: [issuer], algorithms: ['RS1'] }],
    ['empty algorithms', { issuers: [issuer], algorithms: [] }],
    ['algorithms not an array', { issuers: [issuer], algorithms: 'RS256' }],
    ['keys empty', { issuers: [{ issuer, keys: [] }] }],
    ['private key in keys', { issuers: [{ issuer, keys: [rs.privateKey.export({ format: 'jwk' })] }] }],
    ['symmetric key in keys', { issuers: [{ issuer, keys: [{ kty: 'oct', k: 'AAAA' }] }] }],
    ['several keys without kid', { issuers: [{ issuer, keys: [{ ...key, kid: undefined }, ec.publicJwk] }] }],
    ['duplicate kid', { issuers: [{ issuer, keys: [key, { ...ec.publicJwk, kid: key.kid }] }] }],
    ['audience missing', { issuers: [issuer], audience: undefined }],
    ['audience empty string', { issuers: [issuer], audience: '' }],
    ['audience empty array', { issuers: [issuer], audience: [] }],
    ['audience with a number', { issuers: [issuer], audience: [AUD, 1] }],
    ['clock tolerance 301', { issuers: [issuer], clockToleranceSeconds: 301 }],
    ['clock tolerance negative', { issuers: [issuer], clockToleranceSeconds: -1 }],
    ['clock tolerance NaN', { issuers: [issuer], clockToleranceSeconds: Number.NaN }],
    ['clock tolerance a string', { issuers: [issuer], clockToleranceSeconds: '30' }],
    ['maxTokenBytes 0', { issuers: [issuer], maxTokenBytes: 0 }],
    ['maxTokenBytes fractional', { issuers: [issuer], maxTokenBytes: 4096.5 }],
    ['requiredTokenType empty', { issuers: [issuer], requiredTokenType: ' ' }],
    ['defaultTenant invalid', { issuers: [issuer], defaultTenant: 'Acme Corp' }],
    ['issuer tenantId invalid', { issuers: [{ issuer, tenantId: '../x' }] }],
    ['cache.maxEntries 0', { issuers: [issuer], cache: { maxEntries: 0 } }],
    ['cache.enabled not a boolean', { issuers: [issuer], cache: { enabled: 'yes' } }],
    ['jwks.timeoutMs 0', { issuers: [issuer], jwks: { timeoutMs: 0 } }],
    ['jwks.maxBytes tiny', { issuers: [issuer], jwks: { maxBytes: 10 } }],
    ['jwks.cooldownMs negative', { issuers: [issuer], jwks: { cooldownMs: -1 } }],
    [
      'two issuers with introspection',
      {
        issuers: [
          { issuer, introspection: { endpoint: `${issuer}/introspect`, clientId: 'a', clientSecret: 'b' } },
          {
            issuer: 'https://other.example',
            introspection: { endpoint: 'https://other.example/introspect', clientId: 'a', clientSecret: 'b' },
          },
        ],
      },
    ],
    [
      'introspection over http on a public host',
      {
        issuers: [
          {
            issuer,
            introspection: { endpoint: 'http://issuer.example/i', clientId: 'a', clientSecret: 'b' },
          },
        ],
      },
    ],
    [
      'introspection without a secret',
      { issuers: [{ issuer, introspection: { endpoint: `${issuer}/i`, clientId: 'a' } }] },
    ],
    ['unknown claim preset', { issuers: [{ issuer, claims: 'azure' }] }],
    ['unknown claim field', { issuers: [{ issuer, claims: { role: ['roles'] } }] }],
    ['misspelt issuer option', { issuers: [{ issuer, jwksURL: `${issuer}/jwks` }] }],
    [
      'misspelt introspection option',
      { issuers: [{ issuer, introspection: { url: `${issuer}/i`, clientId: 'a', clientSecret: 'b' } }] },
    ],
    ['misspelt cache option', { issuers: [issuer], cache: { max: 10 } }],
    ['misspelt jwks option', { issuers: [issuer], jwks: { timeout: 10 } }],
    ['fetch not a function', { issuers: [issuer], fetch: 'fetch' }],
    ['clock not a function', { issuers: [issuer], clock: 0 }],
  ];

  it.each(cases)('%s', (_name, options) => {
    expect(configError(options).code).toBe('CONFIG_INVALID');
  });

  it('refuses a non-object', () => {
    expect(syncCodeOf(() => resolveTokenConfig(null as unknown as AuthSecOptions, memoryLogger()))).toBe(
      'CONFIG_INVALID',
    );
  });
});
