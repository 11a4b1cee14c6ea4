import { describe, expect, it } from 'vitest';
import { compileRequirement, evaluate, explain } from '../../src/policy/index.js';
import type { Principal, Requirement } from '../../src/types.js';
import { principal, type TestClaims } from './principal.js';

function allowed(claims: TestClaims, requirement: Requirement): boolean {
  return evaluate(principal(claims), compileRequirement(requirement, { logger: silent }));
}

const silent = { debug() {}, info() {}, warn() {}, error() {} };

describe('evaluate: inside one category', () => {
  it('a plain list needs any listed value', () => {
    expect(allowed({ roles: ['analyst'] }, { roles: ['admin', 'manager', 'analyst'] })).toBe(true);
    expect(allowed({ roles: ['developer'] }, { roles: ['admin', 'manager', 'analyst'] })).toBe(false);
  });

  it('{ anyOf } is the same as a plain list', () => {
    expect(allowed({ groups: ['devops'] }, { groups: { anyOf: ['engineering', 'devops'] } })).toBe(true);
    expect(allowed({ groups: ['sales'] }, { groups: { anyOf: ['engineering', 'devops'] } })).toBe(false);
  });

  it('{ allOf } needs every value', () => {
    const requirement: Requirement = { resources: { allOf: ['production', 'sensitive-data'] } };
    expect(allowed({ resources: ['production', 'sensitive-data'] }, requirement)).toBe(true);
    expect(allowed({ resources: ['sensitive-data', 'production', 'x'] }, requirement)).toBe(true);
    expect(allowed({ resources: ['production'] }, requirement)).toBe(false);
    expect(allowed({ resources: [] }, requirement)).toBe(false);
  });

  it('matches values exactly (case-sensitive, no prefixes)', () => {
    expect(allowed({ roles: ['Admin'] }, { roles: ['admin'] })).toBe(false);
    expect(allowed({ roles: ['admin2'] }, { roles: ['admin'] })).toBe(false);
    expect(allowed({ scopes: ['write:all'] }, { scopes: ['write'] })).toBe(false);
  });

  it.each(['roles', 'groups', 'scopes', 'resources'] as const)(
    'reads %s from the same-named claim',
    (category) => {
      expect(allowed({ [category]: ['x'] }, { [category]: ['x'] })).toBe(true);
      const others = (['roles', 'groups', 'scopes', 'resources', 'permissions'] as const).filter(
        (c) => c !== category,
      );
      expect(allowed(Object.fromEntries(others.map((c) => [c, ['x']])), { [category]: ['x'] })).toBe(false);
    },
  );
});

describe('evaluate: across categories', () => {
  const requirement = { roles: ['admin'], groups: ['engineering'] };

  it('requireAll false (the default): any given category is enough', () => {
    expect(allowed({ roles: ['admin'] }, { ...requirement, requireAll: false })).toBe(true);
    expect(allowed({ groups: ['engineering'] }, { ...requirement, requireAll: false })).toBe(true);
    expect(allowed({ groups: ['engineering'] }, requirement)).toBe(true);
    expect(allowed({ roles: ['developer'], groups: ['sales'] }, requirement)).toBe(false);
  });

  it('requireAll true: every given category must pass', () => {
    const and = { ...requirement, requireAll: true };
    expect(allowed({ roles: ['admin'], groups: ['engineering'] }, and)).toBe(true);
    expect(allowed({ roles: ['admin'] }, and)).toBe(false);
    expect(allowed({ groups: ['engineering'] }, and)).toBe(false);
  });

  it('requireAll with a single category is that category', () => {
    expect(allowed({ roles: ['admin'] }, { roles: ['admin'], requireAll: true })).toBe(true);
    expect(allowed({}, { roles: ['admin'], requireAll: true })).toBe(false);
  });

  it('no categories: any authenticated caller, with or without requireAll', () => {
    expect(allowed({}, {})).toBe(true);
    expect(allowed({}, { requireAll: true })).toBe(true);
    expect(allowed({}, { requireAll: false })).toBe(true);
  });

  it('an empty requirement still needs a principal', () => {
    const compiled = compileRequirement({});
    expect(() => evaluate(null as unknown as Principal, compiled)).toThrow(TypeError);
    expect(() => evaluate(undefined as unknown as Principal, compiled)).toThrow(TypeError);
  });
});

