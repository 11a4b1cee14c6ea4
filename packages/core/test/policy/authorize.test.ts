import { describe, expect, it } from 'vitest';
import { type AuthSecError, isAuthSecError } from '../../src/errors.js';
import { authorize, compileRequirement, evaluate, explain } from '../../src/policy/index.js';
import type { Category, Principal, Requirement } from '../../src/types.js';
import { SAMPLE_TOOL_NAMES, sampleRequirement } from '../fixtures/sample-tools.js';
import { principal, type TestClaims } from './principal.js';

const silent = { debug() {}, info() {}, warn() {}, error() {} };

function refusal(user: Principal, requirement: Requirement, target?: string): AuthSecError {
  const compiled = compileRequirement(requirement, { logger: silent, ...(target ? { name: target } : {}) });
  try {
    authorize(user, compiled);
  } catch (error) {
    if (isAuthSecError(error)) return error;
    throw error;
  }
  throw new Error('expected authorize() to refuse');
}

interface Refusal {
  readonly caller: TestClaims;
  readonly code: 'INSUFFICIENT_SCOPE' | 'PERMISSION_DENIED';
  readonly failed: readonly Category[];
  readonly scopes?: readonly string[];
}

interface Row {
  readonly tool: string;
  readonly passes: TestClaims;
  readonly refusals: readonly Refusal[];
}

// Every row of the architecture's sample tool set: a caller who passes, and callers who do not with the code
// they must get. `hello` and `calculator` admit any authenticated caller, so they have no refusals.
const TABLE: readonly Row[] = [
  { tool: 'hello', passes: {}, refusals: [] },
  { tool: 'calculator', passes: {}, refusals: [] },
  {
    tool: 'admin_panel',
    passes: { roles: ['admin'] },
    refusals: [
      {
        caller: { roles: ['developer'], scopes: ['read', 'write'] },
        code: 'PERMISSION_DENIED',
        failed: ['roles'],
      },
    ],
  },
  {
    tool: 'admin_dashboard',
    passes: { roles: ['developer', 'admin'] },
    refusals: [{ caller: { roles: ['manager'] }, code: 'PERMISSION_DENIED', failed: ['roles'] }],
  },
  {
    tool: 'create_resource',
    passes: { scopes: ['write'] },
    refusals: [
      {
        caller: { scopes: ['read'] },
        code: 'INSUFFICIENT_SCOPE',
        failed: ['scopes'],
        scopes: ['write', 'read'],
      },
      { caller: { roles: ['admin'] }, code: 'INSUFFICIENT_SCOPE', failed: ['scopes'], scopes: ['write'] },
    ],
  },
  {
    tool: 'view_analytics',
    passes: { scopes: ['read'], resources: ['analytics'] },
    refusals: [
      {
        caller: { scopes: ['write'], resources: ['analytics'] },
        code: 'INSUFFICIENT_SCOPE',
        failed: ['scopes'],
        scopes: ['read', 'write'],
      },
      {
        caller: { scopes: ['read'], resources: ['projects'] },
        code: 'PERMISSION_DENIED',
        failed: ['resources'],
      },
      { caller: { resources: ['projects'] }, code: 'PERMISSION_DENIED', failed: ['scopes', 'resources'] },
    ],
  },
  {
    tool: 'view_reports',
    passes: { roles: ['analyst'] },
    refusals: [
      { caller: { roles: ['developer'], scopes: ['read'] }, code: 'PERMISSION_DENIED', failed: ['roles'] },
    ],
  },
  {
    tool: 'deploy_production',
    passes: { roles: ['deployer'], scopes: ['write'], resources: ['production'] },
    refusals: [
      {
        caller: { roles: ['deployer'], scopes: ['read'], resources: ['production'] },
        code: 'INSUFFICIENT_SCOPE',
        failed: ['scopes'],
        scopes: ['write', 'read'],
      },
      {
        caller: { roles: ['developer'], scopes: ['write'], resources: ['production'] },
        code: 'PERMISSION_DENIED',
        failed: ['roles'],
      },
      // Scopes are missing too, but a role is also missing: more scopes alone would not help.
      {
        caller: { roles: ['developer'], scopes: ['read'], resources: ['production'] },
        code: 'PERMISSION_DENIED',
        failed: ['roles', 'scopes'],
      },
    ],
  },
  {
    tool: 'engineering_tools',
    passes: { groups: ['devops'] },
    refusals: [
      { caller: { groups: ['sales'], roles: ['admin'] }, code: 'PERMISSION_DENIED', failed: ['groups'] },
    ],
  },
  {
    tool: 'sensitive_operations',
    passes: {
      roles: ['superuser'],
      groups: ['security-team'],
      scopes: ['admin'],
      resources: ['production', 'sensitive-data'],
    },
    refusals: [
      {
        caller: {
          roles: ['admin'],
          groups: ['security-team'],
          scopes: ['write'],
          resources: ['production'],
        },
        code: 'PERMISSION_DENIED',
        failed: ['resources'],
      },
      {
        caller: {
          roles: ['admin'],
          groups: ['security-team'],
          scopes: ['read'],
          resources: ['production', 'sensitive-data'],
        },
        code: 'INSUFFICIENT_SCOPE',
        failed: ['scopes'],
        scopes: ['write', 'admin', 'read'],
      },
    ],
  },
  {
    tool: 'list_my_repos',
    passes: { scopes: ['read'] },
    refusals: [
      {
        caller: { scopes: ['profile'] },
        code: 'INSUFFICIENT_SCOPE',
        failed: ['scopes'],
        scopes: ['read', 'profile'],
      },
    ],
  },
];

