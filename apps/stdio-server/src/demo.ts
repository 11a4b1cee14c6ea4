#!/usr/bin/env node
/**
 * The brief's "Test It Out", for real: two MCP clients (the official SDK v2 `Client`) start this app's stdio
 * server (SDK v2) on embedded defaults, one pinned to protocol 2026-07-28 and the other in 2025 legacy mode;
 * each user logs in through the development OAuth server's sign-in form, and the demo shows what each one may
 * see and do. It exits non-zero as soon as a step does not behave as shown.
 *
 * Options (environment): AUTHSEC_DATA_DIR (default: a fresh temporary folder, removed at the end) and
 * AUTHSEC_DEV_IDP_PORT (default: a free port).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEMO_USERS, signIn } from '@authsec/dev-idp';
import { Client } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';

const LOGIN_TOOLS = ['oauth_start', 'oauth_authenticate', 'oauth_status', 'oauth_logout', 'oauth_user_info'];
const bold = (s: string) => (process.stdout.isTTY ? `\u001b[1m${s}\u001b[22m` : s);

class DemoFailure extends Error {}

function check(condition: unknown, what: string): asserts condition {
  if (!condition) throw new DemoFailure(what);
}

function say(line = ''): void {
  process.stdout.write(`${line}\n`);
}

function textOf(result: unknown): string {
  const content = (result as { content?: { type: string; text?: string }[] }).content ?? [];
  return content.map((c) => c.text ?? '').join('\n');
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** A protocol era of the client: 2026-07-28 (pinned) or the 2025 legacy family. */
type Era = 'modern' | 'legacy';

/** One MCP client with its own stdio server process. */
class Session {
  readonly client: Client;
  readonly transport: StdioClientTransport;
  readonly stderr: string[] = [];
  #changed: (() => void) | undefined;
  changes = 0;

  constructor(
    readonly label: string,
    readonly era: Era,
    env: Record<string, string>,
  ) {
    this.client = new Client(
      { name: 'authsec-demo', version: '0.1.0' },
      era === 'modern' ? { versionNegotiation: { mode: { pin: '2026-07-28' } } } : {},
    );
    const main = join(dirname(fileURLToPath(import.meta.url)), 'main.js');
    this.transport = new StdioClientTransport({
      command: process.execPath,
      args: [main],
      env,
      stderr: 'pipe',
    });
    this.transport.stderr?.on('data', (chunk: Buffer) => this.stderr.push(chunk.toString('utf8')));
    this.client.setNotificationHandler('notifications/tools/list_changed', () => {
      this.changes++;
      this.#changed?.();
    });
  }

  /** Connects; a 2026-07-28 client then opens a `subscriptions/listen` stream for list changes. */
  async start(): Promise<void> {
    await this.client.connect(this.transport);
    if (this.era === 'modern') await this.client.listen({ toolsListChanged: true });
  }

  /** A call the server answers as an unknown tool (hidden is unknown): the JSON-RPC error's message. */
  async refused(name: string, args: Record<string, unknown> = {}): Promise<string> {
    const answer = await this.call(name, args).then(
      (result) => new DemoFailure(`${this.label}: ${name} answered ${textOf(result)}`),
      (error: unknown) => error as Error & { code?: number },
    );
    if (answer instanceof DemoFailure) throw answer;
    check(answer.code === -32602, `${this.label}: ${name} was refused with ${answer.code}, not -32602`);
    return answer.message;
  }

  /** Resolves at the next `notifications/tools/list_changed`, or fails after `ms`. */
  nextChange(ms = 10_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new DemoFailure(`${this.label}: no tools/list_changed within ${ms} ms`)),
        ms,
      );
      this.#changed = () => {
        clearTimeout(timer);
        this.#changed = undefined;
        resolve();
      };
    });
  }

  async tools(): Promise<string[]> {
    return (await this.client.listTools()).tools.map((t) => t.name);
  }

  async call(name: string, args: Record<string, unknown> = {}) {
    return this.client.callTool({ name, arguments: args });
  }

  log(line: string): void {
    say(`  ${bold(`[${this.label}]`)} ${line}`);
  }
}

const CLOSE_TIMEOUT_MS = 5000;

async function login(session: Session, email: string, password: string): Promise<void> {
  const start = await session.call('oauth_start');
  const started = start.structuredContent as {
    status: string;
    session_id: string;
    authorization_url: string;
  };
  check(
    started.status === 'ready_for_authentication',
    `${session.label}: oauth_start did not return a login URL`,
  );
  session.log(
    `Call oauth_start → session ${started.session_id.slice(0, 8)}…, URL ${started.authorization_url.split('?')[0]}`,
  );
  const changed = session.nextChange();
  // The scripted browser opens the URL, fills in the sign-in form and is sent back to the server's loopback
  // callback, exactly as a person's browser would be.
  const back = await signIn(started.authorization_url, email, password);
  const callback = await fetch(back);
  check(callback.ok, `${session.label}: the login callback answered ${callback.status}`);
  session.log(`Opens the URL and signs in as ${email} → callback answered ${callback.status}`);
  await changed;
  session.log('Receives notifications/tools/list_changed');
}

