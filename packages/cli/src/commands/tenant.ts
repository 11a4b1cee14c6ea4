import type { TenantRecord } from '@authsec/core/postgres';
import type { CommandContext, CommandGroup, CommandSpec } from '../command.js';
import { checkIssuerUrl } from '../issuer.js';
import { TENANT_RULE } from '../parse.js';

/** A tenant row as `--json` prints it. */
function tenantJson(record: TenantRecord) {
  return {
    id: record.id,
    status: record.status,
    placement: record.placement,
    createdAt: record.createdAt.toISOString(),
    issuers: [...(record.issuers ?? [])],
  };
}

const tenantArg = { name: 'tenant', description: `Tenant id: ${TENANT_RULE}`, tenant: true } as const;

const create: CommandSpec = {
  name: 'create',
  summary: 'Register a tenant and create its schema or database',
  details: [
    'schema placement (the default, and the only one the embedded database supports) keeps the tenant in a',
    'schema tenant_<id> of the master database; database placement creates a database tenant_<id> on the same',
    'PostgreSQL server (the role needs CREATEDB).',
  ],
  args: [tenantArg],
  flags: {
    placement: {
      type: 'string',
      choices: ['schema', 'database'],
      description: "Where the tenant's data lives (default schema)",
    },
  },
  async run(ctx) {
    const startedAt = performance.now();
    const id = ctx.args.tenant!;
    const placement = (ctx.string('placement') ?? 'schema') as 'schema' | 'database';
    const storage = await ctx.storage();
    const record = await storage.tenancy.create(id, { placement });
    await ctx.recordChange({
      tenantId: id,
      target: `tenant create ${id} --placement ${placement}`,
      startedAt,
    });
    if (ctx.json) ctx.out.json({ tenant: tenantJson(record) });
    else ctx.out.line(`Created tenant '${id}' (${placement} placement)`);
    return 0;
  },
};

const list: CommandSpec = {
  name: 'list',
  summary: 'List every tenant with its status and placement',
  async run(ctx) {
    const storage = await ctx.storage();
    const tenants = await storage.tenancy.list();
    if (ctx.json) {
      ctx.out.json({ tenants: tenants.map(tenantJson) });
    } else if (tenants.length === 0) {
      ctx.out.line("No tenants. Create one with 'authsec tenant create <tenant>'.");
    } else {
      ctx.out.table(
        ['TENANT', 'STATUS', 'PLACEMENT', 'CREATED'],
        tenants.map((t) => [t.id, t.status, t.placement, t.createdAt.toISOString()]),
      );
    }
    return 0;
  },
};

function setStatus(name: 'disable' | 'enable'): CommandSpec {
  const status = name === 'disable' ? 'disabled' : 'active';
  return {
    name,
    summary:
      name === 'disable'
        ? 'Disable a tenant: its tokens are refused (TENANT_UNKNOWN) on every server; its data is kept'
        : 'Enable a disabled tenant again',
    args: [tenantArg],
    async run(ctx: CommandContext) {
      const startedAt = performance.now();
      const id = ctx.args.tenant!;
      const before = await ctx.requireTenant(id);
      const storage = await ctx.storage();
      const record = before.status === status ? before : await storage.tenancy[name](id);
      const changed = before.status !== status;
      if (changed) await ctx.recordChange({ tenantId: id, target: `tenant ${name} ${id}`, startedAt });
      if (ctx.json) ctx.out.json({ tenant: tenantJson(record), changed });
      else ctx.out.line(changed ? `Tenant '${id}' is now ${status}` : `Tenant '${id}' was already ${status}`);
      return 0;
    },
  };
}

const issuerArg = {
  name: 'issuer',
  description: 'An issuer URL, exactly as its tokens carry it in iss',
} as const;

const ISSUER_DETAILS = [
  'A tenant with no allowed issuers accepts tokens from every issuer the servers trust (AUTHSEC_ISSUER). Once',
  'it names some, a token naming the tenant from any other issuer is refused with TENANT_UNKNOWN, on every',
  'server within a second.',
];

function issuerChange(name: 'add' | 'remove'): CommandSpec {
  return {
    name: `issuer ${name}`,
    summary:
      name === 'add'
        ? 'Allow an issuer to speak for a tenant; tokens of the tenant from other issuers are then refused'
        : 'Remove an allowed issuer; with none left, every trusted issuer may speak for the tenant again',
    details: ISSUER_DETAILS,
    args: [tenantArg, issuerArg],
    async run(ctx: CommandContext) {
      const startedAt = performance.now();
      const id = ctx.args.tenant!;
      const issuer = checkIssuerUrl(ctx.args.issuer!, '<issuer>', ctx.command);
      await ctx.requireTenant(id);
      const storage = await ctx.storage();
      const changed =
        name === 'add'
          ? await storage.tenancy.addIssuer(id, issuer)
          : await storage.tenancy.removeIssuer(id, issuer);
      if (changed)
        await ctx.recordChange({ tenantId: id, target: `tenant issuer ${name} ${id} ${issuer}`, startedAt });
      const issuers = (await ctx.requireTenant(id)).issuers ?? [];
      if (ctx.json) ctx.out.json({ tenant: id, issuer, changed, issuers: [...issuers] });
      else if (name === 'add')
        ctx.out.line(
          changed
            ? `Allowed ${issuer} for tenant '${id}': its tokens are now accepted only from ${issuers.join(', ')}`
            : `${issuer} was already allowed for tenant '${id}'`,
        );
      else
        ctx.out.line(
          !changed
            ? `${issuer} was not allowed for tenant '${id}'`
            : issuers.length === 0
              ? `Removed ${issuer}: tenant '${id}' accepts tokens from every trusted issuer again`
              : `Removed ${issuer}: tenant '${id}' accepts tokens from ${issuers.join(', ')}`,
        );
      return 0;
    },
  };
}

const issuerList: CommandSpec = {
  name: 'issuer list',
  summary: 'List the issuers allowed to speak for a tenant (none: every trusted issuer may)',
  details: ISSUER_DETAILS,
  args: [tenantArg],
  async run(ctx) {
    const id = ctx.args.tenant!;
    const issuers = (await ctx.requireTenant(id)).issuers ?? [];
    if (ctx.json) ctx.out.json({ tenant: id, issuers: [...issuers] });
    else if (issuers.length === 0)
      ctx.out.line(`Tenant '${id}' names no issuer: every trusted issuer (AUTHSEC_ISSUER) may speak for it.`);
    else
      ctx.out.table(
        ['ISSUER'],
        issuers.map((i) => [i]),
      );
    return 0;
  },
};

/** `authsec tenant create|list|disable|enable` and `authsec tenant issuer add|remove|list`. */
export const tenant: CommandGroup = {
  name: 'tenant',
  summary: 'Create, list, disable and enable tenants, and name the issuers allowed to speak for them',
  commands: [
    create,
    list,
    setStatus('disable'),
    setStatus('enable'),
    issuerChange('add'),
    issuerChange('remove'),
    issuerList,
  ],
};
