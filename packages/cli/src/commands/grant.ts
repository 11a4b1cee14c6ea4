import type { DirectoryGrants } from '@authsec/core/postgres';
import type { CommandContext, CommandSpec, FlagSpec } from '../command.js';
import { UsageError } from '../errors.js';
import { checkIssuerUrl, issuerFlag, subjectIssuer } from '../issuer.js';
import { cell } from '../output.js';
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
  const flags: Record<string, FlagSpec> = { tenant: tenantFlag, issuer: issuerFlag };
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
      "A subject's grants are bound to its issuer: the same sub from another trusted issuer gets none of them.",
      '--issuer defaults to the only issuer AUTHSEC_ISSUER lists; it is required when it lists several. Grants',
      'to group:<name> belong to no issuer.',
    ],
    args: [{ name: 'subject', description: "A token's sub (the user or client id), or group:<name>" }],
    flags: grantFlags(title),
    async run(ctx) {
      const startedAt = performance.now();
      const tenantId = ctx.string('tenant')!;
      const subject = ctx.args.subject!;
      const { grants, summary } = readGrants(ctx);
      const issuer = subjectIssuer(ctx, subject);
      await ctx.requireTenant(tenantId);
      const storage = await ctx.storage();
      const count = await storage.directory.admin[verb](
        tenantId,
        subject,
        grants,
        issuer === undefined ? {} : { issuer },
      );
      const of = issuer === undefined ? '' : ` --issuer ${issuer}`;
      if (count > 0)
        await ctx.recordChange({ tenantId, target: `${verb} ${subject}${of} ${summary}`, startedAt });
      const who = issuer === undefined ? `'${subject}'` : `'${subject}' of ${issuer}`;
      if (ctx.json) {
        ctx.out.json({
          tenant: tenantId,
          subject,
          issuer: issuer ?? null,
          [verb === 'grant' ? 'granted' : 'revoked']: count,
          grants,
        });
      } else if (verb === 'grant') {
        ctx.out.line(
          count > 0
            ? `Granted ${count} to ${who} in tenant '${tenantId}'`
            : `${who} already held all of it in tenant '${tenantId}'`,
        );
      } else {
        ctx.out.line(
          count > 0
            ? `Revoked ${count} from ${who} in tenant '${tenantId}'`
            : `${who} held none of it in tenant '${tenantId}'`,
        );
      }
      return 0;
    },
  };
}

/** `authsec grants --tenant T [--subject S] [--issuer U]`: the grants stored in a tenant, with their issuer. */
export const grants: CommandSpec = {
  name: 'grants',
  summary: 'List the grants of a tenant (or of one subject), with the issuer each subject belongs to',
  details: [
    'A subject is listed once per issuer that it has grants from; group grants (group:<name>) show no issuer.',
  ],
  flags: {
    tenant: tenantFlag,
    subject: {
      type: 'string',
      value: 'subject',
      description: "Only this subject's grants (a sub or group:<name>)",
    },
    issuer: {
      type: 'string',
      value: 'url',
      description: 'Only the grants of subjects of this issuer. Default: every issuer',
    },
  },
  async run(ctx) {
    const tenantId = ctx.string('tenant')!;
    const subject = ctx.string('subject');
    const issuer = ctx.string('issuer');
    if (issuer !== undefined) checkIssuerUrl(issuer, '--issuer', ctx.command);
    await ctx.requireTenant(tenantId);
    const storage = await ctx.storage();
    const listed = await storage.directory.admin.listBindings(
      tenantId,
      subject,
      issuer === undefined ? {} : { issuer },
    );
    // Group grants belong to no issuer: a filter by issuer leaves them out.
    const rows = issuer === undefined ? listed : listed.filter((b) => b.issuer === issuer);
    if (ctx.json) {
      ctx.out.json({
        tenant: tenantId,
        grants: rows.map((b) => ({
          subject: b.subject,
          issuer: b.issuer ?? null,
          kind: b.kind,
          value: b.value,
          createdAt: b.createdAt.toISOString(),
        })),
      });
    } else if (rows.length === 0) {
      ctx.out.line(`No grants in tenant '${tenantId}'${subject === undefined ? '' : ` for '${subject}'`}.`);
    } else {
      ctx.out.table(
        ['SUBJECT', 'ISSUER', 'KIND', 'VALUE', 'GRANTED'],
        rows.map((b) => [
          b.subject,
          cell(b.issuer === undefined ? [] : [b.issuer]),
          b.kind,
          b.value,
          b.createdAt.toISOString(),
        ]),
      );
    }
    return 0;
  },
};

/** `authsec grant <subject> --tenant T [--issuer U] [--role R]...`. */
export const grant: CommandSpec = bindingCommand('grant');
/** `authsec revoke <subject> --tenant T [--issuer U] [--role R]...`. */
export const revoke: CommandSpec = bindingCommand('revoke');
