/**
 * End to end, as the brief's GitHub example promises: a token stored for tenant A reaches the service's API
 * (a local HTTP server) in its Authorization header when `list_my_repos` is called by a user of tenant A;
 * a user of tenant B gets a clear refusal and the API receives nothing; a rotation made by another process is
 * used on the next call; and the secret value (a canary) shows up nowhere else: not in a log line, on stderr,
 * in a tool result or error, in an audit row or in a listing.
 *
 * Real engine, real directory and audit log on PGlite (and on PostgreSQL when PG_URL is set), the encrypted
 * secret store, and the official MCP SDK client.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { run as authsecCli } from '@authsec/cli';
import {
  type AuthSec,
  createAuthSec,
  createLogger,
  createServiceAccessFactory,
  type Principal,
  parseMasterKey,
} from '@authsec/core';
import {
  createPgClient,
  createPostgresAuditSink,
  createPostgresDirectory,
  createPostgresSecretBackend,
  createTenancy,
  openEmbeddedDatabase,
  type PostgresAuditSink,
  type PostgresSecretBackend,
  type SqlClient,
  seedDemoTenant,
  type Tenancy,
} from '@authsec/core/postgres';
import { createAuthSecServer, type LoginProvider } from '@authsec/mcp';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createSampleTools, GITHUB_SERVICE } from '../src/index.js';

const ISSUER = 'https://idp.e2e.test';
const AUDIENCE = 'urn:authsec:secrets-e2e';
const A = 'acme-corp';
const B = 'globex';
const RING_TEXT = `e2e:${randomBytes(32).toString('base64')}`;
const RING = parseMasterKey(RING_TEXT);
const PG_URL = process.env.PG_URL || undefined;

/** The engines this file runs on: PGlite always, PostgreSQL when PG_URL is set (a fresh database). */
const ENGINES: {
  name: string;
  open(): Promise<{
    clients: () => Promise<SqlClient>;
    /** How the `authsec` command reaches the same database. */
    cliEnv: Record<string, string>;
    dispose(): Promise<void>;
  }>;
}[] = [
  {
    name: 'pglite',
    async open() {
      // The embedded database of a data folder, as the apps and the CLI open it: several clients (processes)
      // share it.
      const dataDir = mkdtempSync(join(tmpdir(), 'authsec-e2e-'));
      const opened: SqlClient[] = [];
      return {
        clients: async () => {
          const c = await openEmbeddedDatabase({ dataDir: join(dataDir, 'pglite') });
          opened.push(c);
          return c;
        },
        cliEnv: { AUTHSEC_DATA_DIR: dataDir },
        async dispose() {
          for (const c of opened.reverse()) await c.close().catch(() => {});
          rmSync(dataDir, { recursive: true, force: true });
        },
      };
    },
  },
  ...(PG_URL
    ? [
        {
          name: 'postgres',
          async open() {
            const database = `e2e_${randomBytes(6).toString('hex')}`;
            const admin = await createPgClient({ connectionString: PG_URL, max: 1 });
            await admin.query(`CREATE DATABASE "${database}"`);
            const url = new URL(PG_URL);
            url.pathname = `/${database}`;
            const opened: SqlClient[] = [];
            return {
              clients: async () => {
                const c = await createPgClient({ connectionString: url.toString(), max: 4 });
                opened.push(c);
                return c;
              },
              cliEnv: { AUTHSEC_DATABASE_URL: url.toString() },
              async dispose() {
                await Promise.allSettled(opened.map((c) => c.close()));
                await admin.query(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`).catch(() => {});
                await admin.close();
              },
            };
          },
        },
      ]
    : []),
];
if (!PG_URL)
  process.stderr.write('skip: PG_URL is not set: the real PostgreSQL run of this file is skipped\n');

/** One principal per connection, set by the test. */
class StaticLogin implements LoginProvider {
  readonly tools = [];
  readonly principals = new Map<string, Principal>();
  async principalFor(connectionId: string) {
    return this.principals.get(connectionId);
  }
  sessionIdFor() {
    return undefined;
  }
  onChange() {
    return () => {};
  }
  disconnect() {}
  async close() {}
}

const textOf = (result: CallToolResult) =>
  result.content.map((c) => (c.type === 'text' ? c.text : '')).join('\n');

describe.each(ENGINES)('list_my_repos with stored credentials, end to end, on $name', ({ open }) => {
  // Distinctive values that must reach the API and nothing else.
  const CANARY = `ghp_CANARY_${randomBytes(16).toString('hex')}`;
  const ROTATED = `ghp_ROTATED_${randomBytes(16).toString('hex')}`;

  let database: Awaited<ReturnType<(typeof ENGINES)[number]['open']>>;
  let master: SqlClient;
  let tenancy: Tenancy;
  let secrets: PostgresSecretBackend;
  /** Output of every `authsec` run, checked for the canary. */
  const cliOutput: string[] = [];
  /** Runs the real `authsec` command against this file's database, the value on stdin. */
  const authsec_ = async (args: string[], stdin?: string): Promise<number> => {
    const sink = { write: (chunk: string) => cliOutput.push(chunk) };
    return authsecCli(args, {
      stdout: sink,
      stderr: sink,
      env: { HOME: tmpdir(), NODE_ENV: 'test', AUTHSEC_MASTER_KEY: RING_TEXT, ...database.cliEnv },
      ...(stdin === undefined ? {} : { stdin: Readable.from([stdin]) }),
    });
  };
  let audit: PostgresAuditSink;
  let authsec: AuthSec;
  let signingKey: Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
  let publicJwk: JWK;
  const logLines: string[] = [];
  const stderr: string[] = [];
  const results: string[] = [];
  const seen: { authorization: string | undefined; path: string }[] = [];
  let api: { url: string; close(): Promise<void> };
  const login = new StaticLogin();
  let server: ReturnType<typeof createAuthSecServer>;
  const clients: Client[] = [];

  const principal = async (tenantId: string, sub: string, scope: string) => {
    const token = await new SignJWT({ tenant_id: tenantId, scope, email: `${sub}@${tenantId}.example` })
      .setProtectedHeader({ alg: 'ES256', kid: 'e2e' })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setSubject(sub)
      .setExpirationTime('10m')
      .sign(signingKey);
    return authsec.authenticate(token);
  };

  const connect = async (id: string, who: Principal): Promise<Client> => {
    login.principals.set(id, who);
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
    await server.createServer(id).connect(serverSide);
    const client = new Client({ name: 'e2e', version: '1.0.0' });
    await client.connect(clientSide);
    clients.push(client);
    return client;
  };

  const listMyRepos = async (client: Client): Promise<CallToolResult> => {
    const result = (await client.callTool({ name: 'list_my_repos', arguments: {} })) as CallToolResult;
    results.push(JSON.stringify(result));
    return result;
  };

  beforeAll(async () => {
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      stderr.push(String(chunk));
      return true;
    });
    const pair = await generateKeyPair('ES256');
    signingKey = pair.privateKey;
    publicJwk = { ...(await exportJWK(pair.publicKey)), kid: 'e2e', alg: 'ES256' };
    const logger = createLogger({ level: 'debug', stream: { write: (line: string) => logLines.push(line) } });

    const http = createServer((req, res) => {
      seen.push({ authorization: (req.headers as IncomingHttpHeaders).authorization, path: req.url ?? '' });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify([{ full_name: 'acme/widgets', stargazers_count: 42 }]));
    });
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    api = {
      url: `http://127.0.0.1:${(http.address() as AddressInfo).port}`,
      close: () => new Promise<void>((resolve) => http.close(() => resolve())),
    };

    database = await open();
    master = await database.clients();
    tenancy = await createTenancy({ master, logger });
    await tenancy.migrate();
    const directory = createPostgresDirectory({ tenancy, logger });
    expect(await seedDemoTenant(tenancy, directory)).toBe(true);
    await tenancy.create(B);
    await directory.admin.addCatalog(B, 'scope', 'read');
    audit = createPostgresAuditSink({
      resolve: (t) => tenancy.handle(t, { allowDisabled: true }),
      masterKey: RING,
      logger,
    });
    authsec = createAuthSec({
      issuers: [{ issuer: ISSUER, keys: [publicJwk] }],
      audience: AUDIENCE,
      logger,
      directory,
      audit: { sinks: [audit] },
    });
    secrets = createPostgresSecretBackend({ tenancy, masterKey: RING, logger });
    server = createAuthSecServer({
      name: 'secrets-e2e',
      version: '1.0.0',
      tools: createSampleTools({ timeoutMs: 5000 }),
      authsec,
      login,
      services: createServiceAccessFactory({ backend: secrets, authsec }),
    });

    // `authsec service set "GitHub API Integration" --tenant acme-corp --url <api>`, the value on stdin.
    expect(
      await authsec_(
        ['service', 'set', GITHUB_SERVICE, '--tenant', A, '--type', 'github', '--url', api.url],
        CANARY,
      ),
    ).toBe(0);
  });

  afterAll(async () => {
    await Promise.allSettled(clients.map((c) => c.close()));
    await server?.close();
    await authsec?.close();
    await tenancy?.close();
    await database?.dispose();
    await api?.close();
    vi.restoreAllMocks();
  });

  it('a user of tenant A: the API receives exactly the stored token', async () => {
    const alice = await connect('alice', await principal(A, 'alice', 'read'));
    const before = seen.length;
    const result = await listMyRepos(alice);
    expect(result.isError).toBeFalsy();
    expect(textOf(result)).toContain('acme/widgets (42 ⭐)');
    expect(seen.slice(before)).toEqual([{ authorization: `Bearer ${CANARY}`, path: '/user/repos' }]);
  });

  it('a user of tenant B: a clear refusal, and the API receives nothing', async () => {
    const bob = await connect('bob', await principal(B, 'bob', 'read'));
    const before = seen.length;
    const result = await listMyRepos(bob);
    expect(result.isError).toBe(true);
    expect(textOf(result)).toContain(`Unknown service '${GITHUB_SERVICE}'`);
    expect(seen.length).toBe(before);
    // Even with the same name stored for B, B gets B's value, never A's.
    expect(
      await authsec_(['service', 'set', GITHUB_SERVICE, '--tenant', B, '--url', api.url], 'ghp_globex_own'),
    ).toBe(0);
    expect((await listMyRepos(bob)).isError).toBeFalsy();
    expect(seen.slice(before).map((s) => s.authorization)).toEqual(['Bearer ghp_globex_own']);
  });

  it('after `authsec service rotate` in another process, the next call uses the new token', async () => {
    const alice = await connect('alice-2', await principal(A, 'alice', 'read'));
    await listMyRepos(alice);
    expect(
      await authsec_(['service', 'rotate', GITHUB_SERVICE, '--tenant', A, '--grace', '1m'], ROTATED),
    ).toBe(0);
    const before = seen.length;
    expect((await listMyRepos(alice)).isError).toBeFalsy();
    expect(seen.slice(before).map((s) => s.authorization)).toEqual([`Bearer ${ROTATED}`]);
  });

  it('a user of tenant A without scope read cannot call it at all', async () => {
    const carol = await connect('carol', await principal(A, 'carol', ''));
    const before = seen.length;
    const result = await listMyRepos(carol);
    expect(result.isError).toBe(true);
    expect(seen.length).toBe(before);
  });

  it('the canary appears in no log line, stderr write, tool result, error, audit row or listing', async () => {
    // Listings, as a tool and the CLI see them.
    const listings = [
      JSON.stringify(
        await createServiceAccessFactory({ backend: secrets, authsec })(
          await principal(A, 'alice', 'read'),
        ).listServices(),
      ),
      JSON.stringify(await secrets.list(A)),
      JSON.stringify(await secrets.list(B)),
    ];
    for (const t of [A, B]) {
      expect(await authsec_(['service', 'list', '--tenant', t])).toBe(0);
      expect(await authsec_(['service', 'get', GITHUB_SERVICE, '--tenant', t])).toBe(0);
    }
    expect(listings[0]).toContain(GITHUB_SERVICE);
    for (const c of clients) results.push(JSON.stringify(await c.listTools()));
    await audit.flush();
    const auditRows: string[] = [];
    for (const t of [A, B]) {
      const h = await tenancy.handle(t);
      const rows = await h.sql.query<{ t: string }>(`SELECT e::text AS t FROM ${h.schema}.audit_events e`);
      auditRows.push(...rows.rows.map((r) => r.t));
    }
    expect(auditRows.join('\n')).toContain('service.read');
    const secretRows = await master.query<{ t: string }>(
      `SELECT s::text AS t FROM "tenant_${A}".service_secrets s`,
    );

    const everything = {
      logs: logLines.join(''),
      stderr: stderr.join(''),
      results: results.join('\n'),
      audit: auditRows.join('\n'),
      listings: listings.join('\n'),
      cli: cliOutput.join(''),
      table: secretRows.rows.map((r) => r.t).join('\n'),
    };
    for (const [where, text] of Object.entries(everything)) {
      for (const value of [CANARY, ROTATED, 'ghp_globex_own']) {
        expect(text.includes(value), `${value.slice(0, 12)}… found in ${where}`).toBe(false);
      }
    }
    // The canary was used, so its absence above means something.
    expect(seen.map((s) => s.authorization)).toContain(`Bearer ${CANARY}`);
  });
});
