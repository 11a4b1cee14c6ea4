/**
 * Scope hierarchies: a scope that implies others (`admin` ⇒ `write` ⇒ `read`). The 2026-07-28 authorization
 * spec says servers MUST account for them; here the caller's scopes are expanded once, when the principal is
 * verified, so every decision, every list and every step-up challenge sees the implied scopes too.
 */

import type { Principal } from './types.js';

/** `{ implies: { admin: ['write'], write: ['read'] } }`: each scope names the scopes it implies (transitively). */
export interface ScopeHierarchyOptions {
  readonly implies: Readonly<Record<string, readonly string[]>>;
}

/** Expands a principal's scopes: returns the principal itself when nothing is implied. */
export type ScopeExpander = (principal: Principal) => Principal;

const SCOPE = /^[\x21\x23-\x5b\x5d-\x7e]+$/; // RFC 6749 scope-token

/**
 * Compiles a hierarchy into an expander, validating it once (a `TypeError` names the bad entry). Cycles are
 * allowed (`a` ⇒ `b` ⇒ `a` means they are equivalent). Expanded principals are memoised per frozen principal.
 */
export function createScopeExpander(options: ScopeHierarchyOptions | undefined): ScopeExpander {
  if (options === undefined) return (principal) => principal;
  if (typeof options?.implies !== 'object' || options.implies === null)
    throw new TypeError('scopes.implies must map a scope to the scopes it implies');
  const direct = new Map<string, readonly string[]>();
  for (const [scope, implied] of Object.entries(options.implies)) {
    if (!SCOPE.test(scope)) throw new TypeError(`scopes.implies: not a scope: ${JSON.stringify(scope)}`);
    if (!Array.isArray(implied) || implied.some((s) => typeof s !== 'string' || !SCOPE.test(s)))
      throw new TypeError(`scopes.implies.${scope}: a list of scopes is required`);
    direct.set(scope, implied);
  }
  // The transitive closure of each scope, computed once.
  const closure = new Map<string, readonly string[]>();
  for (const scope of direct.keys()) {
    const seen = new Set<string>();
    const stack = [...(direct.get(scope) ?? [])];
    while (stack.length > 0) {
      const next = stack.pop()!;
      if (seen.has(next)) continue;
      seen.add(next);
      stack.push(...(direct.get(next) ?? []));
    }
    seen.delete(scope);
    closure.set(scope, [...seen]);
  }
  const memo = new WeakMap<Principal, Principal>();
  return (principal) => {
    const hit = memo.get(principal);
    if (hit !== undefined) return hit;
    const scopes = new Set(principal.scopes);
    for (const scope of principal.scopes) for (const implied of closure.get(scope) ?? []) scopes.add(implied);
    const expanded =
      scopes.size === principal.scopes.length
        ? principal
        : Object.freeze({ ...principal, scopes: Object.freeze([...scopes]) });
    if (Object.isFrozen(principal)) memo.set(principal, expanded);
    return expanded;
  };
}
