import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, ENGINES, type Engine, json, uniqueTenant } from './helpers.js';

describe('database placement on PGlite', () => {
  let engine: Engine;
  beforeAll(async () => {
    engine = await ENGINES[0]!.create();
    expect((await cli(['migrate'], engine.env)).code).toBe(0);
  });
  afterAll(async () => {
    await engine?.dispose();
  });

  it('is refused with a message naming the tenant, and nothing is registered', async () => {
    const result = await cli(['tenant', 'create', 'solo', '--placement', 'database'], engine.env);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("Tenant 'solo': database placement needs real PostgreSQL");
    expect(json(await cli(['tenant', 'list', '--json'], engine.env))).toEqual({ tenants: [] });
  });
});

// Registered only with a PostgreSQL server (helpers.ts prints why when PG_URL is not set).
const postgres = ENGINES.find((e) => e.name === 'postgres');
if (postgres)
  describe('database placement on PostgreSQL', () => {
    let engine: Engine;
    // Tenant databases are named tenant_<id> on the shared server: ids unique to this run.
    const tenant = uniqueTenant('cli');
    const neighbour = uniqueTenant('cli');
    const run = (...args: string[]) => cli(args, engine.env);

    beforeAll(async () => {
      engine = await postgres.create();
      engine.dropLater(tenant);
      expect((await run('migrate')).code).toBe(0);
    });
    afterAll(async () => {
      await engine?.dispose();
    });

    it('creates a database per tenant, and every command works in it', async () => {
      const created = await run('tenant', 'create', tenant, '--placement', 'database', '--json');
      expect(created.code, created.stderr).toBe(0);
      expect(json(created)).toMatchObject({
        tenant: { id: tenant, placement: 'database', status: 'active' },
      });
      expect((await run('tenant', 'create', neighbour)).code).toBe(0);

      // The tenant's tables live in its own database, schema authsec.
      const own = await engine.openTenantDatabase(tenant);
      try {
        const r = await own.query<{ n: string }>('SELECT count(*)::text AS n FROM authsec.audit_events');
        expect(r.rows[0]?.n).toBe('1');
      } finally {
        await own.close();
      }

      for (const args of [
        ['role', 'add', 'admin', '--tenant', tenant],
        ['scope', 'add', 'read', '--tenant', tenant],
        ['grant', 'alice', '--tenant', tenant, '--role', 'admin'],
      ]) {
        const result = await run(...args);
        expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(0);
      }
      const check = await run(
        'check',
        'alice',
        '--tenant',
        tenant,
        '--tool-requirement',
        '{"roles":["admin"]}',
        '--json',
      );
      expect(json(check)).toMatchObject({ allowed: true });
      // The neighbour (schema placement) sees none of it.
      const other = await run(
        'check',
        'alice',
        '--tenant',
        neighbour,
        '--tool-requirement',
        '{"roles":["admin"]}',
        '--json',
      );
      expect(json(other)).toMatchObject({ allowed: false, effective: { roles: [] } });

      const migrated = await run('migrate');
      expect(migrated.stderr).toContain(`migrate: tenant '${tenant}' (`);
      const verified = await run('audit', 'verify', '--tenant', tenant);
      expect(verified.code, verified.stderr).toBe(0);
      expect(verified.stdout).toContain('(4 rows)');
    });

    it('finds an edited audit row in the tenant database', async () => {
      const own = await engine.openTenantDatabase(tenant);
      try {
        await own.query('ALTER TABLE authsec.audit_events DISABLE TRIGGER USER');
        await own.query("UPDATE authsec.audit_events SET subject = 'cli:someone-else' WHERE seq = 3");
        await own.query('ALTER TABLE authsec.audit_events ENABLE TRIGGER USER');
      } finally {
        await own.close();
      }
      const result = await run('audit', 'verify', '--tenant', tenant, '--json');
      expect(result.code).toBe(1);
      expect(json(result)).toMatchObject({ ok: false, problems: [{ seq: 3, kind: 'modified' }] });
    });
  });
