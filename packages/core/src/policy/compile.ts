import {
  CATEGORIES,
  type Category,
  type CategoryRequirement,
  type Logger,
  type Requirement,
} from '../types.js';
import { type CompiledCondition, compileConditions, requirementLabel } from './conditions.js';

/** How the values of one category combine: `anyOf` (a plain list) or `allOf`. */
export type CategoryMode = 'anyOf' | 'allOf';

/** One validated category of a {@link CompiledRequirement}. */
export interface CompiledCategory {
  /** The category name. */
  readonly category: Category;
  /** `anyOf` for a plain list or `{ anyOf }`, `allOf` for `{ allOf }`. */
  readonly mode: CategoryMode;
  /** The required values, deduplicated, in the order written. */
  readonly values: readonly string[];
}

/**
 * A validated, frozen requirement, ready for {@link evaluate}. Only {@link compileRequirement} creates one;
 * the evaluation functions refuse any other object, so a hand-made look-alike can never skip validation.
 */
export interface CompiledRequirement {
  /** A frozen, normalised copy of the requirement as written (duplicates removed, `undefined` keys dropped). */
  readonly source: Requirement;
  /** The tool name given at compilation, used in messages and warnings. */
  readonly name: string | undefined;
  /** Whether every given category must be satisfied (`true`) or any one of them (`false`). */
  readonly requireAll: boolean;
  /** The given categories, in the fixed order of {@link CATEGORIES}. Empty: any authenticated caller. */
  readonly categories: readonly CompiledCategory[];
  /** The `when` conditions as written, deduplicated; empty when there are none. */
  readonly conditions: readonly string[];
}

/** Options of {@link compileRequirement}. */
export interface CompileRequirementOptions {
  /** The tool this requirement protects; named in error messages and in the OR warning. Default: none. */
  readonly name?: string;
  /**
   * Receives the one-time warning about a requirement that lists several categories without `requireAll`.
   * Default: `process.emitWarning` (stderr), so the warning is never lost.
   */
  readonly logger?: Logger;
}

/** @internal A category with the `resource:action` split of each permission precomputed. */
export interface CategoryPlan extends CompiledCategory {
  /** For `permissions`: the resource part of each value (same index); empty for other categories. */
  readonly resources: readonly string[];
  /** For `permissions`: the action part (a scope) of each value; empty for other categories. */
  readonly actions: readonly string[];
}

/** @internal What a compiled requirement really holds. */
export interface RequirementPlan extends CompiledRequirement {
  readonly categories: readonly CategoryPlan[];
  /** Precomputed answer of {@link requiredScopes}. */
  readonly scopes: readonly string[];
  /** The compiled `when` conditions, in the order of `conditions`. */
  readonly compiledConditions: readonly CompiledCondition[];
}

const compiled = new WeakSet<object>();

// RFC 6749 §3.3 scope-token: printable ASCII except space, '"' and '\'. Scopes travel in a space-separated
// `scope` claim and in the `WWW-Authenticate` scope parameter, so anything else could never match or be asked for.
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;

const REQUIREMENT_KEYS: ReadonlySet<string> = new Set<string>([...CATEGORIES, 'requireAll', 'when']);

const NO_CONDITIONS: readonly CompiledCondition[] = Object.freeze([]);

// Bounded so that code compiling requirements per request cannot grow this without limit (or flood the log).
const MAX_WARNED = 10_000;
const warned = new Set<string>();

/**
 * True when `value` was created by {@link compileRequirement} (of this copy of the package). Use it to accept
 * either a written or a compiled requirement.
 */
export function isCompiledRequirement(value: unknown): value is CompiledRequirement {
  return typeof value === 'object' && value !== null && compiled.has(value);
}

/** @internal Returns the plan behind `requirement`, or throws a `TypeError` for anything not compiled here. */
export function planOf(requirement: CompiledRequirement): RequirementPlan {
  if (!isCompiledRequirement(requirement)) {
    throw new TypeError('Expected a CompiledRequirement created by compileRequirement()');
  }
  return requirement as RequirementPlan;
}

