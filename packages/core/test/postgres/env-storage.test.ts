import { mkdtempSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type AuthSec,
  type AuthSecError,
  authSecOptionsFromEnv,
  createAuthSec,
  silentLogger,
} from '../../src/index.js';
import {
  openStorageFromEnv,
  readAuditCheckpoints,
  type StorageFromEnv,
  seedDemoTenant,
} from '../../src/postgres/index.js';
import { PG_URL, postgresDatabase, type TestDatabase } from '../helpers/databases.js';

const AUDIENCE = 'http://127.0.0.1:39997/mcp';
const masterKey = Buffer.alloc(32, 5).toString('base64');
let signingKey: Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
let jwksServer: Server;
let issuer: string;

// The issuer of the environment, with its key set at AUTHSEC_JWKS_URL: the engine takes nothing but the env.
beforeAll(async () => {
  const pair = await generateKeyPair('ES256');
  signingKey = pair.privateKey;
  const jwks = JSON.stringify({ keys: [{ ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256' }] });
  jwksServer = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(jwks);
  });
  await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
  issuer = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}`;
});

afterAll(async () => {
  jwksServer?.closeAllConnections();
  await new Promise((resolve) => jwksServer?.close(resolve));
});

function sign(claims: Record<string, unknown>): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
    .setIssuer(issuer)
    .setAudience(AUDIENCE)
    .setIssuedAt()
    .setExpirationTime('5m')
    .sign(signingKey);
}

function envFor(extra: Record<string, string>): Record<string, string> {
  return {
    AUTHSEC_ISSUER: issuer,
    AUTHSEC_JWKS_URL: `${issuer}/jwks`,
    AUTHSEC_RESOURCE_URL: AUDIENCE,
    AUTHSEC_MASTER_KEY: masterKey,
    AUTHSEC_CLOCK_TOLERANCE: '5',
    AUTHSEC_DATA_DIR: mkdtempSync(join(tmpdir(), 'authsec-env-storage-')),
    ...extra,
  };
}

/**
 * The environments: the embedded database (PGlite, development only, no AUTHSEC_DATABASE_URL), and
 * AUTHSEC_DATABASE_URL on the PG_URL server when it is set.
 */
const databases = [
  {
    name: 'PGlite (development, no AUTHSEC_DATABASE_URL)',
    async open() {
      return { env: {}, development: true, dispose: async () => {} };
    },
  },
  ...(PG_URL
    ? [
        {
          name: 'PostgreSQL (AUTHSEC_DATABASE_URL)',
          async open() {
            const db: TestDatabase = await postgresDatabase('envstorage');
            return {
              env: { AUTHSEC_DATABASE_URL: db.url! },
              development: false,
              dispose: () => db.dispose(),
            };
          },
        },
      ]
    : []),
];

describe.each(databases)('openStorageFromEnv on $name', ({ open }) => {
  let database: Awaited<ReturnType<(typeof databases)[number]['open']>>;
  let opened: StorageFromEnv;
  let engine: AuthSec;

  beforeAll(async () => {
    database = await open();
    const env = authSecOptionsFromEnv(envFor(database.env));
    opened = await openStorageFromEnv(env, { logger: silentLogger, development: database.development });
    await seedDemoTenant(opened.storage.tenancy, opened.storage.directory);
    engine = createAuthSec(opened.options);
  }, 60_000);

  afterAll(async () => {
    await engine?.close();
    await opened?.close();
    await database?.dispose();
  });

  it("carries the environment's token settings, with the storage wired", () => {
    expect(opened.options).toMatchObject({
      issuers: [{ issuer, jwksUrl: `${issuer}/jwks` }],
      audience: AUDIENCE,
      clockToleranceSeconds: 5,
      directory: opened.storage.directory,
      audit: { sinks: [opened.storage.audit] },
    });
  });

  it('gives an engine that drops claims the tenant catalog does not hold', async () => {
    const principal = await engine.authenticate(
      await sign({
        sub: 'ana',
        tenant_id: 'acme-corp',
        roles: ['analyst', 'made-up-root'],
        scope: 'read fly',
      }),
    );
    expect(principal.roles).toEqual(['analyst']);
    expect(principal.scopes).toEqual(['read']);
  });

  it('appends signed audit checkpoints to the data folder by default (AUTHSEC_AUDIT_CHECKPOINT_FILE)', async () => {
    const env = authSecOptionsFromEnv(envFor(database.env));
    expect(env.auditCheckpointFile).toBe(join(env.dataDir, 'audit-checkpoints.jsonl'));
    const own = await openStorageFromEnv(env, { logger: silentLogger, development: database.development });
    await seedDemoTenant(own.storage.tenancy, own.storage.directory);
    const ownEngine = createAuthSec(own.options);
    const principal = await ownEngine.authenticate(
      await sign({ sub: 'ana', tenant_id: 'acme-corp', roles: ['analyst'] }),
    );
    ownEngine.audit({ action: 'tool.call', decision: 'allow', principal, target: 'hello' });
    // Closing flushes the audit log and writes the last checkpoint of each chain appended to.
    await ownEngine.close();
    await own.close();
    const parsed = await readAuditCheckpoints(env.auditCheckpointFile!);
    expect(parsed.malformed).toEqual([]);
    const acme = parsed.checkpoints.map((c) => c.checkpoint).filter((c) => c.tenant === 'acme-corp');
    expect(acme.length).toBeGreaterThan(0);
    expect(acme.at(-1)!.seq).toBeGreaterThan(0);
    expect(acme.at(-1)!.mac).toMatch(/^[0-9a-f]{64}$/);
    expect(
      authSecOptionsFromEnv(envFor({ ...database.env, AUTHSEC_AUDIT_CHECKPOINT_FILE: 'off' }))
        .auditCheckpointFile,
    ).toBeUndefined();
  });

  it('gives a request-state sealer on the master key whose states are consumed once in the database', async () => {
    const principal = await engine.authenticate(
      await sign({ sub: 'ana', tenant_id: 'acme-corp', roles: ['analyst'] }),
    );
    const state = opened.requestState.seal(
      { amount: 42 },
      { principal, method: 'tools/call', target: 'refund', arguments: { order: 7 } },
    );
    const first = await opened.requestState.open(state, principal, 'tools/call');
    expect(first.payload).toEqual({ amount: 42 });
    expect(opened.requestState.matches(first, 'refund', { order: 7 })).toBe(true);
    const replay = await opened.requestState
      .open(state, principal, 'tools/call')
      .catch((e: AuthSecError) => e);
    expect(replay).toMatchObject({ code: 'BAD_REQUEST', details: { reason: 'replayed' } });
    const used = await opened.storage.sql.query('SELECT count(*)::int AS n FROM authsec.request_states_used');
    expect(used.rows[0]).toEqual({ n: 1 });
  });

  it('refuses a tenant the database does not know', async () => {
    const error = await engine
      .authenticate(await sign({ sub: 'eve', tenant_id: 'globex', roles: ['admin'] }))
      .catch((e: unknown) => e as AuthSecError);
    expect(error).toMatchObject({ code: 'TENANT_UNKNOWN' });
  });
});

describe('openStorageFromEnv refusals', () => {
  const base = {
    AUTHSEC_ISSUER: 'https://idp.example',
    AUTHSEC_RESOURCE_URL: AUDIENCE,
    AUTHSEC_MASTER_KEY: masterKey,
  };
  const codeAndMessage = (env: Record<string, string>) =>
    openStorageFromEnv(authSecOptionsFromEnv(env), { logger: silentLogger }).then(
      () => undefined,
      (error: AuthSecError) => `${error.code}: ${error.message}`,
    );

  it('names the missing variable before opening anything', async () => {
    expect(await codeAndMessage(base)).toMatch(/^CONFIG_INVALID: AUTHSEC_DATABASE_URL is required/);
    const { AUTHSEC_ISSUER: _i, ...noIssuer } = base;
    expect(await codeAndMessage(noIssuer)).toMatch(/^CONFIG_INVALID: AUTHSEC_ISSUER/);
    const { AUTHSEC_RESOURCE_URL: _r, ...noAudience } = base;
    expect(await codeAndMessage(noAudience)).toMatch(/^CONFIG_INVALID: AUTHSEC_RESOURCE_URL/);
    const { AUTHSEC_MASTER_KEY: _k, ...noKey } = base;
    expect(await codeAndMessage({ ...noKey, AUTHSEC_DATABASE_URL: 'postgresql://u@db/x' })).toMatch(
      /^CONFIG_INVALID: AUTHSEC_MASTER_KEY/,
    );
  });
});
