import { hash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  type AuthSec,
  createAuthSec,
  digestArguments,
  isAuthSecError,
  MemoryAuditSink,
} from '../src/index.js';
import { ecKey, memoryLogger } from './helpers/tokens-support.js';
import { principal } from './policy/principal.js';

const DEPTH = 5000;
const HEX64 = /^[0-9a-f]{64}$/;
const key = ecKey('depth-1');

// What a request body of ~10 KB parses into: 5,000 nested arrays around one value.
function deepArrays(depth: number, leaf = '1'): unknown {
  return JSON.parse(`${'['.repeat(depth)}${leaf}${']'.repeat(depth)}`);
}

function deepObjects(depth: number): Record<string, unknown> {
  const root: Record<string, unknown> = {};
  let node = root;
  for (let i = 0; i < depth; i++) {
    const next: Record<string, unknown> = {};
    node.a = next;
    node = next;
  }
  node.leaf = true;
  return root;
}

// The recursive form digests were computed with until now: for every value it could handle, the digest must
// not change (digests already stored in audit logs stay comparable).
function previousCanonical(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(previousCanonical).join(',')}]`;
  const entries = Object.keys(value)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${previousCanonical((value as Record<string, unknown>)[k])}`);
  return `{${entries.join(',')}}`;
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return undefined;
}

function engineWith(sink: MemoryAuditSink, logger = memoryLogger()): AuthSec {
  const engine = createAuthSec({
    issuers: [{ issuer: 'https://idp.test', keys: [key.publicJwk] }],
    audience: 'https://mcp.test/mcp',
    logger,
    audit: { sinks: [sink] },
  });
  engine.tools.register('hello', {}, {});
  engine.tools.register('deploy', { scopes: ['write'] }, {});
  engine.tools.register('admin_panel', { roles: ['admin'] }, {});
  return engine;
}

describe('digestArguments at any depth', () => {
  it('digests 5,000 nested arrays and objects without throwing, deterministically', () => {
    const arrays = digestArguments(deepArrays(DEPTH));
    expect(arrays).toMatch(HEX64);
    expect(digestArguments(deepArrays(DEPTH))).toBe(arrays);
    expect(digestArguments(deepArrays(DEPTH - 1))).not.toBe(arrays);
    expect(digestArguments(deepArrays(DEPTH, '2'))).not.toBe(arrays);
    expect(arrays).toBe(hash('sha256', `${'['.repeat(DEPTH)}1${']'.repeat(DEPTH)}`, 'hex'));
    expect(digestArguments(deepObjects(DEPTH))).toMatch(HEX64);
    expect(digestArguments({ x: deepObjects(DEPTH) })).not.toBe(digestArguments(deepObjects(DEPTH)));
  });

  it('digests 200,000 levels (what a 400 KB body can hold)', () => {
    expect(digestArguments(deepArrays(200_000))).toMatch(HEX64);
  });

  it('gives the same digest as before for ordinary values', () => {
    // biome-ignore lint/suspicious/noSparseArray: holes are part of the corpus.
    const sparse = [1, , 3];
    const corpus: unknown[] = [
      { a: 1, b: [1, 2, { c: null, d: 'x' }] },
      { b: { d: 3, c: 2 }, a: 1 },
      [],
      [[], {}, [{}]],
      'plain',
      'Ünïcödé \u2028 "quoted" \\ \n',
      42,
      -0,
      1.5e300,
      Number.NaN,
      true,
      null,
      { a: undefined, b: [undefined, null] },
      sparse,
      { 'needs "escaping"': { '\u0000': 1, '': 2 } },
      { date: new Date(0), nested: { deeper: { deepest: [1, 'two', { three: 3 }] } } },
      deepObjects(50),
      deepArrays(100),
      // Deeper than the recursive fast path: the iterative form must write exactly the same text.
      deepArrays(100, '{"b":[1,null],"a":{"z":"\\u2028","":-0.5e-7}}'),
      { outer: deepObjects(80), list: [sparse, { a: undefined }, deepArrays(70, '"leaf"')] },
    ];
    for (const value of corpus) {
      expect(digestArguments(value)).toBe(hash('sha256', previousCanonical(value), 'hex'));
    }
  });

  it('never throws for cyclic objects, and digests a shared (acyclic) value like a copy', () => {
    const cyclic: Record<string, unknown> = { x: 1 };
    cyclic.self = cyclic;
    const loop: unknown[] = [1];
    loop.push(loop);
    const indirect: Record<string, unknown> = { a: { b: {} } };
    ((indirect.a as Record<string, unknown>).b as Record<string, unknown>).back = indirect;
    for (const value of [cyclic, loop, indirect, { list: [cyclic, loop] }]) {
      expect(digestArguments(value)).toMatch(HEX64);
      expect(digestArguments(value)).toBe(digestArguments(value));
    }
    expect(digestArguments(cyclic)).not.toBe(digestArguments({ x: 1, self: {} }));
    expect(digestArguments(cyclic)).not.toBe(digestArguments({ x: 1 }));
    const shared = { k: 1 };
    expect(digestArguments({ a: shared, b: shared })).toBe(digestArguments({ a: { k: 1 }, b: { k: 1 } }));
    expect(digestArguments([shared, [shared]])).toBe(digestArguments([{ k: 1 }, [{ k: 1 }]]));
  });

  it('never throws for values JSON cannot hold', () => {
    for (const value of [10n, { big: 2n ** 70n }, Symbol('s'), () => 1, { f: () => 1 }, undefined]) {
      expect(digestArguments(value)).toMatch(HEX64);
    }
    expect(digestArguments({ big: 1n })).not.toBe(digestArguments({ big: 1 }));
    expect(digestArguments({ big: 1n })).not.toBe(digestArguments({ big: '1n' }));
  });
});

