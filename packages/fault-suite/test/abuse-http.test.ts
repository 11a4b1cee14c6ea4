/**
 * The abuse cases of the reliability work, end to end: real HTTP requests to each of the four mounts (Express,
 * Fastify, NestJS on Express and on Fastify) of one fleet on real PostgreSQL (a fresh database on `PG_URL`),
 * with tokens from real dev IdPs, claims from the directory and every decision in the PostgreSQL audit log:
 *
 * - arguments nested 5,000 levels deep: allowed, denied (`PERMISSION_DENIED`) and refused for scope (403
 *   `insufficient_scope`, never 500), and each decision has its row, found by the arguments' digest;
 * - two trusted issuers handing out the same `sub`: the second's holds none of the first's grants, and the
 *   rows name each issuer;
 * - token lifetime: `exp` ten years ahead, and `iat` a day in the future, are 401 `TOKEN_INVALID`;
 * - bidi and zero-width characters in `sub` (U+202E, U+2066, U+200B) are 401 `TOKEN_INVALID`, and in
 *   `tenant_id` 401 `TENANT_UNKNOWN`.
 *
 * The audit flood (backpressure), truncation (signed checkpoints) and the directory's identifiers run on real
 * PostgreSQL in `@authsec/core`'s suites; the logout audited with its principal in `@authsec/mcp`'s.
 */
import { digestArguments, silentLogger } from '@authsec/core';
import { type DevIdp, startDevIdp } from '@authsec/dev-idp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAuditRows } from '../src/audit-rows.js';
import { freshDatabase, type RunDatabase } from '../src/database.js';
import { type Fleet, startFleet } from '../src/fleet-client.js';
import { MOUNTS } from '../src/fleet-protocol.js';
import { mcpHeaders, openSession, sendInitialize } from '../src/load.js';
import { seedDirectory, startWorld, TENANT, type World } from '../src/world.js';

const PG_URL = process.env.PG_URL || undefined;
const SKIP_REASON =
  'PG_URL is not set: the HTTP abuse cases on real PostgreSQL are skipped (.ci/run sets it)';
if (!PG_URL) process.stderr.write(`skip: ${SKIP_REASON}\n`);

const DEPTH = 5000;
const DAY = 86_400;

/**
 * Arguments nested 5,000 levels deep (a ~10 KB body), as JSON text (`JSON.stringify` itself overflows the
 * stack at this depth) and as what the server parses it into (for the digest).
 */
function deep(tag: string): { readonly json: string; readonly value: unknown } {
  const json = `{"deep":${'['.repeat(DEPTH)}1${']'.repeat(DEPTH)},"tag":${JSON.stringify(tag)}}`;
  return { json, value: JSON.parse(json) };
}

/** Arguments as JSON text and as their value. */
function flat(tag: string): { readonly json: string; readonly value: unknown } {
  const value = { tag };
  return { json: JSON.stringify(value), value };
}

/** One `tools/call` in a fresh session: the status, the `authsec/error` code or the text, the challenge. */
async function call(url: string, token: string, tool: string, args: { readonly json: string }) {
  const sessionId = await openSession(url, token);
  const response = await fetch(url, {
    method: 'POST',
    headers: mcpHeaders(token, sessionId),
    body: `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":${JSON.stringify(tool)},"arguments":${args.json}}}`,
  });
  const text = await response.text();
  const data = text.split('\n').find((line) => line.startsWith('data:'));
  const message = data ? JSON.parse(data.slice(5)) : text ? JSON.parse(text) : undefined;
  const result = message?.result;
  return {
    status: response.status,
    code: result?.isError ? result._meta?.['authsec/error']?.code : (message?.code ?? message?.error?.code),
    text: result?.content?.[0]?.text as string | undefined,
    challenge: response.headers.get('www-authenticate'),
  };
}

/** An `initialize` with `token`: the status and the body's code (refused before any session exists). */
async function initialize(url: string, token: string): Promise<{ status: number; code: unknown }> {
  const response = await sendInitialize(url, token);
  const body = (await response.json().catch(() => ({}))) as { code?: unknown };
  return { status: response.status, code: body.code };
}

