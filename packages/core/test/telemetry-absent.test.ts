/**
 * Core without `@opentelemetry/api` installed: the one `require` of it fails as Node fails for a missing
 * package (MODULE_NOT_FOUND), and everything still works, with telemetry off.
 */
import { Readable } from 'node:stream';
import { type DevIdp, startDevIdp } from '@authsec/dev-idp';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  createAuthSec,
  createRequestPipeline,
  createResourceServer,
  DECISIONS_EXTRA_KEY,
  type Logger,
  silentLogger,
} from '../src/index.js';

const requested: string[] = [];

vi.mock('node:module', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:module')>();
  const createRequire = (url: string | URL) => {
    const real = actual.createRequire(url);
    return Object.assign((id: string) => {
      requested.push(id);
      if (id === '@opentelemetry/api') {
        throw Object.assign(new Error(`Cannot find module '${id}'`), { code: 'MODULE_NOT_FOUND' });
      }
      return real(id);
    }, real);
  };
  const defaults = (actual as unknown as { default: object }).default;
  return { ...actual, default: { ...defaults, createRequire }, createRequire };
});

const RESOURCE = 'http://127.0.0.1:3000/mcp';
let idp: DevIdp;
beforeAll(async () => {
  idp = await startDevIdp({ logger: silentLogger });
});
afterAll(async () => {
  await idp?.close();
});

describe('without @opentelemetry/api', () => {
  it('authenticates and decides through the pipeline, with no telemetry and no error', async () => {
    const authsec = createAuthSec({ issuers: [idp.issuer], audience: RESOURCE, logger: silentLogger });
    authsec.tools.register('view_analytics', { scopes: ['read'] }, undefined);
    authsec.tools.register('admin_panel', { roles: ['admin'] }, undefined);
    const pipeline = createRequestPipeline({
      resourceServer: createResourceServer({
        authsec,
        resourceUrl: RESOURCE,
        authorizationServers: [idp.issuer],
      }),
    });
    const token = await idp.issueToken('analyst@acme-corp.example', { audience: RESOURCE });
    const body = JSON.stringify([
      { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'view_analytics', arguments: {} } },
      { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'admin_panel', arguments: {} } },
    ]);
    const result = await pipeline.handle({
      method: 'POST',
      headers: {
        host: '127.0.0.1:3000',
        authorization: `Bearer ${token}`,
        traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
      },
      body: { stream: Readable.from([Buffer.from(body)]) },
    });
    expect(requested).toContain('@opentelemetry/api');
    expect(result.kind).toBe('forward');
    if (result.kind !== 'forward') return;
    const decisions = result.authInfo!.extra[DECISIONS_EXTRA_KEY];
    expect(decisions.get(1)?.error).toBeUndefined();
    expect(decisions.get(2)?.error?.code).toBe('PERMISSION_DENIED');
    await expect(authsec.authenticate('x.y.z')).rejects.toMatchObject({ code: 'TOKEN_INVALID' });
    await authsec.close();
  });

  it('warns once when a tracer is given but the API cannot be loaded, and records nothing', async () => {
    const warnings: string[] = [];
    const logger: Logger = { ...silentLogger, warn: (message) => void warnings.push(message) };
    const exporter = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
    const authsec = createAuthSec({
      issuers: [idp.issuer],
      audience: RESOURCE,
      logger,
      telemetry: { tracer: provider.getTracer('test') },
    });
    expect(warnings.filter((w) => w.includes('@opentelemetry/api cannot be loaded'))).toHaveLength(1);
    const principal = await authsec.authenticate(
      await idp.issueToken('analyst@acme-corp.example', { audience: RESOURCE }),
    );
    authsec.authorize(principal, { scopes: ['read'] }, 'view_analytics');
    expect(exporter.getFinishedSpans()).toHaveLength(0);
    await Promise.all([authsec.close(), provider.shutdown()]);
  });
});