describe('audit emission never throws into a decision', () => {
  it('a denial with 5,000-level arguments throws its own code and is audited with a digest', () => {
    const sink = new MemoryAuditSink();
    const engine = engineWith(sink);
    const args = deepArrays(DEPTH);
    const error = thrown(() => engine.authorizeTool(principal(), { tool: 'deploy', arguments: args }));
    expect(isAuthSecError(error) && error.code).toBe('INSUFFICIENT_SCOPE');
    expect(sink.events).toHaveLength(1);
    expect(sink.events[0]).toMatchObject({
      action: 'tool.call',
      decision: 'deny',
      target: 'deploy',
      reason: 'INSUFFICIENT_SCOPE',
      argumentsDigest: digestArguments(args),
    });
    expect(sink.events[0]!.argumentsDigest).toMatch(HEX64);

    const denied = thrown(() => engine.authorizeTool(principal(), { tool: 'admin_panel', arguments: args }));
    expect(isAuthSecError(denied) && denied.code).toBe('PERMISSION_DENIED');
    const unknown = thrown(() => engine.authorizeTool(principal(), { tool: 'nope', arguments: args }));
    expect(isAuthSecError(unknown) && unknown.code).toBe('NOT_FOUND');
    expect(sink.events.map((e) => [e.decision, e.reason])).toEqual([
      ['deny', 'INSUFFICIENT_SCOPE'],
      ['deny', 'PERMISSION_DENIED'],
      ['deny', 'NOT_FOUND'],
    ]);
    expect(sink.events.every((e) => HEX64.test(e.argumentsDigest ?? ''))).toBe(true);
  });

  it('an allowed call with 5,000-level arguments is allowed and audited with a digest', () => {
    const sink = new MemoryAuditSink();
    const engine = engineWith(sink);
    const args = { payload: deepObjects(DEPTH) };
    expect(
      engine.authorizeTool(principal({ scopes: ['write'] }), { tool: 'deploy', arguments: args }).name,
    ).toBe('deploy');
    expect(sink.events).toEqual([
      expect.objectContaining({
        decision: 'allow',
        target: 'deploy',
        argumentsDigest: digestArguments(args),
      }),
    ]);
  });

  it('cyclic arguments from an in-process caller are digested, allowed or denied alike', () => {
    const sink = new MemoryAuditSink();
    const engine = engineWith(sink);
    const args: Record<string, unknown> = { n: 1 };
    args.self = args;
    expect(engine.authorizeTool(principal(), { tool: 'hello', arguments: args }).name).toBe('hello');
    const error = thrown(() => engine.authorizeTool(principal(), { tool: 'deploy', arguments: args }));
    expect(isAuthSecError(error) && error.code).toBe('INSUFFICIENT_SCOPE');
    expect(sink.events.map((e) => e.decision)).toEqual(['allow', 'deny']);
    expect(sink.events.every((e) => HEX64.test(e.argumentsDigest ?? ''))).toBe(true);
  });

  it('arguments that throw when read still leave the decision alone and an audit row without a digest', () => {
    const sink = new MemoryAuditSink();
    const logger = memoryLogger();
    const engine = engineWith(sink, logger);
    const hostile = {
      get boom(): never {
        throw new Error('getter exploded');
      },
    };
    const revoked = Proxy.revocable({}, {});
    revoked.revoke();
    for (const args of [hostile, revoked.proxy]) {
      expect(engine.authorizeTool(principal(), { tool: 'hello', arguments: args }).name).toBe('hello');
      const error = thrown(() => engine.authorizeTool(principal(), { tool: 'deploy', arguments: args }));
      expect(isAuthSecError(error) && error.code).toBe('INSUFFICIENT_SCOPE');
    }
    expect(sink.events.map((e) => [e.decision, e.argumentsDigest])).toEqual([
      ['allow', undefined],
      ['deny', undefined],
      ['allow', undefined],
      ['deny', undefined],
    ]);
    expect(logger.messages('error').length).toBeGreaterThanOrEqual(4);
  });

  it('engine.audit() itself never throws, whatever it is given', () => {
    const sink = new MemoryAuditSink();
    const engine = engineWith(sink);
    const hostile = {
      get boom(): never {
        throw new Error('getter exploded');
      },
    };
    expect(() =>
      engine.audit({ action: 'tool.call', decision: 'allow', target: 'x', arguments: deepArrays(DEPTH) }),
    ).not.toThrow();
    expect(() => engine.audit({ action: 'tool.call', decision: 'deny', arguments: hostile })).not.toThrow();
    expect(sink.events.map((e) => e.decision)).toEqual(['allow', 'deny']);
  });
});
