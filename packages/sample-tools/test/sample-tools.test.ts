import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  type AuthSec,
  createAuthSec,
  noServiceAccess,
  type Principal,
  type ServiceAccess,
  type ServiceCredentials,
  silentLogger,
} from '@authsec/core';
import { createAuthSecServer, type LoginProvider } from '@authsec/mcp';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSampleTools, GITHUB_SERVICE, SAMPLE_REQUIREMENTS } from '../src/index.js';

const ISSUER = 'https://idp.sample.test';
const AUDIENCE = 'urn:authsec:sample-tools-test';
let privateKey: Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
let publicJwk: JWK;
let authsec: AuthSec;

// The brief's user, and one user per sample-tool row who lacks exactly what that row needs.
const USERS = {
  brief: {
    sub: 'john',
    email: 'john@company.com',
    roles: ['admin', 'developer'],
    groups: ['engineering'],
    scope: 'read write',
    resources: ['projects', 'analytics'],
  },
  analyst: {
    sub: 'ana',
    email: 'ana@acme.example',
    roles: ['analyst'],
    scope: 'read',
    resources: ['analytics'],
  },
  security: {
    sub: 'sec',
    email: 'sec@acme.example',
    roles: ['superuser'],
    groups: ['security-team'],
    scope: 'admin',
    resources: ['production', 'sensitive-data'],
  },
  machine: { sub: 'svc-client', client_id: 'svc-client' },
} as const;

/** A login provider for tests: one principal per connection, set by the test. */
class StaticLogin implements LoginProvider {
  readonly tools = [];
  readonly principals = new Map<string, Principal>();
  async principalFor(connectionId: string) {
    return this.principals.get(connectionId);
  }
  sessionIdFor() {
    return undefined;
  }
  onChange() {
    return () => {};
  }
  disconnect() {}
  async close() {}
}

async function principal(claims: Record<string, unknown>): Promise<Principal> {
  const token = await new SignJWT({ tenant_id: 'acme-corp', ...claims })
    .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setSubject(String(claims.sub))
    .setExpirationTime('5m')
    .sign(privateKey);
  return authsec.authenticate(token);
}

async function connect(
  who: Principal,
  services: ServiceAccess = noServiceAccess,
): Promise<{ client: Client; close(): Promise<void> }> {
  const login = new StaticLogin();
  login.principals.set('c1', who);
  const server = createAuthSecServer({
    name: 'sample',
    version: '1.0.0',
    tools: createSampleTools(),
    authsec: createAuthSec({
      issuers: [{ issuer: ISSUER, keys: [publicJwk] }],
      audience: AUDIENCE,
      logger: silentLogger,
    }),
    login,
    services: () => services,
  });
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  await server.createServer('c1').connect(serverSide);
  const client = new Client({ name: 'test', version: '1.0.0' });
  await client.connect(clientSide);
  return {
    client,
    close: async () => {
      await client.close();
      await server.close();
    },
  };
}

function textOf(result: unknown): string {
  const content = (result as { content: { type: string; text?: string }[] }).content;
  return content.map((c) => c.text ?? '').join('\n');
}

beforeAll(async () => {
  const pair = await generateKeyPair('ES256');
  privateKey = pair.privateKey;
  publicJwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256' };
  authsec = createAuthSec({
    issuers: [{ issuer: ISSUER, keys: [publicJwk] }],
    audience: AUDIENCE,
    logger: silentLogger,
  });
});
afterAll(() => authsec.close());

