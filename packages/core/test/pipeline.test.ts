import { Readable } from 'node:stream';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type AuthSecOptions,
  createAuthSec,
  createRequestPipeline,
  createResourceServer,
  DECISIONS_EXTRA_KEY,
  isLoopbackHost,
  MemoryAuditSink,
  type PipelineRequest,
  type PipelineResult,
  principalKey,
  type RequestPipelineOptions,
  silentLogger,
} from '../src/index.js';
import { SAMPLE_TOOLS } from './fixtures/sample-tools.js';
import { createLocalIssuer, type LocalIssuer } from './helpers/local-issuer.js';

const ISSUER = 'https://idp.test';
const RESOURCE = 'https://mcp.test/mcp';
const LOOPBACK_RESOURCE = 'http://127.0.0.1:3000/mcp';
const METADATA_URL = 'https://mcp.test/.well-known/oauth-protected-resource/mcp';
let idp: LocalIssuer;
let publicJwk: LocalIssuer['publicJwk'];

beforeAll(async () => {
  idp = await createLocalIssuer(ISSUER);
  publicJwk = idp.publicJwk;
});

const token = (claims: Record<string, unknown>, audience = RESOURCE, issuer = ISSUER) =>
  idp.token(claims, audience, issuer);

const JOHN = {
  sub: 'john',
  tenant_id: 'acme-corp',
  roles: ['admin'],
  scope: 'read write',
  resources: ['analytics'],
};
const ALICE = {
  sub: 'alice',
  tenant_id: 'acme-corp',
  roles: ['analyst'],
  scope: 'read',
  resources: ['analytics'],
};

function setup(
  extra: Partial<Omit<RequestPipelineOptions, 'resourceServer'>> = {},
  resourceUrl = RESOURCE,
  engine: Partial<AuthSecOptions> = {},
) {
  const sink = new MemoryAuditSink();
  const authsec = createAuthSec({
    issuers: [{ issuer: ISSUER, keys: [publicJwk] }],
    audience: resourceUrl,
    logger: silentLogger,
    audit: { sinks: [sink] },
    ...engine,
  });
  for (const [name, requirement] of Object.entries(SAMPLE_TOOLS))
    authsec.tools.register(name, requirement, name);
  const resourceServer = createResourceServer({ authsec, resourceUrl, authorizationServers: [ISSUER] });
  const pipeline = createRequestPipeline({ resourceServer, ...extra });
  return { authsec, pipeline, sink };
}

async function* chunks(...parts: string[]): AsyncIterable<Uint8Array> {
  for (const part of parts) yield Buffer.from(part);
}

function request(init: {
  method?: string;
  headers?: Record<string, string | string[]>;
  rawHeaders?: string[];
  remoteAddress?: string;
  body?: unknown;
  text?: string;
}): PipelineRequest {
  const method = init.method ?? 'POST';
  const text = init.text ?? (init.body === undefined ? undefined : JSON.stringify(init.body));
  return {
    method,
    headers: { host: 'mcp.test', ...init.headers },
    ...(init.rawHeaders ? { rawHeaders: init.rawHeaders } : {}),
    ...(init.remoteAddress ? { remoteAddress: init.remoteAddress } : {}),
    ...(text === undefined ? {} : { body: { stream: chunks(text) } }),
  };
}

const call = (id: number, name: string, args: Record<string, unknown> = {}) => ({
  jsonrpc: '2.0',
  id,
  method: 'tools/call',
  params: { name, arguments: args },
});

function response(result: PipelineResult) {
  if (result.kind !== 'respond') throw new Error(`expected a response, got ${result.kind}`);
  return result.response as {
    status: number;
    headers: Record<string, string>;
    // biome-ignore lint/suspicious/noExplicitAny: JSON bodies of two shapes (JSON-RPC, OAuth), asserted field by field
    body: any;
    discardBody?: boolean;
  };
}

function forwarded(result: PipelineResult) {
  if (result.kind !== 'forward') throw new Error(`expected a forward, got ${JSON.stringify(result)}`);
  return result;
}

