import {
  type CompiledRequirement,
  type ConditionOutcome,
  compileRequirement,
  explainConditions,
  isAuthSecError,
  type Logger,
  type Principal,
  type Requirement,
} from '@authsec/core';
import type { CommandSpec } from '../command.js';
import { UsageError } from '../errors.js';
import { decide, type Refusal } from '../explain.js';
import { issuerFlag, tokenIssuer } from '../issuer.js';
import { parseJsonFlag } from '../json.js';
import { cell } from '../output.js';
import { tenantFlag } from './catalog.js';

const COMMAND = 'check';

/** The principal fields, and the token claims each is read from (the `generic` claim mapping). */
const CLAIM_FIELDS = {
  roles: ['roles'],
  groups: ['groups'],
  scopes: ['scope', 'scp', 'scopes'],
  resources: ['resources'],
  permissions: ['permissions'],
} as const;

type Field = keyof typeof CLAIM_FIELDS;
const FIELDS = Object.keys(CLAIM_FIELDS) as Field[];
type Claims = Record<Field, string[]>;

/** The claim-derived fields of a token, read from `--claims`; other claims are listed as ignored. */
function readClaims(text: string | undefined): { claims: Claims; ignoredKeys: string[] } {
  const claims: Claims = { roles: [], groups: [], scopes: [], resources: [], permissions: [] };
  if (text === undefined) return { claims, ignoredKeys: [] };
  const value = parseJsonFlag('claims', text, COMMAND);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new UsageError(
      '--claims: a JSON object of token claims is required, e.g. {"roles":["admin"]}',
      COMMAND,
    );
  }
  const record = value as Record<string, unknown>;
  const used = new Set<string>();
  for (const field of FIELDS) {
    for (const key of CLAIM_FIELDS[field]) {
      const raw = record[key];
      if (raw === undefined) continue;
      used.add(key);
      let values: unknown[];
      if (typeof raw === 'string') values = field === 'scopes' ? raw.split(' ').filter(Boolean) : [raw];
      else if (Array.isArray(raw)) values = raw;
      else throw new UsageError(`--claims: '${key}' must be a string or a list of strings`, COMMAND);
      for (const v of values) {
        if (typeof v !== 'string') {
          throw new UsageError(`--claims: '${key}' must be a string or a list of strings`, COMMAND);
        }
        if (!claims[field].includes(v)) claims[field].push(v);
      }
    }
  }
  return { claims, ignoredKeys: Object.keys(record).filter((k) => !used.has(k)) };
}

function readRequirement(text: string, notes: string[]): CompiledRequirement {
  const value = parseJsonFlag('tool-requirement', text, COMMAND);
  const logger: Logger = {
    debug() {},
    info() {},
    warn: (message) => notes.push(message),
    error: (message) => notes.push(message),
  };
  try {
    return compileRequirement(value as Requirement, { logger });
  } catch (error) {
    if (error instanceof TypeError) throw new UsageError(`--tool-requirement: ${error.message}`, COMMAND);
    throw error;
  }
}

/** The tool call's arguments for the requirement's `when` conditions, read from `--args` (default `{}`). */
function readArgs(text: string | undefined): Record<string, unknown> {
  if (text === undefined) return {};
  const value = parseJsonFlag('args', text, COMMAND);
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new UsageError(
      '--args: a JSON object of the tool\'s arguments is required, e.g. {"amount":250}',
      COMMAND,
    );
  return value as Record<string, unknown>;
}

function difference(a: readonly string[], b: readonly string[]): string[] {
  return a.filter((v) => !b.includes(v));
}

