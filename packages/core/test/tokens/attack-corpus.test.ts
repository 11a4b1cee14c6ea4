import { sign as nodeSign } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTokenVerifier, resolveTokenConfig, type TokenVerifier } from '../../src/tokens/index.js';
import { sendJson, startTestServer, type TestServer } from '../helpers/tokens-server.js';
import {
  b64url,
  claims,
  codeOf,
  ecKey,
  edKey,
  memoryLogger,
  rsaKey,
  signRaw,
  type TestKey,
  testClock,
} from '../helpers/tokens-support.js';

const AUD = 'https://mcp.example/mcp';
const ISS = 'https://issuer.example';
const ES_ONLY_ISS = 'https://es-only.example';
const HS_ISS = 'https://hs.example';
const BOUND_ISS = 'https://bound.example';
const HS_SECRET = 'a-shared-secret-that-is-long-enough-0123456789';

const clock = testClock();
const logger = memoryLogger();
const rs = rsaKey('k1');
const es = ecKey('e1');
const ps = rsaKey('p1', 'PS256');
const ed = edKey('d1');
const esOnlyRsa = rsaKey('r-es-only');
const esOnlyEc = ecKey('e-es-only');
const bound = rsaKey('b1');
const remote = rsaKey('remote-1');
const attacker = rsaKey('k1'); // same kid as the legitimate key
const attackerRemote = rsaKey('remote-1');

let jwksServer: TestServer;
let attackerServer: TestServer;
let remoteIssuer: string;
let verifier: TokenVerifier;
let typVerifier: TokenVerifier;

interface JwtSpec {
  readonly claims?: Record<string, unknown>;
  readonly header?: Record<string, unknown>;
  readonly key?: TestKey;
  readonly iss?: string;
}

function jwt(spec: JwtSpec = {}): string {
  const key = spec.key ?? rs;
  const header: Record<string, unknown> = { alg: key.alg, kid: key.kid, typ: 'JWT', ...spec.header };
  for (const name of Object.keys(header)) if (header[name] === undefined) delete header[name];
  return signRaw(header, claims(clock, { iss: spec.iss ?? ISS, aud: AUD }, spec.claims), key, key.alg);
}

function unsigned(alg: string, signature = ''): string {
  return `${b64url({ alg, typ: 'JWT' })}.${b64url(claims(clock, { iss: ISS, aud: AUD }))}.${signature}`;
}

function hmacWith(secret: string | Uint8Array, iss = ISS, kid = rs.kid): string {
  return signRaw({ alg: 'HS256', kid, typ: 'JWT' }, claims(clock, { iss, aud: AUD }), { secret });
}

function replaceSegment(token: string, index: number, value: string): string {
  const parts = token.split('.');
  parts[index] = value;
  return parts.join('.');
}

beforeAll(async () => {
  jwksServer = await startTestServer();
  attackerServer = await startTestServer();
  remoteIssuer = jwksServer.origin;
  jwksServer.route('/jwks', (_req, res) => sendJson(res, 200, { keys: [remote.publicJwk] }));
  attackerServer.route('/jwks.json', (_req, res) => sendJson(res, 200, { keys: [attacker.publicJwk] }));
  attackerServer.route('/cert.pem', (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/x-pem-file' });
    res.end('-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n');
  });

  const config = resolveTokenConfig(
    {
      issuers: [
        { issuer: ISS, keys: [rs.publicJwk, es.publicJwk, ps.publicJwk, ed.publicJwk] },
        { issuer: ES_ONLY_ISS, keys: [esOnlyRsa.publicJwk, esOnlyEc.publicJwk], algorithms: ['ES256'] },
        { issuer: HS_ISS, secret: HS_SECRET },
        { issuer: BOUND_ISS, keys: [bound.publicJwk], tenantId: 'bound-tenant' },
        { issuer: remoteIssuer, jwksUrl: `${jwksServer.origin}/jwks` },
      ],
      audience: AUD,
      clock,
    },
    logger,
  );
  verifier = createTokenVerifier(config, logger);
  typVerifier = createTokenVerifier(
    resolveTokenConfig(
      { issuers: [{ issuer: ISS, keys: [rs.publicJwk] }], audience: AUD, clock, requiredTokenType: 'at+jwt' },
      logger,
    ),
    logger,
  );
});

