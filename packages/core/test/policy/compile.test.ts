import { describe, expect, it, vi } from 'vitest';
import {
  type CompiledRequirement,
  compileRequirement,
  evaluate,
  explain,
  isCompiledRequirement,
  requiredScopes,
} from '../../src/policy/index.js';
import type { Logger, Requirement } from '../../src/types.js';
import { SAMPLE_TOOL_NAMES, sampleRequirement } from '../fixtures/sample-tools.js';
import { principal } from './principal.js';

function spyLogger() {
  return { debug: vi.fn(), info: vi.fn(), warn: vi.fn<Logger['warn']>(), error: vi.fn() } satisfies Logger;
}

// Tests feed deliberately ill-typed input, as a JavaScript caller could.
function compileUnknown(requirement: unknown): CompiledRequirement {
  return compileRequirement(requirement as Requirement, { logger: spyLogger() });
}

describe('compileRequirement: validation', () => {
  it.each([
    ['null', null],
    ['an array', [['admin']]],
    ['a string', 'admin'],
    ['an unknown key', { role: ['admin'] }],
    ['a misspelt requireAll', { roles: ['admin'], require_all: true }],
    ['a category given as a string', { roles: 'admin' }],
    ['an empty list', { roles: [] }],
    ['an empty allOf', { resources: { allOf: [] } }],
    ['an empty anyOf', { groups: { anyOf: [] } }],
    ['both allOf and anyOf', { roles: { allOf: ['a'], anyOf: ['b'] } }],
    ['an unknown category form', { roles: { oneOf: ['a'] } }],
    ['a non-string value', { roles: ['admin', 42] }],
    ['an empty string value', { groups: [''] }],
    ['a padded value', { roles: [' admin'] }],
    ['a scope with a space', { scopes: ['read write'] }],
    ['a scope with a quote', { scopes: ['re"ad'] }],
    ['a permission without a colon', { permissions: ['production'] }],
    ['a permission without a resource', { permissions: [':write'] }],
    ['a permission without an action', { permissions: ['production:'] }],
    ['a permission whose action is not a scope token', { permissions: ['production:wr\\ite'] }],
    ['a non-boolean requireAll', { roles: ['admin'], requireAll: 'true' }],
    ['requireAll as a number', { roles: ['admin'], requireAll: 1 }],
  ])('refuses %s with a TypeError', (_label, requirement) => {
    expect(() => compileUnknown(requirement)).toThrow(TypeError);
  });

  it('names the tool in the TypeError', () => {
    expect(() => compileRequirement({ roles: [] }, { name: 'admin_panel' })).toThrow(/admin_panel/);
  });

  it('treats a key whose value is undefined as absent', () => {
    const compiled = compileRequirement({ roles: ['admin'], groups: undefined });
    expect(compiled.categories.map((c) => c.category)).toEqual(['roles']);
    expect(compiled.source).toEqual({ roles: ['admin'] });
  });

  it('accepts every sample tool', () => {
    for (const name of SAMPLE_TOOL_NAMES) {
      expect(() => compileRequirement(sampleRequirement(name), { name, logger: spyLogger() })).not.toThrow();
    }
  });
});

describe('compileRequirement: result', () => {
  it('is deeply frozen, normalised and detached from the input', () => {
    const roles = ['admin', 'manager', 'admin'];
    const compiled = compileRequirement({ roles, resources: { allOf: ['a', 'b'] }, requireAll: true });
    roles.push('intruder');
    expect(Object.isFrozen(compiled)).toBe(true);
    expect(Object.isFrozen(compiled.source)).toBe(true);
    expect(Object.isFrozen(compiled.categories)).toBe(true);
    expect(Object.isFrozen(compiled.categories[0]?.values)).toBe(true);
    expect(compiled.source).toEqual({
      roles: ['admin', 'manager'],
      resources: { allOf: ['a', 'b'] },
      requireAll: true,
    });
    expect(compiled.requireAll).toBe(true);
    expect(compiled.categories).toEqual([
      expect.objectContaining({ category: 'roles', mode: 'anyOf', values: ['admin', 'manager'] }),
      expect.objectContaining({ category: 'resources', mode: 'allOf', values: ['a', 'b'] }),
    ]);
    expect(evaluate(principal({ roles: ['intruder'] }), compiled)).toBe(false);
  });

  it('keeps categories in the fixed order whatever order they were written in', () => {
    const compiled = compileRequirement({
      permissions: ['a:b'],
      scopes: ['x'],
      roles: ['r'],
      requireAll: true,
    });
    expect(compiled.categories.map((c) => c.category)).toEqual(['roles', 'scopes', 'permissions']);
  });

  it('keeps an explicit { anyOf } form in the source', () => {
    const compiled = compileRequirement({ groups: { anyOf: ['engineering', 'devops'] } });
    expect(compiled.source).toEqual({ groups: { anyOf: ['engineering', 'devops'] } });
    expect(compiled.categories[0]?.mode).toBe('anyOf');
  });

  it('records the name', () => {
    expect(compileRequirement({}, { name: 'hello' }).name).toBe('hello');
    expect(compileRequirement({}).name).toBeUndefined();
  });

  it('is recognised by isCompiledRequirement, and a look-alike is refused everywhere', () => {
    const compiled = compileRequirement({ roles: ['admin'] });
    expect(isCompiledRequirement(compiled)).toBe(true);
    expect(isCompiledRequirement({ roles: ['admin'] })).toBe(false);
    expect(isCompiledRequirement(null)).toBe(false);
    const forged = Object.freeze({ ...compiled, categories: [] }) as CompiledRequirement;
    const user = principal();
    expect(() => evaluate(user, forged)).toThrow(TypeError);
    expect(() => explain(user, forged)).toThrow(TypeError);
    expect(() => requiredScopes(forged)).toThrow(TypeError);
    expect(() => evaluate(user, { roles: ['admin'] } as unknown as CompiledRequirement)).toThrow(TypeError);
  });
});

