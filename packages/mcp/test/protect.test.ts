import { isAuthSecError } from '@authsec/core';
import { describe, expect, expectTypeOf, it } from 'vitest';
import * as z from 'zod';
import { protect, protectedByAuthSec, publicTool } from '../src/protect.js';
import type { ToolContext, UserInfo } from '../src/types.js';
import { createTestEngine } from './helpers/app.js';
import { detachedCall } from './helpers/call-channel.js';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return isAuthSecError(error) ? error.code : `not an AuthSecError: ${String(error)}`;
  }
  return undefined;
}

describe('protect()', () => {
  it('builds a frozen protected tool', () => {
    const tool = protect('admin_panel', { roles: ['admin'] }, () => 'ok', { description: 'Admin' });
    expect(tool).toMatchObject({
      name: 'admin_panel',
      description: 'Admin',
      requirement: { roles: ['admin'] },
      public: false,
      inputSchema: { type: 'object', additionalProperties: true },
      annotations: undefined,
    });
    expect(Object.isFrozen(tool)).toBe(true);
  });

  it('accepts no requirement (any authenticated caller), with or without the argument', () => {
    expect(protect('a', () => 'ok').requirement).toEqual({});
    expect(protect('b', undefined, () => 'ok').requirement).toEqual({});
  });

  it('is also exported as protectedByAuthSec', () => {
    expect(protectedByAuthSec).toBe(protect);
  });

  it('throws TypeError for misuse', () => {
    expect(() => protect('bad name!', {}, () => 'x')).toThrow(TypeError);
    expect(() => protect('', {}, () => 'x')).toThrow(TypeError);
    expect(() => protect('x'.repeat(129), {}, () => 'x')).toThrow(TypeError);
    expect(() => protect('t', {}, undefined as unknown as () => string)).toThrow(TypeError);
    expect(() => protect('t', { roles: 'admin' } as never, () => 'x')).toThrow(TypeError);
    expect(() => protect('t', { role: ['admin'] } as never, () => 'x')).toThrow(TypeError);
    expect(() => protect('t', 'admin' as never, () => 'x')).toThrow(TypeError);
  });

  it('refuses input schemas that are not objects, or that declare _user_info', () => {
    expect(() => protect('t', {}, () => 'x', { inputSchema: z.string() as never })).toThrow(
      /must describe an object/,
    );
    expect(() => protect('t', {}, () => 'x', { inputSchema: { type: 'array' } as never })).toThrow(TypeError);
    expect(() =>
      protect('t', {}, () => 'x', { inputSchema: z.object({ _user_info: z.string().optional() }) }),
    ).toThrow(/reserved/);
    expect(() =>
      protect('t', {}, () => 'x', {
        inputSchema: { type: 'object', properties: { _user_info: { type: 'object' } } },
      }),
    ).toThrow(/reserved/);
    expect(() => protect('t', {}, () => 'x', { inputSchema: z.object({ d: z.date() }) })).toThrow(
      /cannot be expressed as JSON Schema/,
    );
  });

  it('parses with zod (output values) and names the fields of BAD_REQUEST', () => {
    const tool = protect('t', {}, () => 'x', {
      inputSchema: z.object({ n: z.coerce.number().int(), tags: z.array(z.string()).default([]) }),
    });
    expect(tool.parse({ n: '3' })).toEqual({ n: 3, tags: [] });
    expect(codeOf(() => tool.parse({ n: 'x' }))).toBe('BAD_REQUEST');
    try {
      tool.parse({ n: 1, tags: [1] });
    } catch (error) {
      expect(isAuthSecError(error) && error.details.fields).toEqual(['tags.0']);
      expect((error as Error).message).toMatch(/^Invalid arguments for tool 't': tags\.0: /);
    }
  });

  it('validates JSON Schema with nested fields and several errors', () => {
    const tool = protect('t', {}, () => 'x', {
      inputSchema: {
        type: 'object',
        properties: {
          repo: { type: 'object', properties: { owner: { type: 'string' } }, required: ['owner'] },
          limit: { type: 'integer', minimum: 1 },
        },
        required: ['repo'],
        additionalProperties: false,
      },
    });
    expect(tool.parse({ repo: { owner: 'me' } })).toEqual({ repo: { owner: 'me' } });
    try {
      tool.parse({ repo: {}, limit: 0 });
      expect.unreachable();
    } catch (error) {
      expect(isAuthSecError(error) && error.code).toBe('BAD_REQUEST');
      expect(isAuthSecError(error) && error.details.fields).toEqual(['repo.owner', 'limit']);
      expect((error as Error).message).toBe(
        "Invalid arguments for tool 't': repo.owner: required; limit: must be >= 1",
      );
    }
    expect(codeOf(() => tool.parse({ repo: { owner: 'me' }, extra: 1 }))).toBe('BAD_REQUEST');
  });

  it('runs the handler with _user_info from the context and normalises the result', async () => {
    const engine = createTestEngine();
    const principal = await engine.principal({ sub: 'u1', tenant_id: 'acme-corp', roles: ['admin'] });
    const user: UserInfo = Object.freeze({
      email: undefined,
      sub: 'u1',
      tenant_id: 'acme-corp',
      roles: ['admin'],
      groups: [],
      scopes: [],
      resources: [],
    });
    const tool = protect('t', {}, (args) => `${args._user_info.sub}:${String(args.x)}`);
    const context = {
      user,
      principal,
      tenant: 'acme-corp',
      sessionId: undefined,
      services: {} as ToolContext['services'],
      ...detachedCall(),
    };
    await expect(tool.run({ x: 1, _user_info: { sub: 'forged' } }, context)).resolves.toEqual({
      content: [{ type: 'text', text: 'u1:1' }],
    });
    await expect(
      tool.run({}, { ...context, user: undefined, principal: undefined, connectionId: 'c' } as never),
    ).rejects.toMatchObject({ code: 'INTERNAL' });
    await engine.authsec.close();
  });

  it('infers handler argument types from a zod schema', () => {
    protect(
      'typed',
      { scopes: ['write'] },
      (args) => {
        expectTypeOf(args.name).toEqualTypeOf<string>();
        expectTypeOf(args.count).toEqualTypeOf<number | undefined>();
        expectTypeOf(args._user_info).toEqualTypeOf<UserInfo>();
        return args.name;
      },
      { inputSchema: z.object({ name: z.string(), count: z.number().optional() }) },
    );
    publicTool(
      'typed_public',
      (args, context) => {
        expectTypeOf(args.q).toEqualTypeOf<string>();
        expectTypeOf(context.user).toEqualTypeOf<UserInfo | undefined>();
        return args.q;
      },
      { inputSchema: z.object({ q: z.string() }) },
    );
  });
});

describe('publicTool()', () => {
  it('builds a public tool without a requirement', () => {
    const tool = publicTool('info', () => 'x', { annotations: { title: 'Info', readOnlyHint: true } });
    expect(tool).toMatchObject({
      name: 'info',
      public: true,
      requirement: undefined,
      annotations: { title: 'Info', readOnlyHint: true },
    });
  });

  it('throws TypeError for misuse', () => {
    expect(() => publicTool('no spaces allowed', () => 'x')).toThrow(TypeError);
    expect(() => publicTool('x', 'nope' as never)).toThrow(TypeError);
  });
});