describe('evaluate: resource:action permissions', () => {
  const requirement: Requirement = { permissions: ['production:write'] };

  it('are held when granted explicitly', () => {
    expect(allowed({ permissions: ['production:write'] }, requirement)).toBe(true);
  });

  it('are held through the resource plus the action scope', () => {
    expect(allowed({ resources: ['production'], scopes: ['write'] }, requirement)).toBe(true);
  });

  it('are not held with the resource alone, the scope alone, or another permission', () => {
    expect(allowed({ resources: ['production'] }, requirement)).toBe(false);
    expect(allowed({ scopes: ['write'] }, requirement)).toBe(false);
    expect(allowed({ resources: ['production'], scopes: ['read'] }, requirement)).toBe(false);
    expect(allowed({ resources: ['staging'], scopes: ['write'] }, requirement)).toBe(false);
    expect(allowed({ permissions: ['production:read', 'staging:write'] }, requirement)).toBe(false);
  });

  it('split at the last colon, so URN resources work', () => {
    const urn: Requirement = { permissions: ['urn:acme:db:write'] };
    expect(allowed({ resources: ['urn:acme:db'], scopes: ['write'] }, urn)).toBe(true);
    expect(allowed({ permissions: ['urn:acme:db:write'] }, urn)).toBe(true);
    expect(allowed({ resources: ['urn'], scopes: ['acme:db:write'] }, urn)).toBe(false);
    expect(allowed({ resources: ['urn:acme'], scopes: ['db:write'] }, urn)).toBe(false);
  });

  it('allOf needs each permission, by either route', () => {
    const both: Requirement = { permissions: { allOf: ['production:write', 'reports:read'] } };
    expect(
      allowed({ permissions: ['production:write'], resources: ['reports'], scopes: ['read'] }, both),
    ).toBe(true);
    expect(allowed({ permissions: ['production:write'] }, both)).toBe(false);
  });

  it('combine with other categories like any category', () => {
    const and: Requirement = { roles: ['deployer'], permissions: ['production:write'], requireAll: true };
    expect(allowed({ roles: ['deployer'], resources: ['production'], scopes: ['write'] }, and)).toBe(true);
    expect(allowed({ resources: ['production'], scopes: ['write'] }, and)).toBe(false);
  });
});

describe('evaluate: the principal claim cache', () => {
  it('gives the same answer on repeated calls with the same frozen principal', () => {
    const user = principal({ roles: ['admin'] });
    const compiled = compileRequirement({ roles: ['admin'] });
    for (let i = 0; i < 5; i++) expect(evaluate(user, compiled)).toBe(true);
    expect(evaluate(user, compileRequirement({ roles: ['manager'] }))).toBe(false);
  });

  it('does not cache an unfrozen principal, whose claims may still change', () => {
    const roles = ['developer'];
    const mutable = { ...principal(), roles } as Principal;
    const compiled = compileRequirement({ roles: ['admin'] });
    expect(evaluate(mutable, compiled)).toBe(false);
    roles.push('admin');
    expect(evaluate(mutable, compiled)).toBe(true);
  });

  it('never iterates a claim given as a string character by character', () => {
    const odd = Object.freeze({ ...principal(), roles: 'admin' }) as unknown as Principal;
    expect(evaluate(odd, compileRequirement({ roles: ['a'] }))).toBe(false);
    expect(evaluate(odd, compileRequirement({ roles: ['admin'] }))).toBe(false);
  });

  it('treats missing claim arrays as empty', () => {
    const partial = Object.freeze({ subject: 's', tenantId: 't' }) as unknown as Principal;
    expect(evaluate(partial, compileRequirement({ roles: ['admin'] }))).toBe(false);
    expect(evaluate(partial, compileRequirement({}))).toBe(true);
  });
});

