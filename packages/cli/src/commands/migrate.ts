import type { CommandSpec } from '../command.js';

/** `authsec migrate`: the master database, then every tenant, with a progress line per tenant on stderr. */
export const migrate: CommandSpec = {
  name: 'migrate',
  summary: 'Apply pending migrations to the master database and every tenant',
  details: [
    'Safe to run again, and from several machines at once. A progress line per tenant goes to stderr.',
    'Run it after installing or upgrading, before the other commands.',
  ],
  async run(ctx) {
    const storage = await ctx.storage();
    const result = await storage.tenancy.migrate((p) => {
      if (p.scope === 'master') ctx.out.note(`migrate: master database: ${p.applied} applied`);
      else ctx.out.note(`migrate: tenant '${p.tenantId}' (${p.done}/${p.total}): ${p.applied} applied`);
    });
    const tenants = (await storage.tenancy.list()).length;
    if (ctx.json) {
      ctx.out.json({ master: result.master, tenants: result.tenants, tenantCount: tenants });
    } else {
      ctx.out.line(
        `Migrated: ${result.master} migration(s) on the master database, ${result.tenants} on ${tenants} tenant(s)`,
      );
    }
    return 0;
  },
};
