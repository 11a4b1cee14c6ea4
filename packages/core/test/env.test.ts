import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  type AuthSecError,
  type AuthSecOptions,
  authSecOptionsFromEnv,
  createAuthSec,
  defaultDataDir,
  parseMasterKey,
  silentLogger,
} from '../src/index.js';

function configError(fn: () => unknown): AuthSecError {
  try {
    fn();
  } catch (error) {
    return error as AuthSecError;
  }
  throw new Error('expected an error');
}

const key = Buffer.alloc(32, 7).toString('base64');

describe('authSecOptionsFromEnv', () => {
  it('reads the contract with safe defaults', () => {
    const o = authSecOptionsFromEnv({ HOME: '/home/u' });
    expect(o.issuers).toEqual([]);
    expect(o.host).toBe('127.0.0.1');
    expect(o.rememberLogin).toBe(true);
    expect(o.seed).toBe(true);
    expect(o.databaseUrl).toBeUndefined();
    expect(o.vault).toBeUndefined();
    expect(o.dataDir).not.toBe(process.cwd());
  });

  it('reads issuers, audience, database, vault and booleans', () => {
    const o = authSecOptionsFromEnv({
      AUTHSEC_ISSUER: 'https://idp.example',
      AUTHSEC_JWKS_URL: 'https://idp.example/jwks',
      AUTHSEC_RESOURCE_URL: 'https://mcp.example/mcp',
      AUTHSEC_DATABASE_URL: 'postgresql://u@db/x',
      AUTHSEC_VAULT_ADDR: 'https://vault.example',
      AUTHSEC_VAULT_TOKEN: 't',
      AUTHSEC_REMEMBER_LOGIN: 'false',
      AUTHSEC_SEED: '0',
      AUTHSEC_DEFAULT_TENANT: 'acme-corp',
      AUTHSEC_CLAIMS_PRESET: 'keycloak',
      PORT: '8080',
    });
    expect(o.issuers).toEqual([
      { issuer: 'https://idp.example', jwksUrl: 'https://idp.example/jwks', claims: 'keycloak' },
    ]);
    expect(o.audience).toBe('https://mcp.example/mcp');
    expect(o.vault?.mount).toBe('secret');
    expect(o.rememberLogin).toBe(false);
    expect(o.seed).toBe(false);
    expect(o.port).toBe(8080);
  });

  it('refuses an unknown AUTHSEC_ name and suggests the nearest one', () => {
    const err = configError(() => authSecOptionsFromEnv({ AUTHSEC_ISUER: 'https://idp.example' }));
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.message).toContain('AUTHSEC_ISUER');
    expect(err.message).toContain('AUTHSEC_ISSUER');
  });

  it('reads secrets from *_FILE and refuses both forms at once', () => {
    const dir = mkdtempSync(join(tmpdir(), 'authsec-env-'));
    const file = join(dir, 'secret');
    writeFileSync(file, 's3cret\n');
    const o = authSecOptionsFromEnv({ AUTHSEC_CLIENT_ID: 'c', AUTHSEC_CLIENT_SECRET_FILE: file });
    expect(o.clientSecret).toBe('s3cret');
    const err = configError(() =>
      authSecOptionsFromEnv({
        AUTHSEC_CLIENT_ID: 'c',
        AUTHSEC_CLIENT_SECRET: 'x',
        AUTHSEC_CLIENT_SECRET_FILE: file,
      }),
    );
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.message).toContain('AUTHSEC_CLIENT_SECRET_FILE');
    expect(
      configError(() => authSecOptionsFromEnv({ AUTHSEC_MASTER_KEY_FILE: join(dir, 'missing') })).code,
    ).toBe('CONFIG_INVALID');
  });

  it.each([
    [{ AUTHSEC_JWKS_URL: 'https://idp.example/jwks' }, 'AUTHSEC_JWKS_URL'],
    [{ AUTHSEC_CLIENT_SECRET: 'x' }, 'AUTHSEC_CLIENT_SECRET'],
    [{ AUTHSEC_VAULT_TOKEN: 't' }, 'AUTHSEC_VAULT_ADDR'],
    [{ AUTHSEC_VAULT_ADDR: 'https://vault.example' }, 'AUTHSEC_VAULT_TOKEN'],
    [{ AUTHSEC_DATABASE_URL: 'mysql://x' }, 'AUTHSEC_DATABASE_URL'],
    [{ AUTHSEC_DEFAULT_TENANT: 'Acme Corp' }, 'AUTHSEC_DEFAULT_TENANT'],
    [{ AUTHSEC_REMEMBER_LOGIN: 'maybe' }, 'AUTHSEC_REMEMBER_LOGIN'],
    [{ AUTHSEC_ISSUER: 'not a url' }, 'AUTHSEC_ISSUER'],
    [{ AUTHSEC_RESOURCE_URL: 'https://mcp.example/mcp#frag' }, 'AUTHSEC_RESOURCE_URL'],
    [{ AUTHSEC_CLOCK_TOLERANCE: '900' }, 'AUTHSEC_CLOCK_TOLERANCE'],
    [{ AUTHSEC_CLAIMS_PRESET: 'google' }, 'AUTHSEC_CLAIMS_PRESET'],
    [{ AUTHSEC_MASTER_KEY: 'c2hvcnQ=' }, 'AUTHSEC_MASTER_KEY'],
    [{ PORT: '70000' }, 'PORT'],
  ])('names the variable at fault: %o', (env, variable) => {
    const err = configError(() => authSecOptionsFromEnv(env));
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.message).toContain(variable);
  });

  it('reads stdio credentials: AUTHSEC_ACCESS_TOKEN, or the path in AUTHSEC_ACCESS_TOKEN_FILE, never both', () => {
    expect(authSecOptionsFromEnv({}).accessToken).toBeUndefined();
    expect(authSecOptionsFromEnv({ AUTHSEC_ACCESS_TOKEN: ' eyJ.x.y ' }).accessToken).toEqual({
      variable: 'AUTHSEC_ACCESS_TOKEN',
      token: 'eyJ.x.y',
    });
    // The file is the stdio entry's to read (its mode is checked, and it is read again when it changes).
    expect(authSecOptionsFromEnv({ AUTHSEC_ACCESS_TOKEN_FILE: '/run/token' }).accessToken).toEqual({
      variable: 'AUTHSEC_ACCESS_TOKEN_FILE',
      file: '/run/token',
    });
    const err = configError(() =>
      authSecOptionsFromEnv({ AUTHSEC_ACCESS_TOKEN: 't', AUTHSEC_ACCESS_TOKEN_FILE: '/run/token' }),
    );
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.message).toContain('AUTHSEC_ACCESS_TOKEN and AUTHSEC_ACCESS_TOKEN_FILE are both set');
  });

  it('accepts a URN audience for stdio servers', () => {
    expect(authSecOptionsFromEnv({ AUTHSEC_RESOURCE_URL: 'urn:authsec:stdio-demo' }).audience).toBe(
      'urn:authsec:stdio-demo',
    );
  });

  it('uses the user data folder by default', () => {
    if (process.platform === 'linux') {
      expect(defaultDataDir({ HOME: '/home/u' })).toBe('/home/u/.local/share/authsec');
      expect(defaultDataDir({ HOME: '/home/u', XDG_DATA_HOME: '/x' })).toBe('/x/authsec');
    }
    expect(authSecOptionsFromEnv({ AUTHSEC_DATA_DIR: '/srv/a' }).dataDir).toBe('/srv/a');
  });
});

