/**
 * Conditions (`when`) of a requirement: CEL expressions over a tool's validated arguments (`args`), the caller
 * (`user`) and the time (`now`), compiled once when the requirement is compiled and evaluated per call.
 *
 * CEL (the Common Expression Language) through `@marcbachmann/cel-js`: no `eval`, not Turing-complete (no loops
 * or recursion; macros iterate only over the finite lists they are given), type-checked at compile time against
 * the variables declared here, with parse-time limits on the size and depth of an expression. A condition that
 * cannot be evaluated (a missing key, a type mismatch at run time) or that yields anything but `true` is not met:
 * conditions fail closed.
 */

import { Environment } from '@marcbachmann/cel-js';
import type { Principal } from '../types.js';

/** One compiled condition. */
export interface CompiledCondition {
  /** The expression as written (developer- or tenant-authored; it never holds a caller's argument values). */
  readonly expression: string;
  /** Evaluates the expression on one input. */
  readonly evaluate: (input: ConditionInput) => unknown;
}

/** What a condition sees. */
export interface ConditionInput {
  /** The tool's arguments after its input schema applied (defaults, transforms), without `_user_info`. */
  readonly args: Readonly<Record<string, unknown>>;
  /** The caller. */
  readonly user: ConditionUser;
  /** The time of the decision. */
  readonly now: Date;
}

/** The caller as conditions see it: identity and the effective (database-validated) claims, never the token. */
export interface ConditionUser {
  readonly sub: string;
  readonly email: string | null;
  readonly tenant: string;
  readonly issuer: string;
  readonly client: string | null;
  readonly roles: readonly string[];
  readonly groups: readonly string[];
  readonly scopes: readonly string[];
  readonly resources: readonly string[];
  readonly permissions: readonly string[];
}

/** At most this many conditions on one requirement, each at most {@link MAX_EXPRESSION_LENGTH} characters. */
export const MAX_CONDITIONS = 16;
/** The longest condition accepted. */
export const MAX_EXPRESSION_LENGTH = 1_000;

// One environment for every condition: the variables and their types are fixed, so a typo (`arg.amount`) or an
// operator on the wrong types is a compile-time TypeError, not a call-time denial. The limits bound what a tenant
// can store as much as what code declares.
const environment = new Environment({
  unlistedVariablesAreDyn: false,
  limits: { maxAstNodes: 500, maxDepth: 32, maxListElements: 256, maxMapEntries: 256, maxCallArguments: 8 },
})
  .registerVariable('args', 'map', { description: "The tool's validated arguments" })
  .registerVariable('user', 'map', {
    description:
      'The caller: sub, email, tenant, issuer, client, roles, groups, scopes, resources, permissions',
  })
  .registerVariable('now', 'google.protobuf.Timestamp', { description: 'The time of the decision' });

/** @internal How messages about a requirement name it (with its tool, when there is one). */
export function requirementLabel(name: string | undefined): string {
  return name === undefined ? 'requirement' : `requirement of tool '${name}'`;
}

const label = requirementLabel;

/**
 * Validates and compiles a requirement's `when` (one expression or a list, all of which must hold). Misuse is a
 * `TypeError` naming the expression and what is wrong with it: not a string, empty, too long, too many, a syntax
 * error, an unknown variable or function, or a result that cannot be a boolean.
 */
export function compileConditions(raw: unknown, name: string | undefined): readonly CompiledCondition[] {
  const list = typeof raw === 'string' ? [raw] : raw;
  if (!Array.isArray(list) || list.length === 0)
    throw new TypeError(`${label(name)}: when must be a CEL expression or a non-empty list of them`);
  if (list.length > MAX_CONDITIONS)
    throw new TypeError(`${label(name)}: when has ${list.length} conditions (at most ${MAX_CONDITIONS})`);
  const conditions: CompiledCondition[] = [];
  for (const expression of list as readonly unknown[]) {
    if (typeof expression !== 'string' || expression.trim() === '')
      throw new TypeError(`${label(name)}: each condition must be a non-empty string`);
    if (expression.length > MAX_EXPRESSION_LENGTH)
      throw new TypeError(
        `${label(name)}: a condition is ${expression.length} characters long (at most ${MAX_EXPRESSION_LENGTH})`,
      );
    if (conditions.some((c) => c.expression === expression)) continue;
    let evaluate: (context: ConditionInput) => unknown;
    let type: string;
    try {
      const checked = environment.check(expression);
      if (!checked.valid) throw checked.error;
      type = String(checked.type);
      evaluate = environment.parse(expression) as unknown as (context: ConditionInput) => unknown;
    } catch (error) {
      throw new TypeError(
        `${label(name)}: condition ${JSON.stringify(expression)} is not valid CEL: ${firstLine(error)}`,
      );
    }
    // `dyn` (a bare `args.flag`) may be a boolean at run time; anything else never is.
    if (type !== 'bool' && type !== 'dyn')
      throw new TypeError(
        `${label(name)}: condition ${JSON.stringify(expression)} yields ${type}, not a boolean`,
      );
    conditions.push(Object.freeze({ expression, evaluate }));
  }
  return Object.freeze(conditions);
}

function firstLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split('\n')[0] ?? message;
}

// Principals are frozen and served from the verified-token cache: one view per principal, not per call.
const users = new WeakMap<Principal, ConditionUser>();

/** The caller as {@link ConditionUser}. */
export function conditionUser(principal: Principal): ConditionUser {
  let user = users.get(principal);
  if (user === undefined) {
    user = viewOf(principal);
    users.set(principal, user);
  }
  return user;
}

function viewOf(principal: Principal): ConditionUser {
  return {
    sub: principal.subject,
    email: principal.email ?? null,
    tenant: principal.tenantId,
    issuer: principal.issuer,
    client: principal.clientId ?? null,
    roles: principal.roles,
    groups: principal.groups,
    scopes: principal.scopes,
    resources: principal.resources,
    permissions: principal.permissions,
  };
}

/** One condition's result on `input`: an evaluation error counts as not met, and its message is not kept. */
function resultOf(condition: CompiledCondition, input: ConditionInput): ConditionOutcome['result'] {
  try {
    return condition.evaluate(input) === true ? 'pass' : 'fail';
  } catch {
    // The message may quote an argument's value.
    return 'error';
  }
}

/** The first condition of `conditions` that is not met on `input`, or `undefined` when all hold. */
export function failedCondition(
  conditions: readonly CompiledCondition[],
  input: ConditionInput,
): CompiledCondition | undefined {
  return conditions.find((condition) => resultOf(condition, input) !== 'pass');
}

/** One condition's outcome for one call, for `authsec check --args` and debugging. */
export interface ConditionOutcome {
  readonly expression: string;
  /** `pass` (it yields `true`), `fail` (anything else) or `error` (it cannot be evaluated: not met either). */
  readonly result: 'pass' | 'fail' | 'error';
}

/** Every condition's outcome on `input` (no short cut: an explanation shows them all). */
export function conditionOutcomes(
  conditions: readonly CompiledCondition[],
  input: ConditionInput,
): ConditionOutcome[] {
  return conditions.map((condition) => ({
    expression: condition.expression,
    result: resultOf(condition, input),
  }));
}