describe('the sample tool set', () => {
  it('the table covers every sample tool', () => {
    expect(TABLE.map((row) => row.tool)).toEqual(SAMPLE_TOOL_NAMES);
  });

  it.each(TABLE)('$tool: the passing caller is allowed', ({ tool, passes }) => {
    const compiled = compileRequirement(sampleRequirement(tool), { name: tool });
    const user = principal(passes);
    expect(evaluate(user, compiled)).toBe(true);
    expect(() => authorize(user, compiled)).not.toThrow();
  });

  it('hello and calculator admit a caller with no claims at all', () => {
    for (const tool of ['hello', 'calculator']) {
      expect(evaluate(principal(), compileRequirement(sampleRequirement(tool)))).toBe(true);
    }
  });

  const refusals = TABLE.flatMap((row) => row.refusals.map((r) => ({ tool: row.tool, ...r })));
  it.each(refusals)('$tool: refuses $caller with $code', ({ tool, caller, code, failed, scopes }) => {
    const compiled = compileRequirement(sampleRequirement(tool), { name: tool });
    const user = principal(caller);
    expect(evaluate(user, compiled)).toBe(false);
    const error = refusal(user, sampleRequirement(tool), tool);
    expect(error.code).toBe(code);
    expect(error.details.failed).toEqual(failed);
    expect(error.details.scopes).toEqual(scopes);
    expect(error.message).toContain(`Tool '${tool}'`);
  });
});

describe('the landscape bugs stay fixed', () => {
  it('resources written as allOf need both production and sensitive-data', () => {
    const requirement = sampleRequirement('sensitive_operations');
    const base = { roles: ['admin'], groups: ['security-team'], scopes: ['write'] };
    const compiled = compileRequirement(requirement);
    expect(evaluate(principal({ ...base, resources: ['production'] }), compiled)).toBe(false);
    expect(evaluate(principal({ ...base, resources: ['sensitive-data'] }), compiled)).toBe(false);
    expect(evaluate(principal({ ...base, resources: ['production', 'sensitive-data'] }), compiled)).toBe(
      true,
    );
    expect(refusal(principal({ ...base, resources: ['production'] }), requirement).code).toBe(
      'PERMISSION_DENIED',
    );
  });

  it('resource:action permissions match, by explicit permission and by resource plus scope', () => {
    const requirement: Requirement = { permissions: ['production:write'] };
    const compiled = compileRequirement(requirement);
    expect(() => authorize(principal({ permissions: ['production:write'] }), compiled)).not.toThrow();
    expect(() =>
      authorize(principal({ resources: ['production'], scopes: ['write'] }), compiled),
    ).not.toThrow();
  });
});