async function main(): Promise<number> {
  const ownDir = !process.env.AUTHSEC_DATA_DIR;
  const dataDir = process.env.AUTHSEC_DATA_DIR ?? mkdtempSync(join(tmpdir(), 'authsec-demo-'));
  const port = process.env.AUTHSEC_DEV_IDP_PORT ?? String(await freePort());
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? tmpdir(),
    AUTHSEC_DATA_DIR: dataDir,
    AUTHSEC_DEV_IDP_PORT: port,
    AUTHSEC_LOG_LEVEL: 'warn',
    // Each demo client is its own user: do not resume the other's remembered login.
    AUTHSEC_REMEMBER_LOGIN: 'false',
  };
  const admin = DEMO_USERS.find((u) => u.email.startsWith('admin@'))!;
  const analyst = DEMO_USERS.find((u) => u.email.startsWith('analyst@'))!;
  const a = new Session(`${admin.email} · 2026-07-28`, 'modern', env);
  const b = new Session(`${analyst.email} · legacy`, 'legacy', env);
  say(bold('AuthSec demo: the brief\'s "Test It Out" over stdio, with the official MCP client (SDK v2)'));
  say(
    'One client is pinned to protocol 2026-07-28, the other speaks the 2025 legacy family: one server serves both.',
  );
  say(`Data folder ${dataDir} (embedded OAuth server on 127.0.0.1:${port}, PGlite, demo tenant acme-corp)`);
  say();
  try {
    say(bold('Step 1. Before authentication, tools are hidden'));
    await Promise.all([a.start(), b.start()]);
    for (const s of [a, b]) {
      const names = await s.tools();
      check(
        JSON.stringify(names) === JSON.stringify(LOGIN_TOOLS),
        `${s.label}: expected only the login tools, got ${names}`,
      );
      s.log(`Show me available tools → ${names.join(', ')}`);
    }
    a.log(`Call admin_panel before login → refused like an unknown tool: ${await a.refused('admin_panel')}`);

    say();
    say(bold('Steps 2-4. Each user logs in through the browser, with PKCE'));
    await login(a, admin.email, admin.password);
    await login(b, analyst.email, analyst.password);

    say();
    say(bold('Step 5. Each user sees only the tools they may use'));
    const adminTools = await a.tools();
    const analystTools = await b.tools();
    a.log(`Tools: ${adminTools.filter((t) => !LOGIN_TOOLS.includes(t)).join(', ')}`);
    b.log(`Tools: ${analystTools.filter((t) => !LOGIN_TOOLS.includes(t)).join(', ')}`);
    check(
      adminTools.includes('admin_panel') && adminTools.includes('deploy_production'),
      'admin misses admin tools',
    );
    check(
      !analystTools.includes('admin_panel') && !analystTools.includes('create_resource'),
      'analyst sees admin tools',
    );
    check(
      analystTools.includes('view_reports') && analystTools.includes('view_analytics'),
      'analyst misses reports',
    );

    say();
    say(bold("Step 6. Tools run with the caller's identity"));
    const hello = textOf(await a.call('hello'));
    check(hello === `Hello, ${admin.email}!`, `hello answered ${hello}`);
    a.log(`Call hello → "${hello}"`);
    const panel = textOf(await a.call('admin_panel'));
    check(panel === 'Admin panel accessed', `admin_panel answered ${panel}`);
    a.log(`Call admin_panel → "${panel}"`);
    const created = textOf(await a.call('create_resource', { name: 'Project Alpha' }));
    check(
      created === "Resource 'Project Alpha' created successfully!",
      `create_resource answered ${created}`,
    );
    a.log(`Call create_resource name="Project Alpha" → "${created}"`);
    const who = (await a.call('oauth_user_info')).structuredContent as { user_info?: { email?: string } };
    check(who.user_info?.email === admin.email, 'oauth_user_info names another user');
    b.log(`Call hello → "${textOf(await b.call('hello'))}"`);
    const reports = textOf(await b.call('view_reports'));
    check(reports === 'Business reports', `view_reports answered ${reports}`);
    b.log(`Call view_reports → "${reports}"`);
    b.log(
      `Call create_resource (needs scope write; hidden, called anyway) → refused: ${await b.refused('create_resource', { name: 'Nope' })}`,
    );
    b.log(`Call admin_panel (hidden, called anyway) → refused: ${await b.refused('admin_panel')}`);

    say();
    say(bold('Logout hides the tools again'));
    const changed = a.nextChange();
    const out = (await a.call('oauth_logout')).structuredContent as { status?: string };
    check(out.status === 'logged_out', `oauth_logout answered ${JSON.stringify(out)}`);
    await changed;
    const after = await a.tools();
    check(
      JSON.stringify(after) === JSON.stringify(LOGIN_TOOLS),
      `after logout the admin still sees ${after}`,
    );
    a.log(`Call oauth_logout → logged_out, list_changed, tools: ${after.join(', ')}`);
    const still = await b.tools();
    check(still.includes('view_reports'), 'the analyst was logged out by the admin logout');
    b.log('Still logged in: a logout ends only its own session');
    say();
    say(bold('✓ Every step behaved as shown.'));
    return 0;
  } catch (error) {
    say();
    say(`✗ ${error instanceof DemoFailure ? error.message : String((error as Error)?.stack ?? error)}`);
    for (const s of [a, b]) {
      const tail = s.stderr.join('').trim().split('\n').slice(-15).join('\n');
      if (tail) say(`--- server stderr of ${s.label} (last lines) ---\n${tail}`);
    }
    return 1;
  } finally {
    // Bounded: after a failure a half-open session may never finish closing, and the demo must still end.
    await Promise.race([
      Promise.allSettled([a.client.close(), b.client.close()]),
      new Promise((resolve) => setTimeout(resolve, CLOSE_TIMEOUT_MS).unref()),
    ]);
    for (const s of [a, b]) s.transport.close().catch(() => {});
    if (ownDir) rmSync(dataDir, { recursive: true, force: true });
  }
}

// Exits with the demo's code even if a server process or a stream is still winding down (the servers end on
// their stdin's end).
process.exit(await main());