afterAll(async () => {
  verifier.close();
  typVerifier.close();
  await Promise.all([jwksServer.close(), attackerServer.close()]);
});

type Expected =
  | 'ok'
  | 'TOKEN_MISSING'
  | 'TOKEN_INVALID'
  | 'TOKEN_EXPIRED'
  | 'TOKEN_AUDIENCE'
  | 'TOKEN_ISSUER'
  | 'TENANT_UNKNOWN';

interface Case {
  readonly name: string;
  readonly token: () => unknown;
  readonly expected: Expected;
  readonly typ?: boolean;
}

const now = () => clock.seconds();

const CASES: readonly Case[] = [
  // --- controls: the corpus is only meaningful if the honest versions pass
  { name: 'control: RS256 token from the configured key', token: () => jwt(), expected: 'ok' },
  { name: 'control: ES256 token', token: () => jwt({ key: es }), expected: 'ok' },
  { name: 'control: PS256 token', token: () => jwt({ key: ps }), expected: 'ok' },
  { name: 'control: EdDSA token', token: () => jwt({ key: ed }), expected: 'ok' },
  {
    name: 'control: HS256 token at the issuer that has a secret',
    token: () => hmacWith(HS_SECRET, HS_ISS),
    expected: 'ok',
  },

  // --- unsigned tokens
  { name: 'alg none, unsigned', token: () => unsigned('none'), expected: 'TOKEN_INVALID' },
  { name: 'alg None', token: () => unsigned('None'), expected: 'TOKEN_INVALID' },
  { name: 'alg NONE', token: () => unsigned('NONE'), expected: 'TOKEN_INVALID' },
  { name: 'alg nOnE', token: () => unsigned('nOnE'), expected: 'TOKEN_INVALID' },
  {
    name: 'alg none with a junk signature',
    token: () => unsigned('none', b64url('junk')),
    expected: 'TOKEN_INVALID',
  },
  { name: 'alg header missing', token: () => jwt({ header: { alg: undefined } }), expected: 'TOKEN_INVALID' },
  { name: 'alg header not a string', token: () => jwt({ header: { alg: 256 } }), expected: 'TOKEN_INVALID' },

  // --- algorithm confusion
  {
    name: 'HS256 signed with the RSA public key as PEM bytes',
    token: () => hmacWith(rs.publicPem),
    expected: 'TOKEN_INVALID',
  },
  {
    name: 'HS256 signed with the RSA public key as JWK JSON bytes',
    token: () => hmacWith(JSON.stringify(rs.publicJwk)),
    expected: 'TOKEN_INVALID',
  },
  {
    name: 'HS256 signed with the RSA modulus bytes',
    token: () => hmacWith(Buffer.from(String(rs.publicJwk.n), 'base64url')),
    expected: 'TOKEN_INVALID',
  },
  {
    name: 'HS256 token to an issuer with asymmetric keys',
    token: () => hmacWith('x'.repeat(64)),
    expected: 'TOKEN_INVALID',
  },
  {
    name: 'HS256 with the wrong secret',
    token: () => hmacWith('y'.repeat(64), HS_ISS),
    expected: 'TOKEN_INVALID',
  },
  {
    name: 'HS512 to a secret issuer that allows HS256 only',
    token: () =>
      signRaw({ alg: 'HS512', typ: 'JWT' }, claims(clock, { iss: HS_ISS, aud: AUD }), { secret: HS_SECRET }),
    expected: 'TOKEN_INVALID',
  },
  {
    name: 'RS256 token to an issuer that allows ES256 only',
    token: () => jwt({ key: esOnlyRsa, iss: ES_ONLY_ISS }),
    expected: 'TOKEN_INVALID',
  },
  {
    name: 'control: ES256 token to the ES256-only issuer',
    token: () => jwt({ key: esOnlyEc, iss: ES_ONLY_ISS }),
    expected: 'ok',
  },
  {
    name: 'ES256 signature in DER instead of raw r||s',
    token: () => {
      const base = jwt({ key: es });
      const input = base.split('.').slice(0, 2).join('.');
      const der = nodeSign('sha256', Buffer.from(input), es.privateKey); // DER, node's default encoding
      return replaceSegment(base, 2, der.toString('base64url'));
    },
    expected: 'TOKEN_INVALID',
  },
  {
    name: 'header says ES256 but signed with RS256',
    token: () => signRaw({ alg: 'ES256', kid: es.kid }, claims(clock, { iss: ISS, aud: AUD }), rs, 'RS256'),
    expected: 'TOKEN_INVALID',
  },

  // --- integrity
  {
    name: 'tampered payload (signature of the original)',
    token: () => replaceSegment(jwt(), 1, b64url(claims(clock, { iss: ISS, aud: AUD, roles: ['admin'] }))),
    expected: 'TOKEN_INVALID',
  },
  {
    name: 'tampered signature',
    token: () => {
      const token = jwt();
      const signature = token.split('.')[2]!;
      const flipped = (signature[10] === 'A' ? 'B' : 'A') + signature.slice(11);
      return replaceSegment(token, 2, signature.slice(0, 10) + flipped);
    },
    expected: 'TOKEN_INVALID',
  },
  { name: 'stripped signature', token: () => replaceSegment(jwt(), 2, ''), expected: 'TOKEN_INVALID' },
  {
    name: 'token signed by a different key with the same kid',
    token: () => jwt({ key: attacker }),
    expected: 'TOKEN_INVALID',
  },
  {
    name: "another issuer's token relabelled with our iss (its key is not ours)",
    token: () => jwt({ key: bound, iss: ISS }),
    expected: 'TOKEN_INVALID',
  },

  // --- audience
  {
    name: 'wrong aud',
    token: () => jwt({ claims: { aud: 'https://other.example/mcp' } }),
    expected: 'TOKEN_AUDIENCE',
  },
  { name: 'missing aud', token: () => jwt({ claims: { aud: undefined } }), expected: 'TOKEN_AUDIENCE' },
  {
    name: 'aud array without ours',
    token: () => jwt({ claims: { aud: ['https://a.example', 'https://b.example'] } }),
    expected: 'TOKEN_AUDIENCE',
  },
  {
    name: 'aud array with ours',
    token: () => jwt({ claims: { aud: ['https://a.example', AUD] } }),
    expected: 'ok',
  },
  {
    name: 'aud prefix of ours',
    token: () => jwt({ claims: { aud: 'https://mcp.example' } }),
    expected: 'TOKEN_AUDIENCE',
  },

  // --- issuer
  { name: 'wrong iss', token: () => jwt({ iss: 'https://evil.example' }), expected: 'TOKEN_ISSUER' },
  { name: 'missing iss', token: () => jwt({ claims: { iss: undefined } }), expected: 'TOKEN_ISSUER' },
  { name: 'iss with a trailing slash', token: () => jwt({ iss: `${ISS}/` }), expected: 'TOKEN_ISSUER' },
  { name: 'iss not a string', token: () => jwt({ claims: { iss: [ISS] } }), expected: 'TOKEN_ISSUER' },

  // --- time (tolerance 30 s)
  {
    name: 'expired an hour ago',
    token: () => jwt({ claims: { exp: now() - 3600 } }),
    expected: 'TOKEN_EXPIRED',
  },
  {
    name: 'expired 31 s ago (beyond tolerance)',
    token: () => jwt({ claims: { exp: now() - 31 } }),
    expected: 'TOKEN_EXPIRED',
  },
  {
    name: 'expired 10 s ago (within tolerance)',
    token: () => jwt({ claims: { exp: now() - 10 } }),
    expected: 'ok',
  },
  {
    name: 'nbf an hour ahead',
    token: () => jwt({ claims: { nbf: now() + 3600 } }),
    expected: 'TOKEN_EXPIRED',
  },
  {
    name: 'nbf 10 s ahead (within tolerance)',
    token: () => jwt({ claims: { nbf: now() + 10 } }),
    expected: 'ok',
  },
  { name: 'missing exp', token: () => jwt({ claims: { exp: undefined } }), expected: 'TOKEN_INVALID' },
  {
    name: 'exp as a string',
    token: () => jwt({ claims: { exp: String(now() + 3600) } }),
    expected: 'TOKEN_INVALID',
  },
  {
    name: 'nbf as a string',
    token: () => jwt({ claims: { nbf: String(now()) } }),
    expected: 'TOKEN_INVALID',
  },
  { name: 'iat as a string', token: () => jwt({ claims: { iat: 'yesterday' } }), expected: 'TOKEN_INVALID' },

  // --- key-bearing and critical headers
  {
    name: 'jku header pointing at an attacker key set',
    token: () =>
      jwt({ key: attackerRemote, iss: remoteIssuer, header: { jku: `${attackerServer.origin}/jwks.json` } }),
    expected: 'TOKEN_INVALID',
  },
  {
    name: 'x5u header pointing at an attacker certificate',
    token: () => jwt({ key: attacker, header: { x5u: `${attackerServer.origin}/cert.pem` } }),
    expected: 'TOKEN_INVALID',
  },
  {
    name: 'embedded jwk header (self-signed with the attacker key)',
    token: () => jwt({ key: attacker, header: { kid: undefined, jwk: attacker.publicJwk } }),
    expected: 'TOKEN_INVALID',
  },
  {
    name: 'embedded jwk header holding our own public key (signed by the attacker)',
    token: () => jwt({ key: attacker, header: { jwk: rs.publicJwk } }),
    expected: 'TOKEN_INVALID',
  },
  {
    name: 'x5c header',
    token: () => jwt({ header: { x5c: [Buffer.from('not a certificate').toString('base64')] } }),
    expected: 'TOKEN_INVALID',
  },
  {
    name: 'unknown crit extension',
    token: () => jwt({ header: { crit: ['exp-ext'], 'exp-ext': 1 } }),
    expected: 'TOKEN_INVALID',
  },
  {
    name: 'crit b64=false (unencoded payload)',
    token: () => jwt({ header: { crit: ['b64'], b64: false } }),
    expected: 'TOKEN_INVALID',
  },
  { name: 'kid that is not a string', token: () => jwt({ header: { kid: 1 } }), expected: 'TOKEN_INVALID' },
  {
    name: 'typ mismatch when at+jwt is required',
    token: () => jwt({ header: { typ: 'JWT' } }),
    expected: 'TOKEN_INVALID',
    typ: true,
  },
  {
    name: 'typ absent when at+jwt is required',
    token: () => jwt({ header: { typ: undefined } }),
    expected: 'TOKEN_INVALID',
    typ: true,
  },
  {
    name: 'typ at+jwt when required',
    token: () => jwt({ header: { typ: 'at+jwt' } }),
    expected: 'ok',
    typ: true,
  },
  {
    name: 'typ application/AT+JWT when at+jwt is required',
    token: () => jwt({ header: { typ: 'application/AT+JWT' } }),
    expected: 'ok',
    typ: true,
  },

  // --- structure
  { name: 'empty string', token: () => '', expected: 'TOKEN_MISSING' },
  { name: 'not a string', token: () => 42, expected: 'TOKEN_MISSING' },
  { name: 'undefined', token: () => undefined, expected: 'TOKEN_MISSING' },
  {
    name: 'oversized token (9000 bytes)',
    token: () => jwt({ claims: { padding: 'x'.repeat(9000) } }),
    expected: 'TOKEN_INVALID',
  },
  { name: 'oversized garbage (1 MB)', token: () => 'e'.repeat(1_000_000), expected: 'TOKEN_INVALID' },
  { name: 'oversized by multi-byte characters', token: () => 'é'.repeat(5000), expected: 'TOKEN_INVALID' },
  {
    name: 'malformed base64 in the header',
    token: () => replaceSegment(jwt(), 0, 'ey!!J'),
    expected: 'TOKEN_INVALID',
  },
  {
    name: 'malformed base64 in the payload',
    token: () => replaceSegment(jwt(), 1, 'eyJ%%%'),
    expected: 'TOKEN_INVALID',
  },
  { name: 'two segments', token: () => jwt().split('.').slice(0, 2).join('.'), expected: 'TOKEN_INVALID' },
  { name: 'four segments', token: () => `${jwt()}.${b64url('x')}`, expected: 'TOKEN_INVALID' },
  {
    name: 'five segments (JWE)',
    token: () => [b64url({ alg: 'RSA-OAEP', enc: 'A256GCM' }), 'a', 'b', 'c', 'd'].join('.'),
    expected: 'TOKEN_INVALID',
  },
  {
    name: 'payload not JSON',
    token: () => signRaw({ alg: 'RS256', kid: rs.kid }, 'not json', rs),
    expected: 'TOKEN_INVALID',
  },
  {
    name: 'payload a JSON array',
    token: () => signRaw({ alg: 'RS256', kid: rs.kid }, '[1,2]', rs),
    expected: 'TOKEN_INVALID',
  },
  {
    name: 'header not JSON',
    token: () => replaceSegment(jwt(), 0, b64url('{"alg":"RS256",')),
    expected: 'TOKEN_INVALID',
  },
  { name: 'whitespace around the token', token: () => ` ${jwt()} `, expected: 'TOKEN_INVALID' },
  {
    name: 'opaque token without introspection',
    token: () => 'opaque-token-value',
    expected: 'TOKEN_INVALID',
  },

  // --- claims of the wrong type
  { name: 'roles a number', token: () => jwt({ claims: { roles: 7 } }), expected: 'TOKEN_INVALID' },
  {
    name: 'roles an array with a non-string',
    token: () => jwt({ claims: { roles: ['admin', 1] } }),
    expected: 'TOKEN_INVALID',
  },
  {
    name: 'roles an object',
    token: () => jwt({ claims: { roles: { admin: true } } }),
    expected: 'TOKEN_INVALID',
  },
  { name: 'sub a number', token: () => jwt({ claims: { sub: 12345 } }), expected: 'TOKEN_INVALID' },
  { name: 'sub empty', token: () => jwt({ claims: { sub: '' } }), expected: 'TOKEN_INVALID' },
  {
    name: 'sub of 256 characters',
    token: () => jwt({ claims: { sub: 's'.repeat(256) } }),
    expected: 'TOKEN_INVALID',
  },
  {
    name: 'sub with a newline',
    token: () => jwt({ claims: { sub: 'user\nadmin' } }),
    expected: 'TOKEN_INVALID',
  },
  {
    name: 'no sub and no client id',
    token: () => jwt({ claims: { sub: undefined } }),
    expected: 'TOKEN_INVALID',
  },
  {
    name: 'email an object',
    token: () => jwt({ claims: { email: { value: 'a@b.c' } } }),
    expected: 'TOKEN_INVALID',
  },
  { name: 'scope a number', token: () => jwt({ claims: { scope: 42 } }), expected: 'TOKEN_INVALID' },
  { name: 'tenant_id a number', token: () => jwt({ claims: { tenant_id: 1 } }), expected: 'TOKEN_INVALID' },

  // --- tenants
  {
    name: "hostile tenant '../x'",
    token: () => jwt({ claims: { tenant_id: '../x' } }),
    expected: 'TENANT_UNKNOWN',
  },
  {
    name: "hostile tenant 'A-Upper'",
    token: () => jwt({ claims: { tenant_id: 'A-Upper' } }),
    expected: 'TENANT_UNKNOWN',
  },
  {
    name: 'hostile tenant "tenant\'; drop"',
    token: () => jwt({ claims: { tenant_id: "tenant'; drop" } }),
    expected: 'TENANT_UNKNOWN',
  },
  {
    name: "hostile tenant 'tenänt'",
    token: () => jwt({ claims: { tenant_id: 'tenänt' } }),
    expected: 'TENANT_UNKNOWN',
  },
  {
    name: 'hostile tenant of 200 characters',
    token: () => jwt({ claims: { tenant_id: 'a'.repeat(200) } }),
    expected: 'TENANT_UNKNOWN',
  },
  {
    name: 'hostile tenant empty',
    token: () => jwt({ claims: { tenant_id: '' } }),
    expected: 'TENANT_UNKNOWN',
  },
  {
    name: "hostile tenant '-leading'",
    token: () => jwt({ claims: { tenant_id: '-leading' } }),
    expected: 'TENANT_UNKNOWN',
  },
  {
    name: 'no tenant and no default tenant',
    token: () => jwt({ claims: { tenant_id: undefined } }),
    expected: 'TENANT_UNKNOWN',
  },
  {
    name: 'tenant other than the issuer-bound tenant',
    token: () => jwt({ key: bound, iss: BOUND_ISS, claims: { tenant_id: 'acme-corp' } }),
    expected: 'TENANT_UNKNOWN',
  },
  {
    name: 'control: issuer-bound tenant, token names none',
    token: () => jwt({ key: bound, iss: BOUND_ISS, claims: { tenant_id: undefined } }),
    expected: 'ok',
  },
];

