import { CATALOG_KINDS, type CatalogKind } from '@authsec/core/postgres';
import type { CommandGroup, CommandSpec, FlagSpec } from '../command.js';

/** `--tenant <tenant>`, required: shared by every command that works inside one tenant. */
export const tenantFlag: FlagSpec = {
  type: 'string',
  value: 'tenant',
  required: true,
  tenant: true,
  description: 'The tenant to work in',
};

const NAME_RULES: Record<CatalogKind, string> = {
  role: 'Role name: 1 to 128 characters, no spaces',
  group: 'Group name: 1 to 128 characters, no spaces; grant to the group with the subject group:<name>',
  scope: 'OAuth scope: 1 to 128 characters, no spaces',
  resource: 'Resource name: 1 to 128 characters, no spaces',
  permission: 'Permission resource:action, e.g. projects:write',
};

function catalogGroup(kind: CatalogKind): CommandGroup {
  const nameArg = { name: 'name', description: NAME_RULES[kind] };
  const add: CommandSpec = {
    name: 'add',
    summary: `Add a ${kind} to a tenant's catalog`,
    details: [
      `Only ${kind}s in the catalog count: a token's ${kind} claims that are not in it are ignored, and only`,
      `catalog ${kind}s can be granted. Adding one that exists changes nothing (exit 0).`,
    ],
    args: [nameArg],
    flags: { tenant: tenantFlag },
    async run(ctx) {
      const startedAt = performance.now();
      const tenantId = ctx.string('tenant')!;
      const name = ctx.args.name!;
      await ctx.requireTenant(tenantId);
      const storage = await ctx.storage();
      const changed = await storage.directory.admin.addCatalog(tenantId, kind, name);
      if (changed) await ctx.recordChange({ tenantId, target: `${kind} add ${name}`, startedAt });
      if (ctx.json) ctx.out.json({ tenant: tenantId, kind, name, changed });
      else
        ctx.out.line(
          changed
            ? `Added ${kind} '${name}' to tenant '${tenantId}'`
            : `${kind} '${name}' was already in tenant '${tenantId}'`,
        );
      return 0;
    },
  };
  const remove: CommandSpec = {
    name: 'remove',
    summary: `Remove a ${kind} from a tenant's catalog, and every grant of it`,
    details: [
      kind === 'group'
        ? 'Every grant of the group goes with it, and so does what was granted to the group (group:<name>).'
        : `Every grant of the ${kind} goes with it.`,
      'Removing one that is not there changes nothing (exit 0).',
    ],
    args: [nameArg],
    flags: { tenant: tenantFlag },
    async run(ctx) {
      const startedAt = performance.now();
      const tenantId = ctx.string('tenant')!;
      const name = ctx.args.name!;
      await ctx.requireTenant(tenantId);
      const storage = await ctx.storage();
      const changed = await storage.directory.admin.removeCatalog(tenantId, kind, name);
      if (changed) await ctx.recordChange({ tenantId, target: `${kind} remove ${name}`, startedAt });
      if (ctx.json) ctx.out.json({ tenant: tenantId, kind, name, changed });
      else
        ctx.out.line(
          changed
            ? `Removed ${kind} '${name}' from tenant '${tenantId}'`
            : `${kind} '${name}' was not in tenant '${tenantId}'`,
        );
      return 0;
    },
  };
  const list: CommandSpec = {
    name: 'list',
    summary: `List the ${kind}s of a tenant's catalog`,
    flags: { tenant: tenantFlag },
    async run(ctx) {
      const tenantId = ctx.string('tenant')!;
      await ctx.requireTenant(tenantId);
      const storage = await ctx.storage();
      const entries = await storage.directory.admin.listCatalog(tenantId, kind);
      if (ctx.json) {
        ctx.out.json({
          tenant: tenantId,
          kind,
          entries: entries.map((e) => ({ name: e.name, createdAt: e.createdAt.toISOString() })),
        });
      } else if (entries.length === 0) {
        ctx.out.line(`No ${kind}s in tenant '${tenantId}'.`);
      } else {
        ctx.out.table(
          [kind.toUpperCase(), 'CREATED'],
          entries.map((e) => [e.name, e.createdAt.toISOString()]),
        );
      }
      return 0;
    },
  };
  return {
    name: kind,
    summary: `Add, remove and list the ${kind}s of a tenant`,
    commands: [add, remove, list],
  };
}

/** `authsec role|group|scope|resource|permission add|remove|list`. */
export const catalogGroups: readonly CommandGroup[] = CATALOG_KINDS.map(catalogGroup);