describe('createAuthSec(authSecOptionsFromEnv(env))', () => {
  it('refuses AUTHSEC_DATABASE_URL without a directory, naming the variable and the entry to use', async () => {
    const env = {
      AUTHSEC_ISSUER: 'https://idp.example',
      AUTHSEC_RESOURCE_URL: 'https://mcp.example/mcp',
      AUTHSEC_DATABASE_URL: 'postgresql://u@db/x',
    };
    // What a JavaScript caller (or one with a cast) writes: the env result as engine options.
    const options = { ...authSecOptionsFromEnv(env), logger: silentLogger } as unknown as AuthSecOptions;
    expect(() => createAuthSec(options)).toThrow(TypeError);
    expect(() => createAuthSec(options)).toThrow(/AUTHSEC_DATABASE_URL.*openStorageFromEnv/);
    // Without the database, the same options make an engine (with the "no directory" warning).
    const { databaseUrl: _, ...withoutDatabase } = options as AuthSecOptions & { databaseUrl?: string };
    const engine = createAuthSec(withoutDatabase);
    expect(typeof engine.authenticate).toBe('function');
    await engine.close();
  });
});

describe('parseMasterKey', () => {
  it('reads one key and a key ring whose first key is active', () => {
    expect(parseMasterKey(key).activeKid).toBe('default');
    const ring = parseMasterKey(`k2:${key},k1:${Buffer.alloc(32, 1).toString('base64')}`);
    expect(ring.activeKid).toBe('k2');
    expect([...ring.keys.keys()]).toEqual(['k2', 'k1']);
  });

  it('refuses duplicate ids and wrong lengths', () => {
    expect(configError(() => parseMasterKey(`a:${key},a:${key}`)).code).toBe('CONFIG_INVALID');
    expect(configError(() => parseMasterKey(Buffer.alloc(16).toString('base64'))).code).toBe(
      'CONFIG_INVALID',
    );
  });
});

