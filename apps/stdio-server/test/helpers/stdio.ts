/**
 * Helpers of the end-to-end tests: real `apps/stdio-server` processes driven by the official SDK `Client` over
 * stdio, the browser-style login through the dev IdP's sign-in form, temporary data folders and free ports.
 */
import { generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEMO_USERS, type ResolvedDevUser, signIn } from '@authsec/dev-idp';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { type CallToolResult, ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';

/** The app folder (`apps/stdio-server`). */
export const APP_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The built server on the MCP SDK v2 (both eras), exactly as an MCP client starts it. */
export const MAIN_JS = join(APP_DIR, 'dist', 'main.js');
/** The built server on the MCP SDK v1 line (`runMcpServerWithOAuth`), which the v1-client suites drive. */
export const MAIN_V1_JS = join(APP_DIR, 'dist', 'main-v1.js');
/** The built demo. */
export const DEMO_JS = join(APP_DIR, 'dist', 'demo.js');

/** The only tools anyone sees before logging in (the brief's step 1), in the order the server lists them. */
export const LOGIN_TOOLS = [
  'oauth_start',
  'oauth_authenticate',
  'oauth_status',
  'oauth_logout',
  'oauth_user_info',
] as const;

/** Every sample tool the administrator may use (all of them), in declaration order. */
export const ADMIN_TOOLS = [
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
] as const;

/** The sample tools the analyst (role analyst, scope read, resource analytics) may use. */
export const ANALYST_TOOLS = [
  'hello',
  'calculator',
  'view_analytics',
  'view_reports',
  'list_my_repos',
] as const;

function demoUser(prefix: string): ResolvedDevUser {
  const user = DEMO_USERS.find((u) => u.email.startsWith(prefix));
  if (!user) throw new Error(`no demo user ${prefix}`);
  return user;
}

/** The demo administrator (every role the sample tools name). */
export const ADMIN = demoUser('admin@');
/** The demo analyst. */
export const ANALYST = demoUser('analyst@');

/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** A fresh temporary folder; `remove()` deletes it. */
export function tempDir(prefix: string): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), `authsec-e2e-${prefix}-`));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** The text items of a tool result, joined. */
export function textOf(result: unknown): string {
  const content = (result as { content?: { type: string; text?: string }[] }).content ?? [];
  return content.map((c) => c.text ?? '').join('\n');
}

/** `_meta['authsec/error'].code` of a refusal. */
export function errorCode(result: { readonly _meta?: Record<string, unknown> }): string | undefined {
  return (result._meta?.['authsec/error'] as { code?: string } | undefined)?.code;
}

/** Resolves when `condition()` holds, polling; rejects after `ms`. */
export async function eventually(condition: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Whether a process id is alive. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** How a test starts a server process (`main`) as an MCP client would: a clean environment, stderr piped. */
export function serverProcess(main: string, env: Record<string, string>) {
  return {
    command: process.execPath,
    args: [main],
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? tmpdir(),
      AUTHSEC_LOG_LEVEL: 'warn',
      ...env,
    },
    stderr: 'pipe' as const,
  };
}

/**
 * One MCP client (SDK v1) with its own `apps/stdio-server` process on the v1 line (the way Claude, VS Code or
 * the Inspector start it).
 * Every tool result it receives is kept in {@link StdioApp.results}, so that a test can check none of them
 * ever carried a token.
 */
/** What both test clients share: the process's stderr, the `list_changed` count, the browser login. */
export abstract class LoginClient {
  readonly stderr: string[] = [];
  /** `notifications/tools/list_changed` received so far. */
  changes = 0;

  /** `structuredContent` of a login tool's result. */
  abstract login<T = Record<string, unknown>>(name: string, args?: Record<string, unknown>): Promise<T>;

  /** Resolves once more than `seen` `tools/list_changed` notifications have arrived. */
  changedSince(seen: number, ms = 10_000): Promise<void> {
    return eventually(() => this.changes > seen, ms, 'notifications/tools/list_changed');
  }

