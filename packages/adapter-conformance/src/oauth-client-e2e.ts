/**
 * One end-to-end suite for every HTTP sample app (Express, Fastify, NestJS), written once: the way a real MCP
 * client meets the app. The built server (`node dist/main.js`) on embedded
 * defaults (its own dev IdP, PGlite, the demo tenant), and the official SDK client as a real OAuth client
 * (`StreamableHTTPClientTransport` with an `OAuthClientProvider`). Without a token the client is refused with a
 * 401, discovers the dev IdP through the protected resource metadata, registers dynamically, authorizes with
 * code + PKCE + `resource` through the IdP's sign-in form, lists exactly the caller's tools, and steps up after
 * a 403 `insufficient_scope`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEMO_USERS, type ResolvedDevUser, signIn } from '@authsec/dev-idp';
import { type OAuthClientProvider, UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import {
  StreamableHTTPClientTransport,
  StreamableHTTPError,
} from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type {
  OAuthClientInformationMixed,
  OAuthClientMetadata,
  OAuthTokens,
} from '@modelcontextprotocol/sdk/shared/auth.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from './index.js';

const ADMIN_TOOLS = [
  'hello',
  'calculator',
  'admin_panel',
  'admin_dashboard',
  'create_resource',
  'view_analytics',
  'view_reports',
  'deploy_production',
  'engineering_tools',
  'sensitive_operations',
  'list_my_repos',
];
const ANALYST_TOOLS = ['hello', 'calculator', 'view_analytics', 'view_reports', 'list_my_repos'];

function demoUser(prefix: string): ResolvedDevUser {
  const user = DEMO_USERS.find((u) => u.email.startsWith(prefix));
  if (!user) throw new Error(`no demo user ${prefix}`);
  return user;
}
const ADMIN = demoUser('admin@');
const ANALYST = demoUser('analyst@');

function textOf(result: unknown): string {
  const content = (result as { content?: { type: string; text?: string }[] }).content ?? [];
  return content.map((c) => c.text ?? '').join('\n');
}

/**
 * An in-memory OAuth client: what a desktop MCP client keeps, with the browser replaced by the dev IdP's
 * sign-in form. `consentScope`, when set, is what the user grants on the first authorization (the scope the
 * SDK asked for is replaced by it, as a consent screen that narrows the grant would).
 */
/** An in-memory OAuth client provider that signs in through the dev IdP's form. */
export class TestOAuthProvider implements OAuthClientProvider {
  readonly authorizations: URL[] = [];
  code: string | undefined;
  /** The redirect's `iss` (RFC 9207), which the v2 client checks against the authorization server. */
  iss: string | undefined;
  #tokens: OAuthTokens | undefined;
  #client: OAuthClientInformationMixed | undefined;
  #verifier: string | undefined;
  #state: string | undefined;

  constructor(
    readonly user: ResolvedDevUser,
    readonly redirectUrl: string,
    readonly options: { grantTypes?: string[]; consentScope?: string } = {},
  ) {}

  get clientMetadata(): OAuthClientMetadata {
    return {
      redirect_uris: [this.redirectUrl],
      grant_types: this.options.grantTypes ?? ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      client_name: 'AuthSec e2e test client',
      scope: 'openid offline_access read write admin',
    };
  }

  state(): string {
    this.#state = crypto.randomUUID();
    return this.#state;
  }

  clientInformation(): OAuthClientInformationMixed | undefined {
    return this.#client;
  }

  saveClientInformation(info: OAuthClientInformationMixed): void {
    this.#client = info;
  }

  tokens(): OAuthTokens | undefined {
    return this.#tokens;
  }

  saveTokens(tokens: OAuthTokens): void {
    this.#tokens = tokens;
  }

  saveCodeVerifier(codeVerifier: string): void {
    this.#verifier = codeVerifier;
  }