/** @internal The compiled `when` conditions of a compiled requirement (empty when it has none). */
export function conditionsOf(requirement: CompiledRequirement): readonly CompiledCondition[] {
  return planOf(requirement).compiledConditions;
}

const label = requirementLabel;

function checkValue(value: unknown, category: Category, name: string | undefined): string {
  if (typeof value !== 'string') {
    throw new TypeError(`${label(name)}: ${category} values must be strings, got ${typeof value}`);
  }
  if (value.length === 0 || value.trim() !== value) {
    throw new TypeError(`${label(name)}: ${category} value ${JSON.stringify(value)} is empty or padded`);
  }
  if (category === 'scopes' && !SCOPE_TOKEN.test(value)) {
    throw new TypeError(`${label(name)}: scope ${JSON.stringify(value)} is not a valid OAuth scope token`);
  }
  return value;
}

function readValues(raw: unknown, category: Category, name: string | undefined): readonly string[] {
  if (!Array.isArray(raw)) {
    throw new TypeError(`${label(name)}: ${category} must be a list of strings`);
  }
  if (raw.length === 0) {
    throw new TypeError(
      `${label(name)}: ${category} is an empty list, which is ambiguous (nobody, or everybody?): omit the category`,
    );
  }
  const values: string[] = [];
  for (const value of raw as readonly unknown[]) {
    const checked = checkValue(value, category, name);
    if (!values.includes(checked)) values.push(checked);
  }
  return Object.freeze(values);
}

function readCategory(
  raw: unknown,
  category: Category,
  name: string | undefined,
): { mode: CategoryMode; values: readonly string[] } {
  if (Array.isArray(raw)) return { mode: 'anyOf', values: readValues(raw, category, name) };
  if (typeof raw === 'object' && raw !== null) {
    const keys = Object.keys(raw);
    const key = keys[0];
    if (keys.length === 1 && (key === 'allOf' || key === 'anyOf')) {
      return { mode: key, values: readValues((raw as Record<string, unknown>)[key], category, name) };
    }
  }
  throw new TypeError(`${label(name)}: ${category} must be a list, { allOf: [...] } or { anyOf: [...] }`);
}

// The action is the scope that, with the resource, grants the permission. Split at the LAST colon: resources
// are often URIs or URNs (`urn:acme:db:write` is resource `urn:acme:db`, action `write`), while the action is a
// scope token that, in this model, names a verb.
function splitPermission(value: string, name: string | undefined): { resource: string; action: string } {
  const at = value.lastIndexOf(':');
  const resource = value.slice(0, at);
  const action = value.slice(at + 1);
  if (at <= 0 || action.length === 0 || !SCOPE_TOKEN.test(action)) {
    throw new TypeError(
      `${label(name)}: permission ${JSON.stringify(value)} must be 'resource:action' with a non-empty resource ` +
        'and an action that is a valid OAuth scope token',
    );
  }
  return { resource, action };
}

function sourceCategory(mode: CategoryMode, values: readonly string[], raw: unknown): CategoryRequirement {
  if (Array.isArray(raw)) return values;
  return Object.freeze(mode === 'allOf' ? { allOf: values } : { anyOf: values });
}

function pushUnique(target: string[], values: readonly string[]): void {
  for (const value of values) if (!target.includes(value)) target.push(value);
}

function warnOr(plans: readonly CategoryPlan[], name: string | undefined, logger: Logger | undefined): void {
  const key = `${name ?? ''}\u0000${JSON.stringify(plans.map((p) => [p.category, p.mode, p.values]))}`;
  if (warned.has(key) || warned.size >= MAX_WARNED) return;
  warned.add(key);
  const categories = plans.map((p) => p.category);
  const subject = name === undefined ? 'A requirement' : `Tool '${name}'`;
  const message =
    `${subject} lists ${categories.join(', ')} without requireAll, so a caller who satisfies ANY ONE of these ` +
    'categories is allowed. Set requireAll: true to require all of them, or requireAll: false to keep OR and ' +
    'silence this warning.';
  if (logger) logger.warn(message, { tool: name, categories });
  else process.emitWarning(message, { code: 'AUTHSEC_REQUIREMENT_OR' });
}

