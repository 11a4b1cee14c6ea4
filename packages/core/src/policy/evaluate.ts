import { AuthSecError } from '../errors.js';
import type { Category, Principal } from '../types.js';
import {
  type CategoryMode,
  type CategoryPlan,
  type CompiledRequirement,
  planOf,
  type RequirementPlan,
} from './compile.js';
import { type ConditionOutcome, conditionOutcomes, conditionUser } from './conditions.js';

/** Why one category of a requirement passed or failed for one caller. */
export interface CategoryExplanation {
  /** The category. */
  readonly category: Category;
  /** Whether any (`anyOf`) or every (`allOf`) value is needed. */
  readonly mode: CategoryMode;
  /** The values the requirement lists. */
  readonly required: readonly string[];
  /** The listed values the caller holds (for permissions: granted, or resource and action scope held). */
  readonly held: readonly string[];
  /** The listed values the caller does not hold. */
  readonly missing: readonly string[];
  /** Whether this category is satisfied. */
  readonly passed: boolean;
}

/** A full account of one decision, for `authsec check`, audit reasons and debugging. */
export interface Explanation {
  /** The decision, identical to {@link evaluate}. */
  readonly allowed: boolean;
  /** Whether every category had to pass. */
  readonly requireAll: boolean;
  /** One entry per category the requirement gives, in the order of `CATEGORIES`. */
  readonly categories: readonly CategoryExplanation[];
  /** The categories that did not pass (under OR, some may fail while the call is still allowed). */
  readonly failed: readonly Category[];
  /** True when the call is refused and more scopes alone would allow it (see {@link authorize}). */
  readonly insufficientScope: boolean;
  /** When `insufficientScope`: the scopes the caller lacks and should request. Otherwise empty. */
  readonly neededScopes: readonly string[];
}

/** Options of {@link authorize}. */
export interface AuthorizeOptions {
  /** The tool name to put in the refusal message. Default: the name given at compilation. */
  readonly target?: string;
  /** What the target is, for the message: `'Tool'` (default), `'Resource'`, `'Prompt'`. */
  readonly kind?: string;
}

type ClaimSets = Readonly<Record<Category, ReadonlySet<string>>>;

const EMPTY: readonly string[] = Object.freeze([]);

// Principals are frozen, so their claim Sets are built once and reused by every later check of the same
// principal; the WeakMap lets them go with the principal.
const claimSets = new WeakMap<Principal, ClaimSets>();

function toSet(values: unknown): ReadonlySet<string> {
  const set = new Set<string>();
  // A string here would otherwise be iterated character by character, granting role 'a' to 'admin'.
  if (Array.isArray(values)) for (const value of values) if (typeof value === 'string') set.add(value);
  return set;
}

function setsOf(principal: Principal): ClaimSets {
  const cached = claimSets.get(principal);
  if (cached !== undefined) return cached;
  if (typeof principal !== 'object' || principal === null) throw new TypeError('Expected a Principal');
  const sets: ClaimSets = Object.freeze({
    roles: toSet(principal.roles),
    groups: toSet(principal.groups),
    scopes: toSet(principal.scopes),
    resources: toSet(principal.resources),
    permissions: toSet(principal.permissions),
  });
  // An unfrozen object may change after this call, so its Sets would go stale: only frozen ones are cached.
  if (Object.isFrozen(principal)) claimSets.set(principal, sets);
  return sets;
}

function holds(sets: ClaimSets, plan: CategoryPlan, index: number): boolean {
  const value = plan.values[index]!;
  if (plan.category !== 'permissions') return sets[plan.category].has(value);
  return (
    sets.permissions.has(value) ||
    (sets.resources.has(plan.resources[index]!) && sets.scopes.has(plan.actions[index]!))
  );
}

function passes(sets: ClaimSets, plan: CategoryPlan): boolean {
  const count = plan.values.length;
  if (plan.mode === 'anyOf') {
    for (let i = 0; i < count; i++) if (holds(sets, plan, i)) return true;
    return false;
  }
  for (let i = 0; i < count; i++) if (!holds(sets, plan, i)) return false;
  return true;
}

function decide(sets: ClaimSets, plan: RequirementPlan): boolean {
  const categories = plan.categories;
  const count = categories.length;
  if (count === 0) return true;
  if (plan.requireAll) {
    for (let i = 0; i < count; i++) if (!passes(sets, categories[i]!)) return false;
    return true;
  }
  for (let i = 0; i < count; i++) if (passes(sets, categories[i]!)) return true;
  return false;
}

/**
 * Whether `principal` satisfies `requirement`. The hot path: after the first call for a principal it allocates
 * nothing and runs in well under a microsecond for typical requirements.
 */
export function evaluate(principal: Principal, requirement: CompiledRequirement): boolean {
  const plan = planOf(requirement);
  return decide(setsOf(principal), plan);
}

function pushUnique(target: string[], values: Iterable<string>): void {
  for (const value of values) if (!target.includes(value)) target.push(value);
}

// The scopes to add so that one category passes: [] when it already does, undefined when scopes cannot help.
function scopesToPass(sets: ClaimSets, plan: CategoryPlan): string[] | undefined {
  if (passes(sets, plan)) return [];
  if (plan.category === 'scopes') {
    // For anyOf every option is offered: the client asks for all and the server takes the one it is granted.
    return plan.mode === 'anyOf' ? [...plan.values] : plan.values.filter((v) => !sets.scopes.has(v));
  }
  if (plan.category !== 'permissions') return undefined;
  const needed: string[] = [];
  for (let i = 0; i < plan.values.length; i++) {
    if (holds(sets, plan, i)) continue;
    if (sets.resources.has(plan.resources[i]!)) pushUnique(needed, [plan.actions[i]!]);
    else if (plan.mode === 'allOf') return undefined;
  }
  return needed.length > 0 ? needed : undefined;
}