describe('JWT attack corpus', () => {
  it('has at least 30 refusal cases', () => {
    expect(CASES.filter((c) => c.expected !== 'ok').length).toBeGreaterThanOrEqual(30);
  });

  it.each(CASES.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const target = c.typ ? typVerifier : verifier;
    const token = c.token();
    if (c.expected === 'ok') {
      const principal = await target.verify(token as string);
      expect(Object.isFrozen(principal)).toBe(true);
    } else {
      expect(await codeOf(target.verify(token as string))).toBe(c.expected);
    }
  });

  it('never contacts a server named by jku or x5u, and never fetches for a refused header', async () => {
    const jwksBefore = jwksServer.hits();
    for (const header of [
      { jku: `${attackerServer.origin}/jwks.json` },
      { x5u: `${attackerServer.origin}/cert.pem` },
      { jku: `${attackerServer.origin}/jwks.json`, kid: 'unknown-kid' },
    ]) {
      const token = jwt({ key: attackerRemote, iss: remoteIssuer, header });
      expect(await codeOf(verifier.verify(token))).toBe('TOKEN_INVALID');
    }
    expect(attackerServer.hits()).toBe(0);
    expect(jwksServer.hits()).toBe(jwksBefore);
  });

  it('never fetches anything for an unknown issuer', async () => {
    const before = jwksServer.hits() + attackerServer.hits();
    const token = jwt({ key: attacker, iss: `${attackerServer.origin}` });
    expect(await codeOf(verifier.verify(token))).toBe('TOKEN_ISSUER');
    expect(jwksServer.hits() + attackerServer.hits()).toBe(before);
  });

  it('refuses an unknown kid after asking the real key set, which does not have it', async () => {
    expect(await verifier.verify(jwt({ key: remote, iss: remoteIssuer }))).toBeTruthy();
    expect(jwksServer.hits('/jwks')).toBeGreaterThanOrEqual(1);
    const stranger = rsaKey('not-in-the-set');
    expect(await codeOf(verifier.verify(jwt({ key: stranger, iss: remoteIssuer })))).toBe('TOKEN_INVALID');
    // Same kid as the real key, different key material: refused without any refetch.
    const before = jwksServer.hits('/jwks');
    expect(await codeOf(verifier.verify(jwt({ key: attackerRemote, iss: remoteIssuer })))).toBe(
      'TOKEN_INVALID',
    );
    expect(jwksServer.hits('/jwks')).toBe(before);
  });

  it('does not let __proto__ in the payload grant anything', async () => {
    const token = signRaw(
      { alg: 'RS256', kid: rs.kid },
      `{"iss":"${ISS}","aud":"${AUD}","sub":"u","tenant_id":"acme-corp","exp":${now() + 600},"__proto__":{"roles":["admin"]}}`,
      rs,
    );
    const principal = await verifier.verify(token);
    expect(principal.roles).toEqual([]);
    expect(({} as Record<string, unknown>).roles).toBeUndefined();
  });

  it('puts neither the token nor claim values in error messages', async () => {
    const secretish = 'very-private-claim-value';
    const tokens = [
      jwt({ claims: { aud: secretish } }),
      jwt({ claims: { exp: now() - 3600, note: secretish } }),
      jwt({ claims: { roles: 5, note: secretish } }),
      jwt({ claims: { tenant_id: secretish.toUpperCase() } }),
      replaceSegment(jwt({ claims: { note: secretish } }), 2, ''),
    ];
    for (const token of tokens) {
      try {
        await verifier.verify(token);
        expect.unreachable();
      } catch (error) {
        const text = `${(error as Error).message} ${JSON.stringify(error)}`;
        expect(text).not.toContain(token.slice(0, 40));
        expect(text.toLowerCase()).not.toContain(secretish);
      }
    }
  });
});
