import type { DirectoryGrants } from '@authsec/core/postgres';
import type { CommandContext, CommandSpec, FlagSpec } from '../command.js';
import { UsageError } from '../errors.js';
import { tenantFlag } from './catalog.js';

/** The grant flags, each a catalog kind, and the field of {@link DirectoryGrants} it fills. */
const GRANT_FLAGS = [
  ['role', 'roles'],
  ['group', 'groups'],
  ['scope', 'scopes'],
  ['resource', 'resources'],
  ['permission', 'permissions'],
] as const satisfies readonly (readonly [string, keyof DirectoryGrants])[];

function grantFlags(verb: 'Grant' | 'Revoke'): Record<string, FlagSpec> {
  const flags: Record<string, FlagSpec> = { tenant: tenantFlag };
  for (const [flag] of GRANT_FLAGS) {
    flags[flag] = {
      type: 'string',
      multiple: true,
      value: flag === 'permission' ? 'resource:action' : flag,
      description:
        verb === 'Grant' ? `Grant this ${flag}; it must be in the tenant's catalog` : `Revoke this ${flag}`,
    };
  }
  return flags;
}

function readGrants(ctx: CommandContext): { grants: DirectoryGrants; summary: string } {
  const grants: Record<string, readonly string[]> = {};
  const parts: string[] = [];
  for (const [flag, field] of GRANT_FLAGS) {
    const values = ctx.strings(flag);
    if (values.length === 0) continue;
    grants[field] = values;
    for (const v of values) parts.push(`--${flag} ${v}`);
  }
  if (parts.length === 0) {
    throw new UsageError(
      `give at least one of ${GRANT_FLAGS.map(([flag]) => `--${flag}`).join(', ')}`,
      ctx.command,
    );
  }
  return { grants, summary: parts.join(' ') };
}

function bindingCommand(verb: 'grant' | 'revoke'): CommandSpec {
  const title = verb === 'grant' ? 'Grant' : 'Revoke';
  return {
    name: verb,
    summary:
      verb === 'grant'
        ? "Grant catalog entries to a subject (a token's sub) or to a group (group:<name>)"
        : 'Revoke grants from a subject or a group',
    details: [
      verb === 'grant'
        ? 'Granting to group:<name> gives every member of the group (a token carrying the group, or a subject'
        : 'Only grants made with `authsec grant` can be revoked; claims in the token itself are not stored.',
      verb === 'grant'
        ? 'granted the group) what the group holds. Every value must already be in the catalog.'
        : 'Revoking what was not granted changes nothing (exit 0).',
    ],
    args: [{ name: 'subject', description: "A token's sub (the user or client id), or group:<name>" }],
    flags: grantFlags(title),
    async run(ctx) {
      const startedAt = performance.now();
      const tenantId = ctx.string('tenant')!;
      const subject = ctx.args.subject!;
      const { grants, summary } = readGrants(ctx);
      await ctx.requireTenant(tenantId);
      const storage = await ctx.storage();
      const count = await storage.directory.admin[verb](tenantId, subject, grants);
      if (count > 0) await ctx.recordChange({ tenantId, target: `${verb} ${subject} ${summary}`, startedAt });
      if (ctx.json) {
        ctx.out.json({
          tenant: tenantId,
          subject,
          [verb === 'grant' ? 'granted' : 'revoked']: count,
          grants,
        });
      } else if (verb === 'grant') {
        ctx.out.line(
          count > 0
            ? `Granted ${count} to '${subject}' in tenant '${tenantId}'`
            : `'${subject}' already held all of it in tenant '${tenantId}'`,
        );
      } else {
        ctx.out.line(
          count > 0
            ? `Revoked ${count} from '${subject}' in tenant '${tenantId}'`
            : `'${subject}' held none of it in tenant '${tenantId}'`,
        );
      }
      return 0;
    },
  };
}

/** `authsec grant <subject> --tenant T [--role R]...`. */
export const grant: CommandSpec = bindingCommand('grant');
/** `authsec revoke <subject> --tenant T [--role R]...`. */
export const revoke: CommandSpec = bindingCommand('revoke');