/**
 * Validates a requirement once and precomputes what evaluation needs.
 *
 * Misuse is a `TypeError`: a non-object, an unknown key, a category that is not a list / `{ allOf }` /
 * `{ anyOf }`, an empty list, a value that is not a non-empty unpadded string, a scope that is not an RFC 6749
 * scope token, a permission that is not `resource:action` (split at the last `:`; the action must be a scope
 * token), or a non-boolean `requireAll`. A key whose value is `undefined` counts as absent.
 *
 * Several categories without an explicit `requireAll` mean OR across them, which surprises people: this logs one
 * warning per process for each distinct requirement and tool name.
 */
export function compileRequirement(
  requirement: Requirement,
  options: CompileRequirementOptions = {},
): CompiledRequirement {
  const name = options.name;
  if (name !== undefined && typeof name !== 'string') throw new TypeError('options.name must be a string');
  if (typeof requirement !== 'object' || requirement === null || Array.isArray(requirement)) {
    throw new TypeError(`${label(name)} must be an object`);
  }
  const raw = requirement as Readonly<Record<string, unknown>>;
  for (const key of Object.keys(raw)) {
    if (!REQUIREMENT_KEYS.has(key)) {
      throw new TypeError(
        `${label(name)}: unknown key '${key}' (expected ${[...REQUIREMENT_KEYS].join(', ')})`,
      );
    }
  }
  const requireAllRaw = raw.requireAll;
  if (requireAllRaw !== undefined && typeof requireAllRaw !== 'boolean') {
    throw new TypeError(`${label(name)}: requireAll must be a boolean`);
  }

  const plans: CategoryPlan[] = [];
  const source: Record<string, unknown> = {};
  for (const category of CATEGORIES) {
    const value = raw[category];
    if (value === undefined) continue;
    const { mode, values } = readCategory(value, category, name);
    let resources: readonly string[] = [];
    let actions: readonly string[] = [];
    if (category === 'permissions') {
      const parts = values.map((v) => splitPermission(v, name));
      resources = Object.freeze(parts.map((p) => p.resource));
      actions = Object.freeze(parts.map((p) => p.action));
    }
    plans.push(Object.freeze({ category, mode, values, resources, actions }));
    source[category] = sourceCategory(mode, values, value);
  }
  if (requireAllRaw !== undefined) source.requireAll = requireAllRaw;
  const compiledConditions = raw.when === undefined ? NO_CONDITIONS : compileConditions(raw.when, name);
  const conditions = Object.freeze(compiledConditions.map((c) => c.expression));
  if (raw.when !== undefined) source.when = conditions;

  const requireAll = requireAllRaw === true;
  if (plans.length >= 2 && requireAllRaw === undefined) warnOr(plans, name, options.logger);

  // Under OR, the scopes category and the permissions category are alternatives: a token needs the scopes
  // category's scopes, or (only when there is none) the permissions' action scopes.
  const scopes: string[] = [];
  const scopePlan = plans.find((p) => p.category === 'scopes');
  const permissionPlan = plans.find((p) => p.category === 'permissions');
  if (scopePlan) pushUnique(scopes, scopePlan.values);
  if (permissionPlan && (requireAll || !scopePlan)) pushUnique(scopes, permissionPlan.actions);

  const plan: RequirementPlan = Object.freeze({
    source: Object.freeze(source) as Requirement,
    name,
    requireAll,
    categories: Object.freeze(plans),
    conditions,
    scopes: Object.freeze(scopes),
    compiledConditions,
  });
  compiled.add(plan);
  return plan;
}

/**
 * The scopes a token should carry to use a tool through its scope route, for a 401 challenge's `scope`
 * parameter or for `scopes_supported`: every value of the `scopes` category, then the action scope of every
 * `permissions` value. Under `requireAll: false` the permissions' actions are listed only when there is no
 * `scopes` category (they are then the only scope route). Empty when scopes play no part.
 */
export function requiredScopes(requirement: CompiledRequirement): readonly string[] {
  return planOf(requirement).scopes;
}