  /**
   * The brief's steps 2 to 4 with a real browser: `oauth_start`, sign in at `authorization_url` through the
   * dev IdP's HTML form, follow the redirect back to this server's loopback callback, wait for `list_changed`.
   * Returns the login's session id.
   */
  async browserLogin(user: { email: string; password: string }): Promise<string> {
    const seen = this.changes;
    const started = await this.login<{ status: string; session_id: string; authorization_url: string }>(
      'oauth_start',
    );
    if (started.status !== 'ready_for_authentication')
      throw new Error(`oauth_start: ${JSON.stringify(started)}`);
    await followSignIn(started.authorization_url, user);
    await this.changedSince(seen);
    return started.session_id;
  }

  /** The last lines the server wrote to stderr (for failure messages). */
  stderrTail(lines = 20): string {
    return this.stderr.join('').trim().split('\n').slice(-lines).join('\n');
  }
}

export class StdioApp extends LoginClient {
  readonly client = new Client({ name: 'authsec-e2e', version: '1.0.0' });
  readonly transport: StdioClientTransport;
  /** Every `tools/call` result, in order. */
  readonly results: CallToolResult[] = [];
  /** When each `notifications/tools/list_changed` arrived (ms since the epoch). */
  readonly changeTimes: number[] = [];
  pid: number | undefined;

  constructor(env: Record<string, string>) {
    super();
    this.transport = new StdioClientTransport(serverProcess(MAIN_V1_JS, env));
    this.transport.stderr?.on('data', (chunk: Buffer) => this.stderr.push(chunk.toString('utf8')));
    this.client.setNotificationHandler(ToolListChangedNotificationSchema, async () => {
      this.changes++;
      this.changeTimes.push(Date.now());
    });
  }

  /** Starts the process and initializes the MCP session. */
  async start(): Promise<this> {
    await this.client.connect(this.transport);
    this.pid = this.transport.pid ?? undefined;
    return this;
  }

  /** The names `tools/list` shows now. */
  async tools(): Promise<string[]> {
    return (await this.client.listTools()).tools.map((t) => t.name);
  }

  /** Calls a tool; the result is recorded. */
  async call(name: string, args: Record<string, unknown> = {}): Promise<CallToolResult> {
    const result = (await this.client.callTool({ name, arguments: args })) as CallToolResult;
    this.results.push(result);
    return result;
  }

  /** `structuredContent` of a login tool's result. */
  async login<T = Record<string, unknown>>(name: string, args: Record<string, unknown> = {}): Promise<T> {
    const result = await this.call(name, args);
    return (result.structuredContent ?? JSON.parse(textOf(result))) as T;
  }

  /** Resolves once a `tools/list_changed` notification arrives at or after `time` (ms since the epoch). */
  changedAfter(time: number, ms = 10_000): Promise<void> {
    return eventually(
      () => this.changeTimes.some((t) => t >= time),
      ms,
      `notifications/tools/list_changed after ${new Date(time).toISOString()}`,
    );
  }

  /** Closes the client: stdin ends, the server shuts down and exits. Resolves once the process is gone. */
  async close(): Promise<void> {
    await this.client.close();
  }
}

/** What a browser does with an authorization URL: sign in, follow the redirect to the callback. */
export async function followSignIn(
  authorizationUrl: string,
  user: { email: string; password: string },
): Promise<string> {
  const back = await signIn(authorizationUrl, user.email, user.password);
  const callback = await fetch(back);
  const page = await callback.text();
  if (!callback.ok) throw new Error(`the login callback answered ${callback.status}: ${page.slice(0, 200)}`);
  return page;
}

/**
 * A forged access token: the header and claims of `token`, re-signed (ES256, same `kid`) with a key the
 * issuer never had. Only the signature differs from a genuine token.
 */
export function forge(token: string): string {
  const [header, payload] = token.split('.');
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const signature = sign('sha256', Buffer.from(`${header}.${payload}`), {
    key: privateKey,
    dsaEncoding: 'ieee-p1363',
  });
  return `${header}.${payload}.${signature.toString('base64url')}`;
}

/** The claims of a JWT, unverified (to show a forgery carries the same claims). */
export function claimsOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<
    string,
    unknown
  >;
}

/** The recorded tool results (start of their JSON) that carry something looking like a JWT (`eyJ`). */
export function tokensIn(apps: readonly StdioApp[]): string[] {
  const found: string[] = [];
  for (const app of apps)
    for (const result of app.results) {
      const json = JSON.stringify(result);
      if (json.includes('eyJ')) found.push(json.slice(0, 300));
    }
  return found;
}