// Could the same principal with extra scopes (and nothing else) pass? If so, which scopes should it ask for?
function stepUpScopes(sets: ClaimSets, plan: RequirementPlan): string[] | undefined {
  const needed: string[] = [];
  if (plan.requireAll) {
    for (const category of plan.categories) {
      const scopes = scopesToPass(sets, category);
      if (scopes === undefined) return undefined;
      pushUnique(needed, scopes);
    }
  } else {
    // Under OR one route is enough. The scopes category is preferred (it is the tool's stated OAuth scope
    // need, and what requiredScopes() advertises); the permissions route is used only when there is none.
    const route =
      plan.categories.find((c) => c.category === 'scopes') ??
      plan.categories.find((c) => c.category === 'permissions');
    const scopes = route === undefined ? undefined : scopesToPass(sets, route);
    if (scopes === undefined) return undefined;
    pushUnique(needed, scopes);
  }
  return needed.length > 0 ? needed : undefined;
}

function explainCategory(sets: ClaimSets, plan: CategoryPlan): CategoryExplanation {
  const held: string[] = [];
  const missing: string[] = [];
  for (let i = 0; i < plan.values.length; i++) (holds(sets, plan, i) ? held : missing).push(plan.values[i]!);
  const passed = plan.mode === 'anyOf' ? held.length > 0 : missing.length === 0;
  return Object.freeze({
    category: plan.category,
    mode: plan.mode,
    required: plan.values,
    held: Object.freeze(held),
    missing: Object.freeze(missing),
    passed,
  });
}

/**
 * Explains a decision category by category, including whether more scopes alone would allow it and which.
 * Allocates; meant for refusals, audit reasons and tooling, not for the hot path.
 */
export function explain(principal: Principal, requirement: CompiledRequirement): Explanation {
  const plan = planOf(requirement);
  const sets = setsOf(principal);
  const allowed = decide(sets, plan);
  const categories = Object.freeze(plan.categories.map((c) => explainCategory(sets, c)));
  const failed = Object.freeze(categories.filter((c) => !c.passed).map((c) => c.category));
  const needed = allowed ? undefined : stepUpScopes(sets, plan);
  return Object.freeze({
    allowed,
    requireAll: plan.requireAll,
    categories,
    failed,
    insufficientScope: needed !== undefined,
    neededScopes: needed === undefined ? EMPTY : Object.freeze(needed),
  });
}

function describe(category: CategoryExplanation): string {
  return `${category.category} ${category.mode === 'allOf' ? 'all of' : 'any of'} [${category.required.join(', ')}]`;
}

/**
 * Throws unless `principal` satisfies `requirement`.
 *
 * - `INSUFFICIENT_SCOPE` when the same caller with more scopes (and nothing else) would be allowed; scopes count
 *   directly and through `resource:action` permissions whose resource the caller holds. `details.scopes` is the
 *   scopes the caller lacks followed by the scopes it already holds, deduplicated: what a client should request
 *   (the `scope` of the `insufficient_scope` challenge). Which scopes are "lacking": under `requireAll: true`,
 *   for each failing category, every option of an `anyOf` scopes list (the client cannot know which one it may
 *   get), the missing values of an `allOf` scopes list, and the action scopes of the unmet permissions whose
 *   resource is held; under `requireAll: false`, those of the `scopes` category if the requirement has one,
 *   else those of the `permissions` category.
 * - `PERMISSION_DENIED` otherwise, naming the tool and the categories that failed; `details.failed` lists them.
 *
 * Neither error carries the caller's claims, apart from its scopes in `INSUFFICIENT_SCOPE` (the challenge
 * needs them).
 */
export function authorize(
  principal: Principal,
  requirement: CompiledRequirement,
  options: AuthorizeOptions = {},
): void {
  if (evaluate(principal, requirement)) return;
  const explanation = explain(principal, requirement);
  const tool = options.target ?? requirement.name;
  const subject = tool === undefined ? 'This call' : `${options.kind ?? 'Tool'} '${tool}'`;
  const unmet = explanation.categories.filter((c) => !c.passed).map(describe);
  const needs = `${subject} requires ${unmet.join(explanation.requireAll ? ' and ' : ' or ')}`;
  const failed = explanation.failed;
  if (explanation.insufficientScope) {
    const scopes = [...explanation.neededScopes];
    pushUnique(scopes, setsOf(principal).scopes);
    throw new AuthSecError(
      'INSUFFICIENT_SCOPE',
      `${needs}; request the scopes: ${explanation.neededScopes.join(' ')}`,
      { details: { scopes: Object.freeze(scopes), failed } },
    );
  }
  throw new AuthSecError('PERMISSION_DENIED', needs, { details: { failed } });
}

/**
 * The outcome of each `when` condition of `requirement` for `principal` calling with `args` (the validated
 * arguments) at `now`: what `AuthSec.checkConditions` decides, shown condition by condition. Empty when the
 * requirement has no conditions. The call is allowed only when every outcome is `pass`.
 */
export function explainConditions(
  principal: Principal,
  requirement: CompiledRequirement,
  args: Readonly<Record<string, unknown>>,
  now: Date = new Date(),
): ConditionOutcome[] {
  return conditionOutcomes(planOf(requirement).compiledConditions, {
    args,
    user: conditionUser(principal),
    now,
  });
}