describe('the sample tool set', () => {
  it('declares exactly the tools and requirements of architecture.md', () => {
    const tools = createSampleTools();
    expect(tools.map((t) => t.name)).toEqual(Object.keys(SAMPLE_REQUIREMENTS));
    for (const tool of tools) expect(tool.requirement).toEqual(SAMPLE_REQUIREMENTS[tool.name]);
  });

  it('shows the brief user exactly the tools the brief lists, and runs them as the brief shows', async () => {
    const { client, close } = await connect(await principal(USERS.brief));
    const names = (await client.listTools()).tools.map((t) => t.name);
    expect(names).toEqual([
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
    expect(textOf(await client.callTool({ name: 'hello', arguments: {} }))).toBe('Hello, john@company.com!');
    expect(textOf(await client.callTool({ name: 'admin_dashboard', arguments: {} }))).toBe(
      'Welcome to admin dashboard, john@company.com!',
    );
    expect(
      textOf(await client.callTool({ name: 'create_resource', arguments: { name: 'Project Alpha' } })),
    ).toBe("Resource 'Project Alpha' created successfully!");
    expect(
      textOf(await client.callTool({ name: 'calculator', arguments: { operation: 'multiply', a: 6, b: 7 } })),
    ).toBe('6 multiply 7 = 42');
    const divide = await client.callTool({
      name: 'calculator',
      arguments: { operation: 'divide', a: 1, b: 0 },
    });
    expect(divide.isError).toBe(true);
    expect(textOf(divide)).toContain('Cannot divide by zero');
    const denied = await client.callTool({ name: 'deploy_production', arguments: {} });
    expect(denied.isError).toBe(true);
    await close();
  });

  it('gives an analyst reports and analytics but not admin or write tools', async () => {
    const { client, close } = await connect(await principal(USERS.analyst));
    expect((await client.listTools()).tools.map((t) => t.name)).toEqual([
      'hello',
      'calculator',
      'view_analytics',
      'view_reports',
      'list_my_repos',
    ]);
    const write = await client.callTool({ name: 'create_resource', arguments: { name: 'x' } });
    expect(write.isError).toBe(true);
    expect(textOf(write)).toContain('write');
    await close();
  });

  it('lets only a caller with every condition run sensitive_operations', async () => {
    const { client, close } = await connect(await principal(USERS.security));
    expect(textOf(await client.callTool({ name: 'sensitive_operations', arguments: {} }))).toBe(
      'Sensitive operation completed',
    );
    await close();
    const brief = await connect(await principal(USERS.brief));
    expect((await brief.client.callTool({ name: 'sensitive_operations', arguments: {} })).isError).toBe(true);
    await brief.close();
  });

  it('greets a machine caller by its client id', async () => {
    const { client, close } = await connect(await principal(USERS.machine));
    expect(textOf(await client.callTool({ name: 'hello', arguments: {} }))).toBe('Hello, svc-client!');
    await close();
  });
});

describe('list_my_repos', () => {
  let api: HttpServer;
  let apiUrl: string;
  const received: (string | undefined)[] = [];
  const canary = 'ghp_CANARY_0123456789abcdef';

  beforeAll(async () => {
    api = createServer((req, res) => {
      received.push(req.headers.authorization);
      if (req.url !== '/user/repos') {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify([{ full_name: 'acme/rocket', stargazers_count: 7 }]));
    });
    await new Promise<void>((resolve) => api.listen(0, '127.0.0.1', resolve));
    apiUrl = `http://127.0.0.1:${(api.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => api.close(() => resolve())));

  const services = (url: string): ServiceAccess => ({
    async getServiceToken() {
      return canary;
    },
    async getServiceCredentials(name): Promise<ServiceCredentials> {
      expect(name).toBe(GITHUB_SERVICE);
      return {
        serviceName: name,
        serviceType: 'github',
        authType: 'bearer',
        url,
        credentials: { access_token: canary },
        metadata: {},
        retrievedAt: Date.now(),
      };
    },
    async listServices() {
      return [];
    },
  });

  it('calls the service API with the stored token and never returns the token', async () => {
    const { client, close } = await connect(await principal(USERS.analyst), services(apiUrl));
    const result = await client.callTool({ name: 'list_my_repos', arguments: {} });
    expect(textOf(result)).toBe('Your GitHub Repositories:\n- acme/rocket (7 ⭐)');
    expect(received.at(-1)).toBe(`Bearer ${canary}`);
    expect(JSON.stringify(result)).not.toContain(canary);
    await close();
  });

  it('reports an unreachable API without the token', async () => {
    const { client, close } = await connect(await principal(USERS.analyst), services('http://127.0.0.1:9'));
    const result = await client.callTool({ name: 'list_my_repos', arguments: {} });
    expect(result.isError).toBe(true);
    expect(JSON.stringify(result)).not.toContain(canary);
    await close();
  });

  it('is refused without a credential store, clearly', async () => {
    const { client, close } = await connect(await principal(USERS.analyst));
    const result = await client.callTool({ name: 'list_my_repos', arguments: {} });
    expect(result.isError).toBe(true);
    expect(textOf(result)).toMatch(/unavailable/i);
    await close();
  });
});