describe('compileRequirement: the OR warning', () => {
  it('warns once per process for several categories without requireAll, naming the tool', () => {
    const logger = spyLogger();
    const requirement = { roles: ['admin'], scopes: ['write'] };
    compileRequirement(requirement, { name: 'or_warning_tool', logger });
    compileRequirement(requirement, { name: 'or_warning_tool', logger });
    compileRequirement({ ...requirement }, { name: 'or_warning_tool', logger: spyLogger() });
    expect(logger.warn).toHaveBeenCalledTimes(1);
    const [message, fields] = logger.warn.mock.calls[0] as [string, Record<string, unknown>];
    expect(message).toContain("Tool 'or_warning_tool'");
    expect(message).toContain('requireAll');
    expect(fields).toEqual({ tool: 'or_warning_tool', categories: ['roles', 'scopes'] });
  });

  it('warns again for another tool or another requirement', () => {
    const logger = spyLogger();
    compileRequirement({ roles: ['a'], groups: ['b'] }, { name: 'or_warning_a', logger });
    compileRequirement({ roles: ['a'], groups: ['b'] }, { name: 'or_warning_b', logger });
    compileRequirement({ roles: ['a'], groups: ['c'] }, { name: 'or_warning_b', logger });
    expect(logger.warn).toHaveBeenCalledTimes(3);
  });

  it('does not warn for one category, nor when requireAll is explicit (true or false)', () => {
    const logger = spyLogger();
    compileRequirement({ roles: ['admin', 'manager'] }, { name: 'no_warning_1', logger });
    compileRequirement({ roles: ['a'], groups: ['b'], requireAll: false }, { name: 'no_warning_2', logger });
    compileRequirement({ roles: ['a'], groups: ['b'], requireAll: true }, { name: 'no_warning_3', logger });
    compileRequirement({}, { name: 'no_warning_4', logger });
    expect(logger.warn).not.toHaveBeenCalled();
  });

  it('does not warn for the sample tool set (every multi-category tool sets requireAll)', () => {
    const logger = spyLogger();
    for (const name of SAMPLE_TOOL_NAMES) compileRequirement(sampleRequirement(name), { name, logger });
    expect(logger.warn).not.toHaveBeenCalled();
  });

  it('falls back to process.emitWarning without a logger', () => {
    const emit = vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    try {
      compileRequirement({ roles: ['a'], scopes: ['b'] }, { name: 'or_warning_no_logger' });
      expect(emit).toHaveBeenCalledTimes(1);
      expect(String(emit.mock.calls[0]?.[0])).toContain("Tool 'or_warning_no_logger'");
    } finally {
      emit.mockRestore();
    }
  });
});

describe('requiredScopes', () => {
  it.each<[string, Requirement, string[]]>([
    ['no categories', {}, []],
    ['roles only', { roles: ['admin'] }, []],
    ['a scopes list (every option)', { scopes: ['write', 'admin'] }, ['write', 'admin']],
    ['a scopes allOf', { scopes: { allOf: ['read', 'write'] } }, ['read', 'write']],
    [
      'permissions only: their actions',
      { permissions: ['production:write', 'reports:read'] },
      ['write', 'read'],
    ],
    ['permissions actions deduplicated', { permissions: ['a:read', 'b:read'] }, ['read']],
    [
      'AND: scopes then permission actions',
      { scopes: ['read'], permissions: ['production:write'], requireAll: true },
      ['read', 'write'],
    ],
    [
      'OR: the scopes category alone (permissions are an alternative)',
      { scopes: ['read'], permissions: ['production:write'], requireAll: false },
      ['read'],
    ],
    ['a URN resource keeps its colons out of the action', { permissions: ['urn:acme:db:write'] }, ['write']],
  ])('%s', (_label, requirement, expected) => {
    expect(requiredScopes(compileRequirement(requirement, { logger: spyLogger() }))).toEqual(expected);
  });

  it('matches the sample tool set', () => {
    const scopes = Object.fromEntries(
      SAMPLE_TOOL_NAMES.map((name) => [name, requiredScopes(compileRequirement(sampleRequirement(name)))]),
    );
    expect(scopes).toEqual({
      hello: [],
      calculator: [],
      admin_panel: [],
      admin_dashboard: [],
      create_resource: ['write'],
      view_analytics: ['read'],
      view_reports: [],
      deploy_production: ['write'],
      engineering_tools: [],
      sensitive_operations: ['write', 'admin'],
      list_my_repos: ['read'],
    });
  });
});