/** `authsec check <subject> --tenant T --tool-requirement JSON [--claims JSON]`. */
export const check: CommandSpec = {
  name: COMMAND,
  summary: 'Explain whether a subject may call a tool with a given requirement, and why',
  details: [
    "The subject's effective claims are what every server computes: the catalog entries among the token claims",
    "(--claims, optional) plus the grants of the subject and of its groups, read from the tenant's database.",
    'Prints each category of the requirement, the decision and, for a refusal, its code: INSUFFICIENT_SCOPE',
    '(with the scopes to request) or PERMISSION_DENIED. A refusal is an answer, not a failure: exit 0.',
    'The subject is bound to its issuer (--issuer, default: the only AUTHSEC_ISSUER): the same sub from another',
    "issuer holds none of its grants, and a tenant that names its allowed issuers refuses other issuers' tokens",
    '(TENANT_UNKNOWN).',
    'Example: authsec check alice --tenant acme-corp --tool-requirement \'{"roles":["admin"]}\'',
  ],
  args: [{ name: 'subject', description: "A token's sub (the user or client id)" }],
  flags: {
    tenant: tenantFlag,
    issuer: issuerFlag,
    'tool-requirement': {
      type: 'string',
      value: 'json',
      required: true,
      description:
        'The tool\'s requirement as JSON, e.g. {"roles":["admin"],"scopes":["write"],"requireAll":true}',
    },
    claims: {
      type: 'string',
      value: 'json',
      description:
        'Claims of the token to assume, e.g. {"roles":["admin"],"scope":"read write"}. Default: none',
    },
    args: {
      type: 'string',
      value: 'json',
      description: 'The call\'s arguments for `when` conditions, e.g. {"amount":250}. Default: {}',
    },
    tool: {
      type: 'string',
      value: 'name',
      description: "The tool's name: the tenant's own conditions on it (authsec policy) are checked too",
    },
  },
  async run(ctx) {
    const tenantId = ctx.string('tenant')!;
    const subject = ctx.args.subject!;
    const notes: string[] = [];
    let requirement = readRequirement(ctx.string('tool-requirement')!, notes);
    const { claims, ignoredKeys } = readClaims(ctx.string('claims'));
    const args = readArgs(ctx.string('args'));
    // A token's subject is a person of one issuer, even when it is spelled like a group.
    const issuer = tokenIssuer(ctx);

    const record = await ctx.requireTenant(tenantId);
    const storage = await ctx.storage();
    const tool = ctx.string('tool');
    if (tool !== undefined) {
      // As a server does: the tenant's conditions on the tool, ANDed with the requirement's own.
      const stored = (await storage.directory.admin.listToolConditions(tenantId, tool))[0]?.conditions ?? [];
      if (stored.length > 0) {
        requirement = compileRequirement(
          { ...requirement.source, when: [...requirement.conditions, ...stored] },
          { name: tool },
        );
        notes.push(`tenant '${tenantId}' adds ${stored.length} condition(s) on tool '${tool}'`);
      }
    }
    const fromToken: Principal = Object.freeze({
      subject,
      email: undefined,
      tenantId,
      clientId: undefined,
      issuer,
      ...claims,
      expiresAt: Math.floor(Date.now() / 1000) + 300,
      claims: Object.freeze({}),
    });
    let effective: Principal | undefined;
    let refusal: Refusal | undefined;
    try {
      effective = await storage.directory.resolve(fromToken);
    } catch (error) {
      if (!isAuthSecError(error) || error.code !== 'TENANT_UNKNOWN') throw error;
      refusal = {
        code: error.code,
        message:
          record.status === 'disabled'
            ? `tenant '${tenantId}' is disabled: every token of it is refused`
            : `tenant '${tenantId}' does not allow issuer ${issuer}: its tokens are refused (allowed: ${(record.issuers ?? []).join(', ')})`,
      };
    }
    const decision = effective ? decide(effective, requirement) : undefined;
    refusal ??= decision?.refusal;
    // The conditions run after the categories, as on a server: only for a call the categories allow.
    const conditions: ConditionOutcome[] =
      effective && refusal === undefined ? explainConditions(effective, requirement, args) : [];
    const unmet = conditions.find((c) => c.result !== 'pass');
    if (unmet !== undefined)
      refusal = {
        code: 'CONDITION_FAILED',
        message: `the condition ${unmet.expression} does not hold${unmet.result === 'error' ? ' (it cannot be evaluated on these arguments)' : ''}`,
      };
    const explanation = decision?.explanation;
    const allowed = refusal === undefined;
    const effectiveClaims = Object.fromEntries(FIELDS.map((f) => [f, effective ? [...effective[f]] : []]));
    const ignoredClaims = Object.fromEntries(
      FIELDS.map((f) => [f, effective ? difference(claims[f], effective[f]) : []]),
    );

    if (ctx.json) {
      ctx.out.json({
        tenant: tenantId,
        subject,
        issuer,
        requirement: requirement.source,
        requireAll: requirement.requireAll,
        effective: effectiveClaims,
        tokenClaims: claims,
        ignoredClaims,
        ignoredKeys,
        categories: explanation?.categories ?? [],
        failed: explanation?.failed ?? [],
        conditions,
        allowed,
        decision: allowed ? 'allow' : 'deny',
        refusal: refusal ?? null,
        notes,
      });
      return 0;
    }

    ctx.out.line(`Subject '${subject}' of ${issuer} in tenant '${tenantId}'`);
    if (effective) {
      ctx.out.line();
      ctx.out.table(
        ['CLAIM', 'EFFECTIVE', 'FROM TOKEN', 'GRANTED', 'IGNORED (not in catalog)'],
        FIELDS.map((f) => {
          const token = effective[f].filter((v) => claims[f].includes(v));
          return [
            f,
            cell(effective[f]),
            cell(token),
            cell(difference(effective[f], token)),
            cell(ignoredClaims[f]),
          ];
        }),
      );
    }
    if (ignoredKeys.length > 0)
      ctx.out.line(`Token claims not used for decisions: ${ignoredKeys.join(', ')}`);
    ctx.out.line();
    ctx.out.line(
      `Requirement ${JSON.stringify(requirement.source)}: ${
        requirement.categories.length === 0
          ? 'any authenticated caller'
          : requirement.requireAll
            ? 'every category must pass'
            : 'any one category must pass'
      }`,
    );
    for (const note of notes) ctx.out.line(`note: ${note}`);
    if (explanation && explanation.categories.length > 0) {
      ctx.out.table(
        ['CATEGORY', 'NEEDS', 'HELD', 'MISSING', 'RESULT'],
        explanation.categories.map((c) => [
          c.category,
          `${c.mode === 'allOf' ? 'all of' : 'any of'} ${c.required.join(', ')}`,
          cell(c.held),
          cell(c.missing),
          c.passed ? 'pass' : 'fail',
        ]),
      );
    }
    if (conditions.length > 0) {
      ctx.out.line(`Conditions, on --args ${JSON.stringify(args)}:`);
      ctx.out.table(
        ['CONDITION', 'RESULT'],
        conditions.map((c) => [c.expression, c.result]),
      );
    }
    ctx.out.line();
    if (!refusal) {
      ctx.out.line('Decision: allow');
    } else {
      ctx.out.line(`Decision: deny ${refusal.code}: ${refusal.message}`);
      if (refusal.scopes) ctx.out.line(`Scopes to request: ${refusal.scopes.join(' ')}`);
    }
    return 0;
  },
};
