/**
 * List changes reach only whom they concern, across replicas: two v2 endpoints (two engines, two storages) on
 * one real PostgreSQL database; a grant written through replica A's directory reaches replica B through the
 * PostgreSQL change feed, and B tells that tenant's `subscriptions/listen` streams (2026-07-28) and legacy
 * sessions (2025) that their tools changed, while another tenant's listener hears nothing.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createAuthSec, MemoryAuditSink, resolveMasterKey, silentLogger } from '@authsec/core';
import { createPgClient, openStorage, type Storage } from '@authsec/core/postgres';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { RunningHttpServer } from '../../src/endpoint.js';
import { type ProtectedMcpServer, protect, startMcpV2HttpServer } from '../../src/v2/index.js';
import { freePort } from '../helpers/http.js';
import { createTestIssuer, type TestIssuer } from '../helpers/tokens.js';

const PG_URL = process.env.PG_URL || undefined;
const SKIP = 'PG_URL is not set: the cross-replica notification tests need real PostgreSQL (.ci/run sets it)';
if (!PG_URL) process.stderr.write(`skip: ${SKIP}\n`);

const ACME = 'acme-corp';
/** The built `authsec` command (`pnpm test` builds every package first). */
const CLI = fileURLToPath(new URL('../../../cli/dist/cli.js', import.meta.url));
const OTHER = 'other-corp';

interface Replica {
  readonly storage: Storage;
  readonly server: ProtectedMcpServer;
  readonly http: RunningHttpServer;
}

/** Frames of a `subscriptions/listen` stream, read as they arrive. */
async function listen(url: string, token: string) {
  const abort = new AbortController();
  const response = await fetch(url, {
    method: 'POST',
    signal: abort.signal,
    headers: {
      authorization: `Bearer ${token}`,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-method': 'subscriptions/listen',
      'mcp-protocol-version': '2026-07-28',
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'subscriptions/listen',
      params: {
        _meta: {
          'io.modelcontextprotocol/protocolVersion': '2026-07-28',
          'io.modelcontextprotocol/clientCapabilities': {},
        },
        notifications: { toolsListChanged: true },
      },
    }),
  });
  expect(response.status).toBe(200);
  const frames: { method?: string }[] = [];
  let waiting: (() => void) | undefined;
  const done = (async () => {
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        const lines = buffer.split('\n');
        buffer = lines.pop() ?? '';
        for (const line of lines) {
          if (!line.startsWith('data:')) continue;
          frames.push(JSON.parse(line.slice(5)));
          waiting?.();
        }
      }
    } catch {
      // Aborted by the test.
    }
  })();
  const until = async (method: string, ms: number): Promise<boolean> => {
    const deadline = Date.now() + ms;
    while (!frames.some((f) => f.method === method)) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        waiting = resolve;
        setTimeout(resolve, Math.min(left, 100));
      });
    }
    return true;
  };
  return {
    frames,
    until,
    close: async () => {
      abort.abort();
      await done;
    },
  };
}

