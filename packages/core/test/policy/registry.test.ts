import { describe, expect, it, vi } from 'vitest';
import {
  compileRequirement,
  createToolRegistry,
  evaluate,
  isCompiledRequirement,
} from '../../src/policy/index.js';
import type { Logger } from '../../src/types.js';
import { SAMPLE_TOOL_NAMES, sampleRequirement } from '../fixtures/sample-tools.js';
import { BRIEF_USER, principal } from './principal.js';

function spyLogger() {
  return { debug: vi.fn(), info: vi.fn(), warn: vi.fn<Logger['warn']>(), error: vi.fn() } satisfies Logger;
}

function sampleRegistry() {
  const registry = createToolRegistry<{ description: string }>({ logger: spyLogger() });
  for (const name of SAMPLE_TOOL_NAMES)
    registry.register(name, sampleRequirement(name), { description: name });
  return registry;
}

describe("the brief's worked example", () => {
  it('its user passes the three example tools', () => {
    for (const tool of ['calculator', 'admin_dashboard', 'view_analytics']) {
      expect(evaluate(BRIEF_USER, compileRequirement(sampleRequirement(tool))), tool).toBe(true);
    }
  });

  it('against the whole sample set, sees exactly the tools it may use', () => {
    const visible = sampleRegistry()
      .visibleTools(BRIEF_USER)
      .map((tool) => tool.name);
    expect(visible).toEqual([
      'hello',
      'calculator',
      'admin_panel',
      'admin_dashboard',
      'create_resource',
      'view_analytics',
      'view_reports',
      'engineering_tools',
      'list_my_repos',
    ]);
  });

  it('an analyst with read scope sees visibly different tools', () => {
    const analyst = principal({ roles: ['analyst'], scopes: ['read'], resources: ['analytics'] });
    expect(
      sampleRegistry()
        .visibleTools(analyst)
        .map((tool) => tool.name),
    ).toEqual(['hello', 'calculator', 'view_analytics', 'view_reports', 'list_my_repos']);
  });

  it('a caller with no claims sees only the open tools', () => {
    expect(
      sampleRegistry()
        .visibleTools(principal())
        .map((tool) => tool.name),
    ).toEqual(['hello', 'calculator']);
  });
});

describe('createToolRegistry', () => {
  it('registers, gets and lists tools in registration order', () => {
    const registry = sampleRegistry();
    expect(registry.size).toBe(SAMPLE_TOOL_NAMES.length);
    expect(registry.list().map((tool) => tool.name)).toEqual(SAMPLE_TOOL_NAMES);
    const tool = registry.get('deploy_production');
    expect(tool?.name).toBe('deploy_production');
    expect(tool?.meta).toEqual({ description: 'deploy_production' });
    expect(tool?.requirement.name).toBe('deploy_production');
    expect(isCompiledRequirement(tool?.requirement)).toBe(true);
    expect(registry.get('nope')).toBeUndefined();
  });

  it('returns frozen definitions and a frozen snapshot that later registrations do not change', () => {
    const registry = createToolRegistry<null>();
    const first = registry.register('a', undefined, null);
    expect(Object.isFrozen(first)).toBe(true);
    const before = registry.list();
    expect(Object.isFrozen(before)).toBe(true);
    expect(registry.list()).toBe(before);
    registry.register('b', undefined, null);
    expect(before.map((t) => t.name)).toEqual(['a']);
    expect(registry.list().map((t) => t.name)).toEqual(['a', 'b']);
  });

  it('treats an undefined requirement as any authenticated caller', () => {
    const registry = createToolRegistry();
    const tool = registry.register('open', undefined, undefined);
    expect(tool.requirement.categories).toEqual([]);
    expect(registry.visibleTools(principal()).map((t) => t.name)).toEqual(['open']);
  });

  it('refuses a duplicate name with a TypeError and keeps the first', () => {
    const registry = createToolRegistry();
    registry.register('admin_panel', { roles: ['admin'] }, 1);
    expect(() => registry.register('admin_panel', {}, 2)).toThrow(TypeError);
    expect(registry.get('admin_panel')?.meta).toBe(1);
    expect(registry.size).toBe(1);
  });

  it.each([
    ['empty', ''],
    ['too long', 'a'.repeat(129)],
    ['a space', 'my tool'],
    ['a slash', 'a/b'],
    ['a colon', 'a:b'],
    ['non-ASCII', 'outil_été'],
    ['not a string', 42],
  ])('refuses a name that is %s', (_label, name) => {
    const registry = createToolRegistry();
    expect(() => registry.register(name as string, {}, null)).toThrow(TypeError);
    expect(registry.size).toBe(0);
  });

  it('accepts the MCP name alphabet up to 128 characters', () => {
    const registry = createToolRegistry();
    for (const name of ['a', 'A-Z.a_z-0.9', 'x'.repeat(128), 'admin.tools.list']) {
      expect(() => registry.register(name, {}, null)).not.toThrow();
    }
  });

  it('refuses an invalid requirement without registering the tool', () => {
    const registry = createToolRegistry();
    expect(() => registry.register('bad', { roles: [] }, null)).toThrow(/bad/);
    expect(registry.get('bad')).toBeUndefined();
    expect(registry.size).toBe(0);
  });

  it('passes its logger and the tool name to the OR warning', () => {
    const logger = spyLogger();
    const registry = createToolRegistry({ logger });
    registry.register('registry_or_tool', { roles: ['admin'], groups: ['ops'] }, null);
    expect(logger.warn).toHaveBeenCalledTimes(1);
    expect(logger.warn.mock.calls[0]?.[0]).toContain("Tool 'registry_or_tool'");
  });

  it('visibleTools returns a new array each time', () => {
    const registry = sampleRegistry();
    const a = registry.visibleTools(BRIEF_USER);
    a.length = 0;
    expect(registry.visibleTools(BRIEF_USER)).toHaveLength(9);
  });
});

describe('visibleTools at scale', () => {
  it('filters 1,000 tools correctly', () => {
    const registry = createToolRegistry<number>({ logger: spyLogger() });
    for (let i = 0; i < 1000; i++) {
      const requirement =
        i % 4 === 0
          ? {}
          : i % 4 === 1
            ? { roles: [`role-${i % 10}`] }
            : i % 4 === 2
              ? { scopes: ['read'], resources: [`res-${i % 7}`], requireAll: true }
              : { permissions: [`res-${i % 7}:write`] };
      registry.register(`tool_${i}`, requirement, i);
    }
    const user = principal({ roles: ['role-1', 'role-5'], scopes: ['read'], resources: ['res-3'] });
    const expected = registry
      .list()
      .filter((tool) => {
        const i = tool.meta;
        if (i % 4 === 0) return true;
        if (i % 4 === 1) return i % 10 === 1 || i % 10 === 5;
        if (i % 4 === 2) return i % 7 === 3;
        return false;
      })
      .map((tool) => tool.name);
    const visible = registry.visibleTools(user).map((tool) => tool.name);
    expect(visible).toEqual(expected);
    expect(visible.length).toBeGreaterThan(250);
    expect(registry.visibleTools(principal()).length).toBe(250);
  });
});