  codeVerifier(): string {
    if (!this.#verifier) throw new Error('no code verifier saved');
    return this.#verifier;
  }

  async redirectToAuthorization(authorizationUrl: URL): Promise<void> {
    this.authorizations.push(new URL(authorizationUrl));
    const url = new URL(authorizationUrl);
    if (this.options.consentScope !== undefined && this.authorizations.length === 1)
      url.searchParams.set('scope', this.options.consentScope);
    const back = await signIn(url, this.user.email, this.user.password);
    expect(`${back.origin}${back.pathname}`).toBe(this.redirectUrl);
    expect(back.searchParams.get('state')).toBe(this.#state);
    const code = back.searchParams.get('code');
    if (!code) throw new Error(`no code in the redirect: ${back.href} (authorization ${url.href})`);
    this.code = code;
    this.iss = back.searchParams.get('iss') ?? undefined;
  }
}

/** A sample app's built entry run as a child process on embedded defaults, in a temporary data folder. */
export interface BuiltApp {
  /** Starts it on free ports; resolves once it says it serves MCP. */
  start(): Promise<{ readonly mcpUrl: string; readonly issuer: string }>;
  /** Sends SIGTERM; resolves to the exit code. */
  terminate(): Promise<number | null>;
  /** Stops it if still running (SIGTERM, then SIGKILL after 10 s) and removes the data folder. */
  stop(): Promise<void>;
}

/** See {@link BuiltApp}; `env` adds variables (every other `AUTHSEC_*` and `NODE_ENV` is left out). */
export function builtApp(APP: string, MAIN_JS: string, extraEnv: Record<string, string> = {}): BuiltApp {
  const data = mkdtempSync(join(tmpdir(), `authsec-e2e-${APP}-`));
  let child: ChildProcess | undefined;
  let stderr = '';
  const running = () => child !== undefined && child.exitCode === null && child.signalCode === null;
  const terminate = (): Promise<number | null> => {
    const proc = child!;
    const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
    proc.kill('SIGTERM');
    return exited;
  };
  return {
    async start() {
      const idpPort = await freePort();
      const port = await freePort();
      const issuer = `http://127.0.0.1:${idpPort}`;
      const mcpUrl = `http://127.0.0.1:${port}/mcp`;
      const env: Record<string, string> = {};
      for (const [name, value] of Object.entries(process.env)) {
        if (value !== undefined && !name.startsWith('AUTHSEC_') && name !== 'NODE_ENV') env[name] = value;
      }
      const proc = spawn(process.execPath, [MAIN_JS], {
        env: {
          ...env,
          ...extraEnv,
          AUTHSEC_DATA_DIR: data,
          AUTHSEC_DEV_IDP_PORT: String(idpPort),
          PORT: String(port),
          AUTHSEC_RESOURCE_URL: mcpUrl,
        },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      child = proc;
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`the app did not start:\n${stderr}`)), 50_000);
        proc.stderr?.setEncoding('utf8');
        proc.stderr?.on('data', (chunk: string) => {
          stderr += chunk;
          if (stderr.includes(`is serving MCP at ${mcpUrl}`)) {
            clearTimeout(timer);
            resolve();
          }
        });
        proc.once('exit', (code) => {
          clearTimeout(timer);
          reject(new Error(`the app exited with ${code}:\n${stderr}`));
        });
      });
      return { mcpUrl, issuer };
    },
    terminate,
    async stop() {
      if (running()) {
        await Promise.race([terminate(), new Promise((resolve) => setTimeout(resolve, 10_000))]);
        if (running()) child!.kill('SIGKILL');
      }
      rmSync(data, { recursive: true, force: true });
    },
  };
}

/** What an app-specific addition to the suite can use. */
export interface OAuthClientE2EContext {
  /** The app's MCP URL (set once the app has started). */
  mcpUrl(): string;
  /** A fresh OAuth client provider for a demo user (scope as the suite's defaults). */
  newProvider(user: ResolvedDevUser): Promise<TestOAuthProvider>;
  /** Runs the whole authorization (discovery, registration, sign-in form, code exchange) for a provider. */
  authorize(provider: TestOAuthProvider): Promise<void>;
  /** The demo users. */
  readonly users: { readonly admin: ResolvedDevUser; readonly analyst: ResolvedDevUser };
}

/**
 * Defines the suite for the app `APP` whose built entry is `MAIN_JS`. `extra` adds app-specific tests inside the
 * same `describe`, with the running app.
 */
