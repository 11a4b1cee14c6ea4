import type { CommandSpec } from '../command.js';
import { checkIssuerUrl } from '../issuer.js';

/** `authsec migrate`: the master database, then every tenant, with a progress line per tenant on stderr. */
export const migrate: CommandSpec = {
  name: 'migrate',
  summary: 'Apply pending migrations to the master database and every tenant',
  details: [
    'Safe to run again, and from several machines at once. A progress line per tenant goes to stderr.',
    'Run it after installing or upgrading, before the other commands.',
    'Grants and login sessions stored before subjects were bound to their issuer are given the only issuer',
    'AUTHSEC_ISSUER lists. When it lists several (or none) and such rows exist, the migration stops without',
    'changing anything: say which issuer they belong to with --issuer <url>.',
  ],
  flags: {
    issuer: {
      type: 'string',
      value: 'url',
      description:
        'The issuer that subjects stored without one belong to. Default: the only issuer AUTHSEC_ISSUER lists',
    },
  },
  async run(ctx) {
    const given = ctx.string('issuer');
    const issuers = given === undefined ? ctx.issuers() : [checkIssuerUrl(given, '--issuer', ctx.command)];
    const storage = await ctx.storage();
    const result = await storage.tenancy.migrate({
      issuers,
      onProgress: (p) => {
        if (p.scope === 'master') ctx.out.note(`migrate: master database: ${p.applied} applied`);
        else ctx.out.note(`migrate: tenant '${p.tenantId}' (${p.done}/${p.total}): ${p.applied} applied`);
      },
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
