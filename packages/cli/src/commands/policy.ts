import type { ToolPolicy } from '@authsec/core/postgres';
import type { CommandContext, CommandGroup, CommandSpec } from '../command.js';
import { cell } from '../output.js';
import { tenantFlag } from './catalog.js';

const toolArg = { name: 'tool', description: 'The tool name, as the server declares it' };

/** `authsec policy set <tool> --tenant T --when '<cel>' [--when ...]`. */
const set: CommandSpec = {
  name: 'set',
  summary: "Set a tenant's own conditions on a tool (ANDed with the tool's code)",
  details: [
    "Each --when is a CEL expression over args (the call's validated arguments), user (sub, email, tenant,",
    "issuer, client, roles, groups, scopes, resources, permissions) and now, as in a requirement's `when`. All",
    "must hold, on top of the tool's own requirement and conditions: a tenant can tighten a tool, never loosen",
    'it. They replace any the tool had in this tenant, reach every server within a second, and are checked with',
    'the same compiler first: an expression that does not compile is refused and nothing is stored.',
    "Example: authsec policy set refund --tenant acme-corp --when 'args.amount <= 500'",
  ],
  args: [toolArg],
  flags: {
    tenant: tenantFlag,
    when: {
      type: 'string',
      value: 'cel',
      multiple: true,
      required: true,
      description: 'A condition (repeat for several; all must hold)',
    },
  },
  async run(ctx) {
    const startedAt = performance.now();
    const tenantId = ctx.string('tenant')!;
    const tool = ctx.args.tool!;
    const conditions = ctx.strings('when');
    await ctx.requireTenant(tenantId);
    const storage = await ctx.storage();
    const changed = await storage.directory.admin.setToolConditions(tenantId, tool, conditions);
    if (changed)
      await ctx.recordChange({
        tenantId,
        target: `policy set ${tool} (${conditions.length} condition(s))`,
        startedAt,
      });
    if (ctx.json) ctx.out.json({ tenant: tenantId, tool, conditions, changed });
    else
      ctx.out.line(
        changed
          ? `Set ${conditions.length} condition(s) on tool '${tool}' in tenant '${tenantId}'`
          : `Tool '${tool}' already had exactly these conditions in tenant '${tenantId}'`,
      );
    return 0;
  },
};

/** The tenant's conditions of one tool (`get`) or of every tool (`list`). */
function show(ctx: CommandContext, tenantId: string, policies: readonly ToolPolicy[], tool?: string): void {
  if (ctx.json) {
    ctx.out.json({
      tenant: tenantId,
      policies: policies.map((p) => ({
        tool: p.tool,
        conditions: p.conditions,
        updatedAt: p.updatedAt.toISOString(),
      })),
    });
  } else if (policies.length === 0) {
    ctx.out.line(
      tool === undefined
        ? `No tool conditions in tenant '${tenantId}'.`
        : `Tool '${tool}' has no conditions of tenant '${tenantId}'.`,
    );
  } else {
    ctx.out.table(
      ['TOOL', 'CONDITIONS (all must hold)', 'UPDATED'],
      policies.map((p) => [p.tool, cell(p.conditions), p.updatedAt.toISOString()]),
    );
  }
}

/** `authsec policy get <tool> --tenant T`. */
const get: CommandSpec = {
  name: 'get',
  summary: "Show a tenant's conditions on a tool",
  args: [toolArg],
  flags: { tenant: tenantFlag },
  async run(ctx) {
    const tenantId = ctx.string('tenant')!;
    const tool = ctx.args.tool!;
    await ctx.requireTenant(tenantId);
    const storage = await ctx.storage();
    show(ctx, tenantId, await storage.directory.admin.listToolConditions(tenantId, tool), tool);
    return 0;
  },
};

/** `authsec policy list --tenant T`. */
const list: CommandSpec = {
  name: 'list',
  summary: "List a tenant's conditions on every tool",
  flags: { tenant: tenantFlag },
  async run(ctx) {
    const tenantId = ctx.string('tenant')!;
    await ctx.requireTenant(tenantId);
    const storage = await ctx.storage();
    show(ctx, tenantId, await storage.directory.admin.listToolConditions(tenantId));
    return 0;
  },
};

/** `authsec policy remove <tool> --tenant T`. */
const remove: CommandSpec = {
  name: 'remove',
  summary: "Remove a tenant's conditions on a tool (the code's remain)",
  args: [toolArg],
  flags: { tenant: tenantFlag },
  async run(ctx) {
    const startedAt = performance.now();
    const tenantId = ctx.string('tenant')!;
    const tool = ctx.args.tool!;
    await ctx.requireTenant(tenantId);
    const storage = await ctx.storage();
    const changed = await storage.directory.admin.removeToolConditions(tenantId, tool);
    if (changed) await ctx.recordChange({ tenantId, target: `policy remove ${tool}`, startedAt });
    if (ctx.json) ctx.out.json({ tenant: tenantId, tool, changed });
    else
      ctx.out.line(
        changed
          ? `Removed the conditions of tenant '${tenantId}' on tool '${tool}'`
          : `Tool '${tool}' had no conditions in tenant '${tenantId}'`,
      );
    return 0;
  },
};

/** `authsec policy set|get|list|remove`: a tenant's own conditions on tools, without a deploy. */
export const policy: CommandGroup = {
  name: 'policy',
  summary: "Set, show, list and remove a tenant's own conditions on tools",
  commands: [set, get, list, remove],
};