describe('authorize: INSUFFICIENT_SCOPE versus PERMISSION_DENIED', () => {
  it('requireAll, scopes allOf: asks only for the missing ones', () => {
    const error = refusal(principal({ scopes: ['read'], resources: ['analytics'] }), {
      scopes: { allOf: ['read', 'export'] },
      resources: ['analytics'],
      requireAll: true,
    });
    expect(error.code).toBe('INSUFFICIENT_SCOPE');
    expect(error.details.scopes).toEqual(['export', 'read']);
  });

  it('requireAll, permissions: asks for the action scope of an unmet permission whose resource is held', () => {
    const requirement: Requirement = {
      roles: ['deployer'],
      permissions: ['production:deploy'],
      requireAll: true,
    };
    const error = refusal(
      principal({ roles: ['deployer'], resources: ['production'], scopes: ['read'] }),
      requirement,
    );
    expect(error.code).toBe('INSUFFICIENT_SCOPE');
    expect(error.details.scopes).toEqual(['deploy', 'read']);
  });

  it('requireAll, permissions whose resource is not held: PERMISSION_DENIED', () => {
    const requirement: Requirement = {
      roles: ['deployer'],
      permissions: ['production:deploy'],
      requireAll: true,
    };
    const error = refusal(principal({ roles: ['deployer'], scopes: ['deploy'] }), requirement);
    expect(error.code).toBe('PERMISSION_DENIED');
    expect(error.details.failed).toEqual(['permissions']);
    expect(error.details.scopes).toBeUndefined();
  });

  it('permissions allOf: every unmet permission needs its resource held', () => {
    const requirement: Requirement = { permissions: { allOf: ['a:write', 'b:write', 'c:read'] } };
    const partial = refusal(principal({ resources: ['a', 'b'], scopes: ['x'] }), requirement);
    expect(partial.code).toBe('PERMISSION_DENIED');
    const full = refusal(
      principal({ resources: ['a', 'b'], permissions: ['c:read'], scopes: ['x'] }),
      requirement,
    );
    expect(full.code).toBe('INSUFFICIENT_SCOPE');
    expect(full.details.scopes).toEqual(['write', 'x']);
  });

  it('permissions anyOf: offers the actions of every option whose resource is held', () => {
    const requirement: Requirement = { permissions: ['a:write', 'b:admin', 'c:read'] };
    const error = refusal(principal({ resources: ['a', 'c'] }), requirement);
    expect(error.code).toBe('INSUFFICIENT_SCOPE');
    expect(error.details.scopes).toEqual(['write', 'read']);
  });

  it('OR with a scopes category: that category is the route, even if nothing else is held', () => {
    const error = refusal(principal(), { roles: ['admin'], scopes: ['write'], requireAll: false });
    expect(error.code).toBe('INSUFFICIENT_SCOPE');
    expect(error.details.scopes).toEqual(['write']);
    expect(error.details.failed).toEqual(['roles', 'scopes']);
  });

  it('OR with both scopes and permissions: the scopes category is preferred', () => {
    const requirement: Requirement = {
      scopes: ['admin'],
      permissions: ['production:write'],
      requireAll: false,
    };
    const error = refusal(principal({ resources: ['production'] }), requirement);
    expect(error.code).toBe('INSUFFICIENT_SCOPE');
    expect(error.details.scopes).toEqual(['admin']);
  });

  it('OR with permissions only: the permission route when its resource is held, else PERMISSION_DENIED', () => {
    const requirement: Requirement = {
      roles: ['admin'],
      permissions: ['production:write'],
      requireAll: false,
    };
    const stepUp = refusal(principal({ resources: ['production'], scopes: ['read'] }), requirement);
    expect(stepUp.code).toBe('INSUFFICIENT_SCOPE');
    expect(stepUp.details.scopes).toEqual(['write', 'read']);
    expect(refusal(principal({ scopes: ['read'] }), requirement).code).toBe('PERMISSION_DENIED');
  });

  it('OR without scopes or permissions: PERMISSION_DENIED', () => {
    const error = refusal(principal({ scopes: ['read'] }), {
      roles: ['admin'],
      groups: ['ops'],
      requireAll: false,
    });
    expect(error.code).toBe('PERMISSION_DENIED');
    expect(error.details.failed).toEqual(['roles', 'groups']);
  });

  it('details.scopes: needed first, then held, deduplicated in a stable order', () => {
    const error = refusal(principal({ scopes: ['profile', 'read', 'profile'] }), {
      scopes: ['write', 'admin'],
    });
    expect(error.details.scopes).toEqual(['write', 'admin', 'profile', 'read']);
    expect(Object.isFrozen(error.details.scopes)).toBe(true);
  });

  it('the explanation agrees with the error', () => {
    const user = principal({ scopes: ['read'] });
    const explanation = explain(user, compileRequirement({ scopes: ['write'] }));
    expect(explanation).toMatchObject({ allowed: false, insufficientScope: true, neededScopes: ['write'] });
  });
});