describe('AUTHSEC_MAX_TOKEN_LIFETIME', () => {
  it('is absent by default (the engine default of 24 h applies)', () => {
    expect(authSecOptionsFromEnv({ HOME: '/home/u' }).maxTokenLifetimeSeconds).toBeUndefined();
    expect(authSecOptionsFromEnv({ AUTHSEC_MAX_TOKEN_LIFETIME: '' }).maxTokenLifetimeSeconds).toBeUndefined();
  });

  it.each([
    ['86400', 86_400],
    ['3600s', 3600],
    ['90m', 5400],
    ['24h', 86_400],
    ['12H', 43_200],
    ['7d', 604_800],
    [' 2h ', 7200],
    ['60', 60],
    ['365d', 31_536_000],
  ])('reads %s as %i seconds', (value, seconds) => {
    expect(authSecOptionsFromEnv({ AUTHSEC_MAX_TOKEN_LIFETIME: value }).maxTokenLifetimeSeconds).toBe(
      seconds,
    );
  });

  it.each(['0', '59', '-1', '1.5h', '24 hours', '1w', 'h', '366d', '1e6', 'forever'])(
    'refuses %s, naming the variable',
    (value) => {
      const err = configError(() => authSecOptionsFromEnv({ AUTHSEC_MAX_TOKEN_LIFETIME: value }));
      expect(err.code).toBe('CONFIG_INVALID');
      expect(err.message).toContain('AUTHSEC_MAX_TOKEN_LIFETIME');
    },
  );

  it('is accepted by createAuthSec as maxTokenLifetimeSeconds', async () => {
    const env = authSecOptionsFromEnv({ AUTHSEC_MAX_TOKEN_LIFETIME: '2h' });
    const engine = createAuthSec({
      issuers: [{ issuer: 'https://idp.example', keys: [{ kty: 'EC', crv: 'P-256', x: 'x', y: 'y' }] }],
      audience: 'https://mcp.example/mcp',
      logger: silentLogger,
      ...(env.maxTokenLifetimeSeconds === undefined
        ? {}
        : { maxTokenLifetimeSeconds: env.maxTokenLifetimeSeconds }),
    });
    await engine.close();
  });
});