describe('origins, hosts, methods and CORS', () => {
  it('accepts no Origin, its own and configured ones; refuses the rest with 403', async () => {
    const { pipeline } = setup({ allowedOrigins: ['https://app.test'] });
    const auth = { authorization: `Bearer ${await token(JOHN)}` };
    for (const origin of [undefined, 'https://mcp.test', 'https://app.test']) {
      const headers = origin ? { ...auth, origin } : auth;
      expect(
        (await pipeline.handle(request({ headers, body: { jsonrpc: '2.0', id: 1, method: 'ping' } }))).kind,
      ).toBe('forward');
    }
    for (const origin of [
      'https://evil.test',
      'http://mcp.test',
      'null',
      'http://127.0.0.1:3000',
      'https://mcp.test.evil',
    ]) {
      const refused = response(await pipeline.handle(request({ headers: { ...auth, origin } })));
      expect(refused.status).toBe(403);
      expect(refused.body.error.message).toMatch(/Origin not allowed/);
    }
  });

  it('accepts any loopback Origin and Host when the resource is on loopback, and refuses a rebinding Host', async () => {
    const { pipeline } = setup({}, LOOPBACK_RESOURCE);
    for (const origin of [
      'http://127.0.0.1:3000',
      'http://localhost:3000',
      'http://[::1]:3000',
      'http://localhost:6274',
    ]) {
      const answer = response(
        await pipeline.handle(request({ method: 'GET', headers: { host: 'localhost:3000', origin } })),
      );
      expect(answer.status).toBe(401);
    }
    for (const host of ['evil.test', 'evil.test:3000', '127.0.0.1.evil.test', '']) {
      const refused = response(await pipeline.handle(request({ method: 'GET', headers: { host } })));
      expect(refused.status).toBe(403);
      expect(refused.body.error.message).toMatch(/Host not allowed/);
    }
    const origin = response(
      await pipeline.handle(
        request({ method: 'GET', headers: { host: '127.0.0.1:3000', origin: 'http://evil.test' } }),
      ),
    );
    expect(origin.status).toBe(403);
  });

  it('checks Host on other resources only when allowedHosts is set', async () => {
    const open = setup().pipeline;
    expect(
      response(await open.handle(request({ method: 'GET', headers: { host: 'proxy.internal' } }))).status,
    ).toBe(401);
    const strict = setup({ allowedHosts: ['mcp.example.com'] }).pipeline;
    expect(
      response(await strict.handle(request({ method: 'GET', headers: { host: 'other.test' } }))).status,
    ).toBe(403);
    expect(
      response(await strict.handle(request({ method: 'GET', headers: { host: 'mcp.test' } }))).status,
    ).toBe(401);
    expect(
      response(await strict.handle(request({ method: 'GET', headers: { host: 'mcp.example.com:443' } })))
        .status,
    ).toBe(401);
  });

  it('answers OPTIONS with 204 and other methods with 405 naming the allowed ones', async () => {
    const { pipeline } = setup({ methods: ['POST'] });
    const options = response(await pipeline.handle(request({ method: 'OPTIONS' })));
    expect(options).toMatchObject({ status: 204, headers: { allow: 'POST, OPTIONS' } });
    expect(options.body).toBeUndefined();
    const put = response(await pipeline.handle(request({ method: 'GET' })));
    expect(put.status).toBe(405);
    expect(put.headers.allow).toBe('POST');
  });

  it('exposes WWW-Authenticate and Mcp-Session-Id to CORS origins only, on refusals too', async () => {
    const { pipeline } = setup({ cors: { origins: ['https://app.test'] } });
    const refused = response(
      await pipeline.handle(request({ method: 'GET', headers: { origin: 'https://app.test' } })),
    );
    expect(refused.status).toBe(401);
    expect(refused.headers).toMatchObject({
      'access-control-allow-origin': 'https://app.test',
      vary: 'Origin',
      'access-control-expose-headers': 'WWW-Authenticate, Mcp-Session-Id',
    });
    const preflight = response(
      await pipeline.handle(request({ method: 'OPTIONS', headers: { origin: 'https://app.test' } })),
    );
    expect(preflight.headers['access-control-allow-headers']).toContain('Mcp-Session-Id');
    const evil = response(
      await pipeline.handle(request({ method: 'OPTIONS', headers: { origin: 'https://evil.test' } })),
    );
    expect(evil.status).toBe(403);
    expect(evil.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('refuses bad configuration with TypeErrors', () => {
    expect(() => setup({ allowedOrigins: ['https://a.test/path'] })).toThrow(/allowedOrigins/);
    expect(() => setup({ allowedHosts: [''] })).toThrow(/allowedHosts/);
    expect(() => setup({ insufficientScope: 'both' as 'http' })).toThrow(/insufficientScope/);
    expect(() => setup({ maxBatchSize: 0 })).toThrow(/maxBatchSize/);
    expect(() => setup({ maxBodyBytes: 1.5 })).toThrow(/maxBodyBytes/);
    expect(() => setup({ trustProxy: -1 })).toThrow(/trustProxy/);
    expect(() => createRequestPipeline({ resourceServer: undefined as never })).toThrow(TypeError);
  });
});

describe('the Authorization header', () => {
  it('401 without a token: a bare challenge, and a body without an OAuth error that agrees with it', async () => {
    const { pipeline } = setup();
    const answer = response(await pipeline.handle(request({ body: call(1, 'hello') })));
    expect(answer.status).toBe(401);
    expect(answer.headers['www-authenticate']).toBe(
      `Bearer scope="write read admin", resource_metadata="${METADATA_URL}"`,
    );
    expect(answer.body.code).toBe('TOKEN_MISSING');
    expect(answer.body).not.toHaveProperty('error');
  });

  it('refuses two Authorization headers (Node keeps only the first) with 400 invalid_request, and audits it', async () => {
    const { pipeline, sink } = setup();
    const good = `Bearer ${await token(JOHN)}`;
    const answer = response(
      await pipeline.handle(
        request({
          headers: { authorization: good },
          rawHeaders: ['Host', 'mcp.test', 'Authorization', good, 'authorization', 'Bearer other'],
          body: call(1, 'hello'),
        }),
      ),
    );
    expect(answer.status).toBe(400);
    expect(answer.body.code).toBe('BAD_REQUEST');
    expect(answer.headers['www-authenticate']).toMatch(/^Bearer error="invalid_request"/);
    expect(sink.events).toContainEqual(
      expect.objectContaining({ action: 'authenticate', reason: 'BAD_REQUEST' }),
    );
    const array = response(await pipeline.handle(request({ headers: { authorization: [good, good] } })));
    expect(array.body.code).toBe('BAD_REQUEST');
  });

  it('refuses a merged Authorization value (a comma) with 400', async () => {
    const { pipeline } = setup();
    const good = `Bearer ${await token(JOHN)}`;
    const answer = response(
      await pipeline.handle(request({ headers: { authorization: `${good}, Bearer x` } })),
    );
    expect(answer.status).toBe(400);
    expect(answer.body.code).toBe('BAD_REQUEST');
  });

  it('401 invalid_token for a token of another audience', async () => {
    const { pipeline } = setup();
    const answer = response(
      await pipeline.handle(
        request({ headers: { authorization: `Bearer ${await token(JOHN, 'https://other.test')}` } }),
      ),
    );
    expect(answer.status).toBe(401);
    expect(answer.body).toMatchObject({ error: 'invalid_token', code: 'TOKEN_AUDIENCE' });
  });
});

describe('bodies and batches', () => {
  it('413 for a declared or streamed body over the limit, leaving the rest to discard', async () => {
    const { pipeline } = setup({ maxBodyBytes: 64 });
    const auth = { authorization: `Bearer ${await token(JOHN)}` };
    const declared = response(
      await pipeline.handle(request({ headers: { ...auth, 'content-length': '65' }, text: '{}' })),
    );
    expect(declared).toMatchObject({ status: 413, discardBody: true, headers: { connection: 'close' } });
    const streamed = response(
      await pipeline.handle({
        method: 'POST',
        headers: { host: 'mcp.test', ...auth },
        body: { stream: chunks('x'.repeat(40), 'y'.repeat(40)) },
      }),
    );
    expect(streamed.status).toBe(413);
  });

  it('reads a Node stream by its events, with the same limit', async () => {
    const { pipeline } = setup({ maxBodyBytes: 64 });
    const headers = { host: 'mcp.test', authorization: `Bearer ${await token(JOHN)}` };
    const big = response(
      await pipeline.handle({
        method: 'POST',
        headers,
        body: { stream: Readable.from([Buffer.from('x'.repeat(40)), Buffer.from('y'.repeat(40))]) },
      }),
    );
    expect(big).toMatchObject({ status: 413, discardBody: true });
    const small = forwarded(
      await setup().pipeline.handle({
        method: 'POST',
        headers,
        body: { stream: Readable.from([Buffer.from(JSON.stringify(call(3, 'hello')))]) },
      }),
    );
    expect(small.message).toEqual(call(3, 'hello'));
  });

  it('400 -32700 for malformed JSON; a body a framework parsed is used as it is', async () => {
    const { pipeline } = setup();
    const auth = { authorization: `Bearer ${await token(JOHN)}` };
    const bad = response(await pipeline.handle(request({ headers: auth, text: '{"jsonrpc":' })));
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe(-32700);
    const parsed = forwarded(
      await pipeline.handle({
        method: 'POST',
        headers: { host: 'mcp.test', ...auth },
        body: { parsed: call(7, 'hello') },
      }),
    );
    expect(parsed.message).toEqual(call(7, 'hello'));
  });

  it('refuses a batch over the limit before any decision or audit', async () => {
    const { pipeline, sink } = setup({ maxBatchSize: 4 });
    const auth = { authorization: `Bearer ${await token(ALICE)}` };
    const batch = Array.from({ length: 5 }, (_, i) => call(i + 1, 'admin_panel'));
    const answer = response(await pipeline.handle(request({ headers: auth, body: batch })));
    expect(answer.status).toBe(400);
    expect(answer.body.error).toMatchObject({ code: -32600 });
    expect(answer.body.error.message).toMatch(/batch of 5 messages exceeds the limit of 4/);
    expect(sink.events.filter((e) => e.action === 'tool.call')).toHaveLength(0);
    expect(forwarded(await pipeline.handle(request({ headers: auth, body: batch.slice(0, 4) }))).kind).toBe(
      'forward',
    );
    const twice = response(
      await pipeline.handle(request({ headers: auth, body: [call(1, 'hello'), call(1, 'admin_panel')] })),
    );
    expect(twice.status).toBe(400);
    expect(twice.body.error.message).toMatch(/share an id/);
  });
});

describe('decisions, made once', () => {
  it('forwards each registered call with its decision, audited once; unregistered names are left to the server', async () => {
    const { pipeline, sink } = setup();
    const auth = { authorization: `Bearer ${await token(ALICE)}` };
    const batch = [
      call(1, 'hello'),
      call(2, 'admin_panel'),
      call(3, 'oauth_status'),
      call('x' as never, 'hello'),
    ];
    const result = forwarded(await pipeline.handle(request({ headers: auth, body: batch })));
    expect(result.principal?.subject).toBe('alice');
    const decisions = result.authInfo!.extra[DECISIONS_EXTRA_KEY];
    expect(decisions.get(1)).toMatchObject({ action: 'tool.call', target: 'hello' });
    expect(decisions.get(1)?.error).toBeUndefined();
    expect(decisions.get(2)?.error?.code).toBe('PERMISSION_DENIED');
    expect(decisions.has(3)).toBe(false);
    expect(decisions.get('x')).toMatchObject({ action: 'tool.call', target: 'hello' });
    const calls = sink.events.filter((e) => e.action === 'tool.call');
    expect(calls.map((e) => [e.target, e.decision, e.reason])).toEqual([
      ['hello', 'allow', undefined],
      ['admin_panel', 'deny', 'PERMISSION_DENIED'],
      ['hello', 'allow', undefined],
    ]);
    expect(result.authInfo!.extra.principal).toBe(result.principal);
  });

  it('403 insufficient_scope naming every scope a message needs, auditing only the refused calls', async () => {
    const { pipeline, sink } = setup();
    const auth = { authorization: `Bearer ${await token({ ...ALICE, scope: '', resources: [] })}` };
    const batch = [call(1, 'hello'), call(2, 'create_resource'), call(3, 'list_my_repos')];
    const answer = response(await pipeline.handle(request({ headers: auth, body: batch })));
    expect(answer.status).toBe(403);
    expect(answer.headers['www-authenticate']).toMatch(
      /^Bearer error="insufficient_scope", error_description="/,
    );
    expect(answer.headers['www-authenticate']).toContain('scope="write read"');
    expect(answer.headers['www-authenticate']).toContain(`resource_metadata="${METADATA_URL}"`);
    expect(answer.body.code).toBe('INSUFFICIENT_SCOPE');
    const calls = sink.events.filter((e) => e.action === 'tool.call');
    expect(calls.map((e) => [e.target, e.reason])).toEqual([
      ['create_resource', 'INSUFFICIENT_SCOPE'],
      ['list_my_repos', 'INSUFFICIENT_SCOPE'],
    ]);
  });

  it('decides resources/read and prompts/get of declared primitives like calls: one record, the step-up', async () => {
    const primitives = {
      resource: (uri: string) =>
        uri.startsWith('repo://')
          ? { name: 'repository', requirement: { scopes: ['write'] } }
          : uri === 'docs://public'
            ? { name: 'docs', requirement: 'public' as const }
            : undefined,
      prompt: (name: string) =>
        name === 'review' ? { name: 'review', requirement: { roles: ['admin'] } } : undefined,
    };
    const { pipeline, sink } = setup({ primitives });
    const read = (id: number, uri: string) => ({
      jsonrpc: '2.0',
      id,
      method: 'resources/read',
      params: { uri },
    });
    const get = (id: number, name: string) => ({
      jsonrpc: '2.0',
      id,
      method: 'prompts/get',
      params: { name, arguments: { topic: 'x' } },
    });
    const alice = { authorization: `Bearer ${await token(ALICE)}` };
    const result = forwarded(
      await pipeline.handle(
        request({
          headers: alice,
          body: [get(1, 'review'), read(2, 'docs://public'), read(3, 'other://x'), get(4, 'unknown')],
        }),
      ),
    );
    const decisions = result.authInfo!.extra[DECISIONS_EXTRA_KEY];
    expect(decisions.get(1)).toMatchObject({ action: 'prompt.get', target: 'review' });
    expect(decisions.get(1)?.error?.code).toBe('PERMISSION_DENIED');
    // Public and undeclared names are the server's to answer.
    expect([...decisions.keys()]).toEqual([1]);
    expect(sink.events.filter((e) => e.action === 'prompt.get').map((e) => e.decision)).toEqual(['deny']);

    // More scopes alone would allow the read: 403 before the server runs, the read recorded once.
    const answer = response(
      await pipeline.handle(request({ headers: alice, body: read(5, 'repo://acme/app') })),
    );
    expect(answer.status).toBe(403);
    // The challenge keeps the scopes held (read) beside the one needed.
    expect(answer.headers['www-authenticate']).toContain('scope="write read"');
    expect(answer.headers['www-authenticate']).toContain("Resource 'repository' requires");
    expect(answer.body.code).toBe('INSUFFICIENT_SCOPE');
    expect(sink.events.filter((e) => e.action === 'resource.read').map((e) => [e.target, e.reason])).toEqual([
      ['repository', 'INSUFFICIENT_SCOPE'],
    ]);
  });

  it('refuses primitives without resource() and prompt() at creation', () => {
    expect(() => setup({ primitives: { resource: () => undefined } as never })).toThrow(
      /primitives must have resource\(uri\) and prompt\(name\)/,
    );
  });

  it("with insufficientScope: 'result' forwards the refusal as the call's decision", async () => {
    const { pipeline } = setup({ insufficientScope: 'result' });
    const auth = { authorization: `Bearer ${await token(ALICE)}` };
    const result = forwarded(
      await pipeline.handle(request({ headers: auth, body: call(1, 'create_resource') })),
    );
    expect(result.authInfo!.extra[DECISIONS_EXTRA_KEY].get(1)?.error?.code).toBe('INSUFFICIENT_SCOPE');
  });

  it('never lets a client-sent _user_info reach the audit digest', async () => {
    const { pipeline, sink } = setup();
    const auth = { authorization: `Bearer ${await token(JOHN)}` };
    await pipeline.handle(request({ headers: auth, body: call(1, 'hello', { a: 1 }) }));
    await pipeline.handle(
      request({ headers: auth, body: call(2, 'hello', { a: 1, _user_info: { roles: ['admin'] } }) }),
    );
    const [plain, forged] = sink.events.filter((e) => e.action === 'tool.call');
    expect(forged!.argumentsDigest).toBe(plain!.argumentsDigest);
  });

  it('fails closed: an unreachable key set is 503 with Retry-After and no details', async () => {
    const down = 'http://127.0.0.1:9/idp';
    const { pipeline } = setup({}, RESOURCE, { issuers: [{ issuer: down, jwksUrl: `${down}/jwks` }] });
    const answer = response(
      await pipeline.handle(
        request({ headers: { authorization: `Bearer ${await token(JOHN, RESOURCE, down)}` } }),
      ),
    );
    expect(answer.status).toBe(503);
    expect(answer.headers['retry-after']).toBe('5');
    expect(answer.body).toMatchObject({ code: 'SERVICE_UNAVAILABLE', error: 'temporarily_unavailable' });
    expect(answer.body.error_description).not.toMatch(/127\.0\.0\.1|jwks/i);
  });
});

describe('principals and loopback clients', () => {
  it('names a principal by issuer, tenant and subject, the same object each time', async () => {
    const { authsec } = setup();
    const john = await authsec.authenticate(await token(JOHN));
    const alice = await authsec.authenticate(await token(ALICE));
    expect(principalKey(john)).toBe(JSON.stringify([ISSUER, 'acme-corp', 'john']));
    expect(principalKey(john)).not.toBe(principalKey(alice));
  });

  it('lets anonymous loopback requests through only when asked, reading X-Forwarded-For from the nearest hop', async () => {
    const plain = setup({ allowAnonymousLoopback: true }).pipeline;
    expect(
      forwarded(await plain.handle(request({ method: 'GET', remoteAddress: '127.0.0.1' }))).principal,
    ).toBeUndefined();
    expect(
      response(
        await plain.handle(
          request({ method: 'GET', remoteAddress: '10.0.0.2', headers: { 'x-forwarded-for': '127.0.0.1' } }),
        ),
      ).status,
    ).toBe(401);
    const proxied = setup({ allowAnonymousLoopback: true, trustProxy: true }).pipeline;
    // The proxy appended the address it saw (the last entry); the first one is whatever the client claimed.
    const spoofed = request({
      method: 'GET',
      remoteAddress: '10.0.0.1',
      headers: { 'x-forwarded-for': '127.0.0.1, 203.0.113.9' },
    });
    expect(response(await proxied.handle(spoofed)).status).toBe(401);
    const local = request({
      method: 'GET',
      remoteAddress: '10.0.0.1',
      headers: { 'x-forwarded-for': '203.0.113.9, 127.0.0.1' },
    });
    expect(forwarded(await proxied.handle(local)).principal).toBeUndefined();
    const twoHops = setup({ allowAnonymousLoopback: true, trustProxy: 2 }).pipeline;
    const behindTwo = request({
      method: 'GET',
      remoteAddress: '10.0.0.1',
      headers: { 'x-forwarded-for': '127.0.0.1, 10.0.0.7' },
    });
    expect(forwarded(await twoHops.handle(behindTwo)).principal).toBeUndefined();
    const off = setup().pipeline;
    expect(response(await off.handle(request({ method: 'GET', remoteAddress: '127.0.0.1' }))).status).toBe(
      401,
    );
  });

  it('has one loopback definition', () => {
    for (const host of [
      '127.0.0.1',
      '127.8.9.10',
      'localhost',
      'LOCALHOST',
      '::1',
      '[::1]',
      '::ffff:127.0.0.1',
    ])
      expect(isLoopbackHost(host)).toBe(true);
    for (const host of [
      '127.example',
      '127.0.0.1.evil.test',
      '128.0.0.1',
      'localhost.',
      '127.0.0.256',
      '0.0.0.0',
    ])
      expect(isLoopbackHost(host)).toBe(false);
  });
});