describe('abuse cases over HTTP on real PostgreSQL, on every mount', () => {
  let db: RunDatabase | undefined;
  let world: World | undefined;
  let other: DevIdp | undefined;
  let fleet: Fleet | undefined;

  beforeAll(async () => {
    if (!PG_URL) return;
    db = await freshDatabase(PG_URL, 'abuse');
    // Callers 0 (admin), 1 (analyst), 2 (no grant); another IdP hands out caller 0's `sub` to someone else.
    world = await startWorld(3);
    other = await startDevIdp({
      users: [
        {
          sub: world.callers[0]!.sub,
          email: 'twin@other-idp.example',
          password: 'twin-password',
          tenant_id: TENANT,
          scopes: ['read'],
        },
      ],
      logger: silentLogger,
    });
    await seedDirectory(world, db.url);
    fleet = await startFleet({
      databaseUrl: db.url,
      issuers: [world.idp.issuer, other.issuer],
      masterKey: world.masterKey,
    });
  }, 120_000);

  afterAll(async () => {
    fleet?.kill();
    await other?.close();
    await world?.close();
    await db?.dispose();
  });

  for (const mount of MOUNTS) {
    it(`${mount}: deep arguments decided and recorded, issuers kept apart, bad tokens refused`, async (context) => {
      if (!world || !fleet || !other || !db) {
        context.skip(SKIP_REASON);
        return;
      }
      const url = fleet.urls[mount];
      const idp = world.idp;
      const [admin, analyst] = world.callers;
      const tokenOf = (email: string, extra: Record<string, unknown> = {}, ttlSeconds = 600) =>
        idp.issueToken(email, { audience: url, scopes: ['read'], ttlSeconds, extraClaims: extra });
      const adminToken = await tokenOf(admin!.email);
      const analystToken = await tokenOf(analyst!.email);

      // 5,000 levels of nesting: decided like any call, answered, and recorded.
      const allowedArgs = deep(`${mount}-allowed`);
      expect(await call(url, adminToken, 'hello', allowedArgs)).toMatchObject({
        status: 200,
        text: `Hello, ${admin!.email}!`,
      });
      const deniedArgs = deep(`${mount}-denied`);
      expect(await call(url, analystToken, 'admin_panel', deniedArgs)).toMatchObject({
        status: 200,
        code: 'PERMISSION_DENIED',
      });
      const scopeArgs = deep(`${mount}-scope`);
      const stepUp = await call(url, analystToken, 'create_resource', scopeArgs);
      expect(stepUp).toMatchObject({ status: 403, code: 'INSUFFICIENT_SCOPE' });
      expect(stepUp.challenge).toMatch(/error="insufficient_scope"/);

      // The same `sub` from the other trusted issuer is someone else: none of the admin's grants.
      const twinToken = await other.issueToken('twin@other-idp.example', {
        audience: url,
        scopes: ['read'],
        ttlSeconds: 600,
      });
      const twinArgs = flat(`${mount}-twin`);
      expect(await call(url, twinToken, 'admin_panel', twinArgs)).toMatchObject({
        status: 200,
        code: 'PERMISSION_DENIED',
      });
      const adminArgs = flat(`${mount}-admin`);
      expect(await call(url, adminToken, 'admin_panel', adminArgs)).toMatchObject({
        status: 200,
        text: 'Admin panel accessed',
      });

      // Lifetime: ten years, and an iat a day ahead, are refused.
      const now = Math.floor(Date.now() / 1000);
      expect(await initialize(url, await tokenOf(admin!.email, {}, 10 * 365 * DAY))).toEqual({
        status: 401,
        code: 'TOKEN_INVALID',
      });
      expect(
        await initialize(url, await tokenOf(admin!.email, { iat: now + DAY, exp: now + DAY + 600 })),
      ).toEqual({
        status: 401,
        code: 'TOKEN_INVALID',
      });
      // Display spoofing: bidi and zero-width controls in identifiers.
      for (const c of ['\u202e', '\u2066', '\u200b']) {
        expect(await initialize(url, await tokenOf(admin!.email, { sub: `admin${c}user` }))).toEqual({
          status: 401,
          code: 'TOKEN_INVALID',
        });
        expect(await initialize(url, await tokenOf(admin!.email, { tenant_id: `fault${c}-suite` }))).toEqual({
          status: 401,
          code: 'TENANT_UNKNOWN',
        });
      }

      // Every decision is in the tenant's audit log, with its decision, reason and issuer.
      await fleet.flush();
      const rows = await readAuditRows(db.url, world.masterKey, [idp.issuer, other.issuer], true);
      expect(rows.chainOk).toBe(true);
      const rowsOf = (args: { readonly value: unknown }) => rows.byDigest.get(digestArguments(args.value));
      expect(rowsOf(allowedArgs)).toEqual([
        { decision: 'allow', reason: null, subject: admin!.sub, issuer: idp.issuer },
      ]);
      expect(rowsOf(deniedArgs)).toEqual([
        { decision: 'deny', reason: 'PERMISSION_DENIED', subject: analyst!.sub, issuer: idp.issuer },
      ]);
      expect(rowsOf(scopeArgs)).toEqual([
        { decision: 'deny', reason: 'INSUFFICIENT_SCOPE', subject: analyst!.sub, issuer: idp.issuer },
      ]);
      expect(rowsOf(twinArgs)).toEqual([
        { decision: 'deny', reason: 'PERMISSION_DENIED', subject: admin!.sub, issuer: other.issuer },
      ]);
      expect(rowsOf(adminArgs)).toEqual([
        { decision: 'allow', reason: null, subject: admin!.sub, issuer: idp.issuer },
      ]);
      expect(fleet.exitCode()).toBeUndefined();
      expect((await fleet.stats()).audit).toMatchObject({ dropped: 0, buffered: 0 });
    });
  }
});