describe('authorize: messages and details', () => {
  it('names the tool and the failing category', () => {
    const error = refusal(principal({ roles: ['developer'] }), { roles: ['admin'] }, 'admin_panel');
    expect(error.message).toBe("Tool 'admin_panel' requires roles any of [admin]");
    expect(error.status).toBe(403);
    expect(error.expose).toBe(true);
  });

  it('under AND lists only the failed categories, joined with and', () => {
    const error = refusal(
      principal({ roles: ['admin'] }),
      { roles: ['admin'], groups: ['security-team'], resources: { allOf: ['p', 's'] }, requireAll: true },
      'sensitive',
    );
    expect(error.message).toBe(
      "Tool 'sensitive' requires groups any of [security-team] and resources all of [p, s]",
    );
  });

  it('under OR lists every category, joined with or', () => {
    const error = refusal(principal(), { roles: ['admin'], groups: ['ops'], requireAll: false }, 'ops_tool');
    expect(error.message).toBe("Tool 'ops_tool' requires roles any of [admin] or groups any of [ops]");
  });

  it('INSUFFICIENT_SCOPE says which scopes to request', () => {
    const error = refusal(principal({ scopes: ['read'] }), { scopes: ['write'] }, 'create_resource');
    expect(error.message).toBe(
      "Tool 'create_resource' requires scopes any of [write]; request the scopes: write",
    );
  });

  it('target overrides the compiled name; without either the message says "This call"', () => {
    const compiled = compileRequirement({ roles: ['admin'] }, { name: 'compiled_name' });
    expect(() => authorize(principal(), compiled, { target: 'other_tool' })).toThrow(/^Tool 'other_tool'/);
    expect(refusal(principal(), { roles: ['admin'] }).message).toBe(
      'This call requires roles any of [admin]',
    );
  });

  it("never carries the caller's claims (beyond held scopes in a scope challenge)", () => {
    const user = principal({
      roles: ['secret-role'],
      groups: ['secret-group'],
      resources: ['secret-resource'],
      permissions: ['secret:perm'],
      scopes: ['read'],
    });
    const denied = refusal(user, { roles: ['admin'] }, 'admin_panel');
    const stepUp = refusal(user, { scopes: ['write'] }, 'create_resource');
    for (const error of [denied, stepUp]) {
      const text = `${error.message} ${JSON.stringify(error.details)}`;
      expect(text).not.toMatch(/secret|john@company\.com|user-1|acme-corp/);
    }
    expect(Object.keys(denied.details)).toEqual(['failed']);
    expect(Object.keys(stepUp.details).sort()).toEqual(['failed', 'scopes']);
  });

  it('returns nothing when allowed', () => {
    expect(
      authorize(principal({ roles: ['admin'] }), compileRequirement({ roles: ['admin'] })),
    ).toBeUndefined();
  });
});