describe.skipIf(!PG_URL)('list changes across replicas, to the tenant concerned only', () => {
  let issuer: TestIssuer;
  let database: string;
  let dataDir: string;
  const replicas: Replica[] = [];
  const clients: Client[] = [];

  /** The URL of this suite's own database on the PostgreSQL server. */
  const databaseUrl = () => {
    const u = new URL(PG_URL!);
    u.pathname = `/${database}`;
    return u.toString();
  };

  const token = (subject: string, tenant: string, url: string) =>
    issuer.sign({ aud: url, sub: subject, tenant_id: tenant, scope: 'read' });

  async function replica(url: string): Promise<Replica> {
    const masterKey = resolveMasterKey({
      masterKey: undefined,
      dataDir,
      development: true,
      logger: silentLogger,
    });
    const storage = await openStorage({
      databaseUrl: databaseUrl(),
      masterKey,
      issuers: [issuer.options.issuer],
      logger: silentLogger,
    });
    const authsec = createAuthSec({
      issuers: [issuer.options],
      audience: url,
      directory: storage.directory,
      logger: silentLogger,
      audit: { sinks: [new MemoryAuditSink()] },
    });
    const server = protect(authsec, { name: 'replica', version: '1.0.0' });
    server.registerTool('hello', { description: 'Anyone signed in', requirement: {} }, async () => ({
      content: [{ type: 'text', text: 'hi' }],
    }));
    server.registerTool(
      'deploy',
      { description: 'Deployers only', requirement: { roles: ['deployer'] } },
      async () => ({ content: [{ type: 'text', text: 'deployed' }] }),
    );
    const port = Number(new URL(url).port);
    const http = await startMcpV2HttpServer({
      server,
      authsec,
      port,
      authorizationServers: [issuer.options.issuer],
    });
    const r = { storage, server, http };
    replicas.push(r);
    return r;
  }

  beforeAll(async () => {
    issuer = createTestIssuer();
    dataDir = mkdtempSync(join(tmpdir(), 'authsec-replicas-'));
    database = `n_${Math.random().toString(16).slice(2, 10)}`;
    const admin = await createPgClient({ connectionString: PG_URL!, max: 1 });
    await admin.query(`CREATE DATABASE "${database}"`);
    await admin.close();
  }, 60_000);

  afterAll(async () => {
    await Promise.allSettled(clients.map((c) => c.close()));
    for (const r of replicas) {
      await r.http.close();
      await r.server.authsec.close();
      await r.storage.close();
    }
    const admin = await createPgClient({ connectionString: PG_URL!, max: 1 });
    await admin.query(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
    await admin.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('a grant through replica A: B notifies the tenant listening (both eras), never the other tenant', async () => {
    const urlA = `http://127.0.0.1:${await freePort()}/mcp`;
    const urlB = `http://127.0.0.1:${await freePort()}/mcp`;
    const a = await replica(urlA);
    const b = await replica(urlB);
    for (const tenant of [ACME, OTHER]) {
      await a.storage.tenancy.create(tenant);
      await a.storage.directory.admin.addCatalog(tenant, 'role', 'deployer');
      await a.storage.directory.admin.addCatalog(tenant, 'scope', 'read');
    }

    const acme = await listen(urlB, token('dana', ACME, urlB));
    const other = await listen(urlB, token('dana', OTHER, urlB));
    expect(await acme.until('notifications/subscriptions/acknowledged', 5000)).toBe(true);
    expect(await other.until('notifications/subscriptions/acknowledged', 5000)).toBe(true);
    expect(b.server.bus.listenerCount).toBe(2);

    // A legacy-era client of the same subject on replica B.
    const legacy = new Client({ name: 'legacy', version: '1.0.0' });
    await legacy.connect(
      new StreamableHTTPClientTransport(new URL(urlB), {
        requestInit: { headers: { authorization: `Bearer ${token('dana', ACME, urlB)}` } },
      }),
    );
    clients.push(legacy);
    let legacyHeard = 0;
    legacy.setNotificationHandler('notifications/tools/list_changed', () => {
      legacyHeard++;
    });
    expect((await legacy.listTools()).tools.map((t) => t.name)).toEqual(['hello']);

    await a.storage.directory.admin.grant(
      ACME,
      'dana',
      { roles: ['deployer'] },
      { issuer: issuer.options.issuer },
    );

    expect(await acme.until('notifications/tools/list_changed', 5000)).toBe(true);
    // The other tenant's stream of the same subject name: nothing but its acknowledgement.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(other.frames.map((f) => f.method)).toEqual(['notifications/subscriptions/acknowledged']);
    const deadline = Date.now() + 5000;
    while (legacyHeard === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(legacyHeard).toBeGreaterThan(0);
    expect((await legacy.listTools()).tools.map((t) => t.name)).toEqual(['hello', 'deploy']);

    await acme.close();
    await other.close();
  });

  it('server.changed() with a subject reaches only that subject; a listen stream ends when its token expires', async () => {
    const [b] = replicas.slice(-1);
    const url = b!.http.url;
    const mine = await listen(url, token('erin', ACME, url));
    const theirs = await listen(url, token('frank', ACME, url));
    expect(await mine.until('notifications/subscriptions/acknowledged', 5000)).toBe(true);
    expect(await theirs.until('notifications/subscriptions/acknowledged', 5000)).toBe(true);
    b!.server.changed({ tenantId: ACME, subject: 'erin' });
    expect(await mine.until('notifications/tools/list_changed', 5000)).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(theirs.frames.map((f) => f.method)).not.toContain('notifications/tools/list_changed');
    await mine.close();
    await theirs.close();

    // A token two seconds from expiry: the server ends the stream (the client reopens with a fresh one).
    const short = issuer.sign({
      aud: url,
      sub: 'gail',
      tenant_id: ACME,
      scope: 'read',
      exp: Math.floor(Date.now() / 1000) + 2,
    });
    const started = Date.now();
    const expiring = await listen(url, short);
    expect(await expiring.until('notifications/subscriptions/acknowledged', 5000)).toBe(true);
    const before = b!.server.bus.listenerCount;
    const deadline = Date.now() + 8000;
    while (b!.server.bus.listenerCount >= before && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 100));
    expect(b!.server.bus.listenerCount).toBe(before - 1);
    expect(Date.now() - started).toBeGreaterThan(900);
    await expiring.close();
  });
  it('`authsec grant` and `authsec revoke` run in another OS process: the v2 client hears list_changed in both eras', async () => {
    const url = `http://127.0.0.1:${await freePort()}/mcp`;
    const r = await replica(url);
    const tenant = 'cli-corp';
    await r.storage.tenancy.create(tenant);
    await r.storage.directory.admin.addCatalog(tenant, 'role', 'deployer');
    await r.storage.directory.admin.addCatalog(tenant, 'scope', 'read');
    // `authsec grant|revoke ivan ... --role deployer` in a process of its own, on the same database.
    const flags = ['--tenant', tenant, '--issuer', issuer.options.issuer, '--role', 'deployer', '--json'];
    const deployer = (command: 'grant' | 'revoke') =>
      promisify(execFile)(process.execPath, [CLI, command, 'ivan', ...flags], {
        env: {
          PATH: process.env.PATH,
          AUTHSEC_DATABASE_URL: databaseUrl(),
          AUTHSEC_DATA_DIR: dataDir,
          AUTHSEC_LOG_LEVEL: 'silent',
        },
      });
    const bearer = { authorization: `Bearer ${token('ivan', tenant, url)}` };

    // One client pinned to 2026-07-28 (its change notifications arrive on a subscriptions/listen stream), one
    // negotiating the 2025 era (unsolicited notifications on its session's GET stream).
    const heard = { modern: 0, legacy: 0 };
    const modern = new Client(
      { name: 'modern', version: '1.0.0' },
      { versionNegotiation: { mode: { pin: '2026-07-28' } } },
    );
    const legacy = new Client({ name: 'legacy', version: '1.0.0' });
    for (const [era, client] of [
      ['modern', modern],
      ['legacy', legacy],
    ] as const) {
      client.setNotificationHandler('notifications/tools/list_changed', () => {
        heard[era]++;
      });
      await client.connect(
        new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: bearer } }),
      );
      clients.push(client);
      expect((await client.listTools()).tools.map((t) => t.name)).toEqual(['hello']);
    }
    const subscription = await modern.listen({ toolsListChanged: true });
    expect(subscription.honoredFilter).toMatchObject({ toolsListChanged: true });

    // At least one notification per change for each era (a change may be told more than once: the directory
    // feed and the session both know of it); counted from just before the change.
    const afterChange = async <T>(change: () => Promise<T>): Promise<T> => {
      const before = { ...heard };
      const done = await change();
      await vi.waitFor(
        () => {
          expect(heard.modern).toBeGreaterThan(before.modern);
          expect(heard.legacy).toBeGreaterThan(before.legacy);
        },
        { timeout: 5000, interval: 50 },
      );
      return done;
    };

    const granted = await afterChange(() => deployer('grant'));
    expect(JSON.parse(granted.stdout)).toMatchObject({ subject: 'ivan' });
    for (const client of [modern, legacy]) {
      expect((await client.listTools()).tools.map((t) => t.name)).toEqual(['hello', 'deploy']);
      expect(await client.callTool({ name: 'deploy', arguments: {} })).toMatchObject({
        content: [{ type: 'text', text: 'deployed' }],
      });
    }

    await afterChange(() => deployer('revoke'));
    for (const client of [modern, legacy]) {
      expect((await client.listTools()).tools.map((t) => t.name)).toEqual(['hello']);
      // Hidden again: refused on call exactly like a tool that does not exist.
      await expect(client.callTool({ name: 'deploy', arguments: {} })).rejects.toMatchObject({
        code: -32602,
      });
    }
    await subscription.close();
  });
});
