import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type AuthSec,
  type AuthSecError,
  createAuthSec,
  parseMasterKey,
  silentLogger,
} from '../../src/index.js';
import { openStorage, type Storage, seedDemoTenant, verifyAuditChain } from '../../src/postgres/index.js';
import { SAMPLE_TOOLS } from '../fixtures/sample-tools.js';
import { PG_URL, postgresDatabase, type TestDatabase } from '../helpers/databases.js';

const ISSUER = 'https://idp.test';
const AUDIENCE = 'urn:authsec:storage-test';
const ring = parseMasterKey(Buffer.alloc(32, 9).toString('base64'));
let signingKey: Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
let publicJwk: JWK;

beforeAll(async () => {
  const pair = await generateKeyPair('ES256');
  signingKey = pair.privateKey;
  publicJwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256' };
});

function sign(claims: Record<string, unknown>): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setIssuedAt()
    .setExpirationTime('5m')
    .sign(signingKey);
}

const engines = [
  {
    name: 'pglite',
    open: async () => ({
      storage: await openStorage({
        dataDir: mkdtempSync(join(tmpdir(), 'authsec-storage-')),
        masterKey: ring,
        logger: silentLogger,
      }),
      db: undefined as TestDatabase | undefined,
    }),
  },
  ...(PG_URL
    ? [
        {
          name: 'postgres',
          open: async () => {
            const db = await postgresDatabase('storage');
            return {
              storage: await openStorage({ databaseUrl: db.url, masterKey: ring, logger: silentLogger }),
              db,
            };
          },
        },
      ]
    : []),
];

describe.each(engines)(
  'openStorage on $name: the engine with database validation and a chained audit log',
  ({ open }) => {
    let storage: Storage;
    let db: TestDatabase | undefined;
    let engine: AuthSec;

    beforeAll(async () => {
      ({ storage, db } = await open());
      expect(await seedDemoTenant(storage.tenancy, storage.directory)).toBe(true);
      expect(await seedDemoTenant(storage.tenancy, storage.directory)).toBe(false);
      engine = createAuthSec({
        issuers: [{ issuer: ISSUER, keys: [publicJwk] }],
        audience: AUDIENCE,
        directory: storage.directory,
        audit: { sinks: [storage.audit] },
        logger: silentLogger,
      });
      for (const [name, requirement] of Object.entries(SAMPLE_TOOLS))
        engine.tools.register(name, requirement, {});
    }, 60_000);

    afterAll(async () => {
      await engine?.close();
      await storage?.close();
      await db?.dispose();
    });

    it('keeps only the token claims that exist in the tenant catalog, plus database grants', async () => {
      await storage.directory.admin.grant('acme-corp', 'bob', { groups: ['devops'] }, { issuer: ISSUER });
      const principal = await engine.authenticate(
        await sign({
          sub: 'bob',
          tenant_id: 'acme-corp',
          roles: ['analyst', 'made-up-root'],
          scope: 'read fly',
        }),
      );
      expect(principal.roles).toEqual(['analyst']);
      expect(principal.scopes).toEqual(['read']);
      expect(principal.groups).toEqual(['devops']);
      expect(engine.visibleTools(principal).map((t) => t.name)).toEqual([
        'hello',
        'calculator',
        'view_reports',
        'engineering_tools',
        'list_my_repos',
      ]);
    });

    it('refuses tokens of unknown tenants', async () => {
      let error: AuthSecError | undefined;
      try {
        await engine.authenticate(await sign({ sub: 'eve', tenant_id: 'globex', roles: ['admin'] }));
      } catch (e) {
        error = e as AuthSecError;
      }
      expect(error?.code).toBe('TENANT_UNKNOWN');
    });

    it('records decisions in the tenant audit chain, which verifies', async () => {
      const principal = await engine.authenticate(
        await sign({ sub: 'carol', tenant_id: 'acme-corp', roles: ['admin'] }),
      );
      engine.authorizeTool(principal, { tool: 'admin_panel', arguments: { a: 1 } });
      expect(() => engine.authorizeTool(principal, { tool: 'create_resource' })).toThrow();
      await storage.audit.flush();
      const handle = await storage.tenancy.handle('acme-corp');
      const result = await verifyAuditChain(handle, ring);
      expect(result.ok).toBe(true);
      const rows = await handle.sql.query<{ target: string; decision: string }>(
        `SELECT target, decision FROM ${handle.schema}.audit_events ORDER BY seq`,
      );
      expect(rows.rows.slice(-2)).toEqual([
        { target: 'admin_panel', decision: 'allow' },
        { target: 'create_resource', decision: 'deny' },
      ]);
    });
  },
);