describe('explain', () => {
  it('explains each category with required, held, missing and passed', () => {
    const compiled = compileRequirement({
      roles: ['admin', 'superuser'],
      groups: ['security-team'],
      scopes: ['write', 'admin'],
      resources: { allOf: ['production', 'sensitive-data'] },
      requireAll: true,
    });
    const user = principal({ roles: ['admin'], scopes: ['write'], resources: ['production'] });
    const explanation = explain(user, compiled);
    expect(explanation).toEqual({
      allowed: false,
      requireAll: true,
      categories: [
        {
          category: 'roles',
          mode: 'anyOf',
          required: ['admin', 'superuser'],
          held: ['admin'],
          missing: ['superuser'],
          passed: true,
        },
        {
          category: 'groups',
          mode: 'anyOf',
          required: ['security-team'],
          held: [],
          missing: ['security-team'],
          passed: false,
        },
        {
          category: 'scopes',
          mode: 'anyOf',
          required: ['write', 'admin'],
          held: ['write'],
          missing: ['admin'],
          passed: true,
        },
        {
          category: 'resources',
          mode: 'allOf',
          required: ['production', 'sensitive-data'],
          held: ['production'],
          missing: ['sensitive-data'],
          passed: false,
        },
      ],
      failed: ['groups', 'resources'],
      insufficientScope: false,
      neededScopes: [],
    });
    expect(Object.isFrozen(explanation)).toBe(true);
    expect(Object.isFrozen(explanation.categories[0])).toBe(true);
  });

  it('reports a permission held through resource and scope as held', () => {
    const explanation = explain(
      principal({ resources: ['production'], scopes: ['write'] }),
      compileRequirement({ permissions: ['production:write', 'staging:write'] }),
    );
    expect(explanation.allowed).toBe(true);
    expect(explanation.categories[0]).toMatchObject({
      held: ['production:write'],
      missing: ['staging:write'],
    });
  });

  it('under OR an allowed call may still list failed categories', () => {
    const explanation = explain(
      principal({ groups: ['engineering'] }),
      compileRequirement({ roles: ['admin'], groups: ['engineering'], requireAll: false }),
    );
    expect(explanation.allowed).toBe(true);
    expect(explanation.failed).toEqual(['roles']);
    expect(explanation.insufficientScope).toBe(false);
  });

  it('an empty requirement is allowed with no categories', () => {
    expect(explain(principal(), compileRequirement({}))).toEqual({
      allowed: true,
      requireAll: false,
      categories: [],
      failed: [],
      insufficientScope: false,
      neededScopes: [],
    });
  });

  it('names the scopes to request when more scopes alone would allow the call', () => {
    const explanation = explain(
      principal({ scopes: ['read'], resources: ['analytics'] }),
      compileRequirement({
        scopes: { allOf: ['read', 'export'] },
        resources: ['analytics'],
        requireAll: true,
      }),
    );
    expect(explanation).toMatchObject({ allowed: false, insufficientScope: true, neededScopes: ['export'] });
  });

  it('agrees with evaluate on every combination of a small claim space', () => {
    const requirements: Requirement[] = [
      { roles: ['a'], scopes: ['s'], requireAll: true },
      { roles: ['a'], scopes: ['s'], requireAll: false },
      { resources: { allOf: ['r', 'q'] }, permissions: ['r:s'], requireAll: true },
      { permissions: { allOf: ['r:s', 'q:s'] } },
      { groups: { anyOf: ['g', 'h'] }, resources: ['r'], requireAll: false },
    ];
    const pools = { roles: ['a'], groups: ['g'], scopes: ['s'], resources: ['r', 'q'], permissions: ['r:s'] };
    const flat = Object.entries(pools).flatMap(([category, values]) =>
      values.map((v) => [category, v] as const),
    );
    for (let mask = 0; mask < 1 << flat.length; mask++) {
      const claims: Record<string, string[]> = {};
      flat.forEach(([category, value], bit) => {
        if (mask & (1 << bit)) claims[category] = [...(claims[category] ?? []), value];
      });
      const user = principal(claims);
      for (const requirement of requirements) {
        const compiled = compileRequirement(requirement, { logger: silent });
        expect(explain(user, compiled).allowed).toBe(evaluate(user, compiled));
      }
    }
  });
});