export function defineOAuthClientE2E(
  APP: string,
  MAIN_JS: string,
  extra?: (context: OAuthClientE2EContext) => void,
): void {
  describe(`${APP}: the official SDK client as a real OAuth client`, () => {
    const app = builtApp(APP, MAIN_JS);
    let mcpUrl: string;
    let issuer: string;
    const clients: Client[] = [];
    beforeAll(async () => {
      ({ mcpUrl, issuer } = await app.start());
    });
    afterAll(async () => {
      await Promise.allSettled(clients.map((c) => c.close()));
      await app.stop();
    });

    async function newProvider(
      user: ResolvedDevUser,
      options?: { grantTypes?: string[]; consentScope?: string },
    ): Promise<TestOAuthProvider> {
      return new TestOAuthProvider(user, `http://127.0.0.1:${await freePort()}/callback`, options);
    }

    /** Connects as a new client; the first attempt is refused and sends the user to the IdP. */
    async function authorize(provider: TestOAuthProvider): Promise<void> {
      const first = new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider });
      const refused = new Client({ name: `${APP}-e2e`, version: '1.0.0' });
      const error = await refused.connect(first).then(
        () => undefined,
        (e: unknown) => e,
      );
      if (!(error instanceof UnauthorizedError)) throw error;
      expect(provider.code).toBeTruthy();
      await first.finishAuth(provider.code!);
      await refused.close().catch(() => {});
    }

    async function connect(provider: TestOAuthProvider): Promise<{
      client: Client;
      transport: StreamableHTTPClientTransport;
    }> {
      const transport = new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider });
      const client = new Client({ name: `${APP}-e2e`, version: '1.0.0' });
      await client.connect(transport);
      clients.push(client);
      return { client, transport };
    }

    it('refuses a request without a token with a 401 that names the metadata, which names the dev IdP', async () => {
      const response = await fetch(mcpUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 1,
          method: 'initialize',
          params: {
            protocolVersion: '2025-11-25',
            capabilities: {},
            clientInfo: { name: 'raw', version: '1' },
          },
        }),
      });
      expect(response.status).toBe(401);
      const origin = new URL(mcpUrl).origin;
      const challenge = response.headers.get('www-authenticate') ?? '';
      expect(challenge).toMatch(/^Bearer /);
      expect(challenge).toContain(`resource_metadata="${origin}/.well-known/oauth-protected-resource/mcp"`);
      for (const path of [
        '/.well-known/oauth-protected-resource/mcp',
        '/.well-known/oauth-protected-resource',
      ]) {
        const metadata = (await (await fetch(`${origin}${path}`)).json()) as Record<string, unknown>;
        expect(metadata.resource).toBe(mcpUrl);
        expect(metadata.authorization_servers).toEqual([issuer]);
        expect(metadata.scopes_supported).toEqual(expect.arrayContaining(['read', 'write', 'admin']));
      }
    });

    it('authorizes the administrator (discovery, dynamic registration, code + PKCE + resource) and lists all of her tools', async () => {
      const provider = await newProvider(ADMIN);
      await authorize(provider);

      expect(provider.authorizations).toHaveLength(1);
      const authorization = provider.authorizations[0]!;
      expect(authorization.origin).toBe(issuer);
      expect(authorization.searchParams.get('response_type')).toBe('code');
      expect(authorization.searchParams.get('code_challenge_method')).toBe('S256');
      expect(authorization.searchParams.get('code_challenge')).toMatch(/^[\w-]{43}$/);
      expect(authorization.searchParams.get('resource')).toBe(mcpUrl);
      expect(authorization.searchParams.get('redirect_uri')).toBe(provider.redirectUrl);
      // Dynamically registered: not the dev IdP's built-in client.
      const clientId = provider.clientInformation()?.client_id;
      expect(clientId).toBeTruthy();
      expect(clientId).not.toBe('authsec-dev');
      expect(authorization.searchParams.get('client_id')).toBe(clientId);
      // The scope of the 401 challenge (SEP-835: it wins over the client's own).
      expect(authorization.searchParams.get('scope')?.split(' ')).toEqual(
        expect.arrayContaining(['read', 'write', 'admin']),
      );
      expect(provider.tokens()?.access_token).toBeTruthy();

      const { client } = await connect(provider);
      const { tools } = await client.listTools();
      expect(tools.map((t) => t.name).sort()).toEqual([...ADMIN_TOOLS].sort());
      const hello = await client.callTool({ name: 'hello', arguments: {} });
      expect(hello.isError).toBeFalsy();
      expect(textOf(hello)).toContain(ADMIN.email);
      // No further trip to the IdP was needed.
      expect(provider.authorizations).toHaveLength(1);
    });

    it('authorizes the analyst and lists exactly his tools', async () => {
      const provider = await newProvider(ANALYST);
      await authorize(provider);
      const { client } = await connect(provider);
      const { tools } = await client.listTools();
      expect(tools.map((t) => t.name).sort()).toEqual([...ANALYST_TOOLS].sort());
      const hello = await client.callTool({ name: 'hello', arguments: {} });
      expect(textOf(hello)).toContain(ANALYST.email);
      expect(textOf(hello)).not.toContain(ADMIN.email);
    });

    it('steps up after a 403 insufficient_scope: the SDK re-authorizes with the scopes the challenge names', async () => {
      // No refresh token (authorization_code only): holding one, SDK 1.32.2 answers insufficient_scope with a
      // refresh, which cannot widen the grant (see the README).
      const provider = await newProvider(ADMIN, {
        grantTypes: ['authorization_code'],
        consentScope: 'read',
      });
      await authorize(provider);
      const granted = provider.tokens();
      expect(granted?.scope).toBe('read');
      expect(granted?.refresh_token).toBeUndefined();

      const { client, transport } = await connect(provider);
      const listed = (await client.listTools()).tools.map((t) => t.name);
      expect(listed).toContain('hello');
      expect(listed).not.toContain('create_resource');

      // The challenge itself, as any HTTP client sees it.
      const headers = {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': '2025-11-25',
        authorization: `Bearer ${granted!.access_token}`,
        'mcp-session-id': transport.sessionId ?? '',
      };
      const raw = await fetch(mcpUrl, {
        method: 'POST',
        headers,
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 99,
          method: 'tools/call',
          params: { name: 'create_resource', arguments: { name: 'raw' } },
        }),
      });
      expect(raw.status).toBe(403);
      const challenge = raw.headers.get('www-authenticate') ?? '';
      expect(challenge).toMatch(/^Bearer /);
      expect(challenge).toContain('error="insufficient_scope"');
      expect(challenge).toContain('scope="write read"');
      expect(challenge).toContain(
        `resource_metadata="${new URL(mcpUrl).origin}/.well-known/oauth-protected-resource/mcp"`,
      );
      await raw.body?.cancel();

      // The SDK acts on it: a second authorization with the challenge's scopes.
      await expect(
        client.callTool({ name: 'create_resource', arguments: { name: 'stepped-up' } }),
      ).rejects.toBeInstanceOf(UnauthorizedError);
      expect(provider.authorizations).toHaveLength(2);
      const second = provider.authorizations[1]!;
      expect(second.searchParams.get('scope')).toBe('write read');
      expect(second.searchParams.get('resource')).toBe(mcpUrl);
      await transport.finishAuth(provider.code!);
      expect(provider.tokens()?.scope?.split(' ')).toEqual(expect.arrayContaining(['read', 'write']));

      // The retry, on the same session, succeeds.
      const created = await client.callTool({ name: 'create_resource', arguments: { name: 'stepped-up' } });
      expect(created.isError).toBeFalsy();
      expect(textOf(created)).toContain("Resource 'stepped-up' created successfully!");
      expect((await client.listTools()).tools.map((t) => t.name)).toContain('create_resource');
    });

    it('pins SDK 1.32.2: a client holding a refresh token answers insufficient_scope with a refresh, and gives up', async () => {
      // A refresh cannot widen the grant, so the server repeats the same challenge and the SDK stops (no loop, no
      // second trip to the IdP). When this starts failing, the SDK has changed how it steps up: revisit the README.
      const provider = await newProvider(ADMIN, { consentScope: 'read' });
      await authorize(provider);
      expect(provider.tokens()?.refresh_token).toBeTruthy();
      const { client } = await connect(provider);
      const error = await client.callTool({ name: 'create_resource', arguments: {} }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(StreamableHTTPError);
      expect((error as StreamableHTTPError).code).toBe(403);
      expect(String((error as Error).message)).toContain('after trying upscoping');
      expect(provider.authorizations).toHaveLength(1);
      expect(provider.tokens()?.scope).toBe('read');
    });

    // App-specific tests run while the app is up, before the shutdown test below.
    extra?.({
      mcpUrl: () => mcpUrl,
      newProvider: (user) => newProvider(user),
      authorize: (provider) => authorize(provider),
      users: { admin: ADMIN, analyst: ANALYST },
    });

    it('closes everything on SIGTERM and exits 0 (the MCP port and the dev IdP port are released)', async () => {
      await Promise.allSettled(clients.splice(0).map((c) => c.close()));
      expect(await app.terminate()).toBe(0);
      for (const url of [mcpUrl, `${issuer}/.well-known/openid-configuration`]) {
        await expect(fetch(url, { signal: AbortSignal.timeout(2000) })).rejects.toThrow();
      }
    });
  });
}

/** The demo tenant's users and the tools each sees in the sample apps, for the v2 suite. */
export {
  ADMIN as DEMO_ADMIN,
  ADMIN_TOOLS as DEMO_ADMIN_TOOLS,
  ANALYST as DEMO_ANALYST,
  ANALYST_TOOLS as DEMO_ANALYST_TOOLS,
  textOf,
};
