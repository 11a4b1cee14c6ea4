import {
  type AuthSec,
  type AuthSecOptions,
  createAuthSec,
  type Logger,
  MemoryAuditSink,
  type Principal,
  type ServiceAccess,
} from '@authsec/core';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import type { Server } from '@modelcontextprotocol/sdk/server/index.js';
import {
  type ClientCapabilities,
  ToolListChangedNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';
import * as z from 'zod';
import { protect } from '../../src/protect.js';
import { type AuthSecMcpServer, createAuthSecServer } from '../../src/server.js';
import type { AuthSecTool } from '../../src/types.js';
import { SAMPLE_TOOLS } from '../fixtures/sample-tools.js';
import type { FakeDirectory } from './fake-directory.js';
import { FakeLoginProvider } from './fake-login-provider.js';
import { createTestIssuer, type TestIssuer } from './tokens.js';

/** One captured log line. */
export interface LogLine {
  readonly level: string;
  readonly message: string;
  readonly fields: Record<string, unknown> | undefined;
}

/** A logger that keeps lines in memory. */
export function memoryLogger(): Logger & { lines: LogLine[] } {
  const lines: LogLine[] = [];
  const at = (level: string) => (message: string, fields?: Record<string, unknown>) => {
    lines.push({ level, message, fields });
  };
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** The sample tools with handlers that show what they received. */
export function sampleTools(): AuthSecTool[] {
  return Object.entries(SAMPLE_TOOLS).map(([name, requirement]) => {
    if (name === 'hello') return protect('hello', (args) => `Hello, ${args._user_info.email}!`);
    if (name === 'create_resource') {
      return protect(
        name,
        requirement,
        (args) => [{ type: 'text', text: `Resource '${args.name ?? 'Unnamed'}' created successfully!` }],
        { description: 'Creates a resource', inputSchema: z.object({ name: z.string().min(1).optional() }) },
      );
    }
    if (name === 'calculator') {
      return protect(
        name,
        requirement,
        (args) => ({
          content: [{ type: 'text', text: String(Number(args.a) + Number(args.b)) }],
          structuredContent: { sum: Number(args.a) + Number(args.b) },
        }),
        {
          inputSchema: {
            type: 'object',
            properties: { a: { type: 'number' }, b: { type: 'number' } },
            required: ['a', 'b'],
          },
          annotations: { readOnlyHint: true },
        },
      );
    }
    return protect(name, requirement, (args) => `${name} accessed by ${args._user_info.email}`);
  });
}

/** Engine and tokens for tests. */
export interface TestEngine {
  readonly authsec: AuthSec;
  readonly sink: MemoryAuditSink;
  readonly logger: ReturnType<typeof memoryLogger>;
  readonly issuer: TestIssuer;
  readonly audience: string;
  /** A token for `claims` with this engine's audience. */
  token(claims: Record<string, unknown>): string;
  /** A verified principal for `claims`. */
  principal(claims: Record<string, unknown>): Promise<Principal>;
}

/** Creates an engine trusting a fresh test issuer. */
export function createTestEngine(
  options: { audience?: string } & Partial<Omit<AuthSecOptions, 'issuers' | 'audience'>> = {},
): TestEngine {
  const issuer = createTestIssuer();
  const audience = options.audience ?? 'urn:authsec:test-mcp';
  const sink = new MemoryAuditSink();
  const logger = memoryLogger();
  const authsec = createAuthSec({
    logger,
    ...options,
    issuers: [issuer.options],
    audience,
    audit: { sinks: [sink] },
  });
  const token = (claims: Record<string, unknown>) => issuer.sign({ aud: audience, ...claims });
  return {
    authsec,
    sink,
    logger,
    issuer,
    audience,
    token,
    principal: (claims) => authsec.authenticate(token(claims)),
  };
}

/** An SDK client connected in memory to a new connection of `mcp`. */
export interface TestClient {
  readonly client: Client;
  readonly server: Server;
  /** How many `notifications/tools/list_changed` arrived. */
  listChanged(): number;
  /** Resolves at the next `list_changed` (rejects after `ms`). */
  nextListChanged(ms?: number): Promise<void>;
  /** Names from `tools/list`. */
  toolNames(): Promise<string[]>;
  close(): Promise<void>;
}

/** Connects an official SDK `Client` (declaring `capabilities`) to a new in-memory connection of `mcp`. */
export async function connectClient(
  mcp: AuthSecMcpServer,
  connectionId: string,
  capabilities: ClientCapabilities = {},
): Promise<TestClient> {
  const [clientTransport, serverTransport] = InMemoryTransport.createLinkedPair();
  const server = mcp.createServer(connectionId);
  await server.connect(serverTransport);
  const client = new Client({ name: 'test-client', version: '1.0.0' }, { capabilities });
  let count = 0;
  let waiters: (() => void)[] = [];
  client.setNotificationHandler(ToolListChangedNotificationSchema, async () => {
    count++;
    const ready = waiters;
    waiters = [];
    for (const resolve of ready) resolve();
  });
  await client.connect(clientTransport);
  return {
    client,
    server,
    listChanged: () => count,
    nextListChanged(ms = 2000) {
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no tools/list_changed arrived')), ms);
        waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
    async toolNames() {
      return (await client.listTools()).tools.map((t) => t.name);
    },
    close: () => client.close(),
  };
}

/** A whole in-memory application: engine, fake login, server. */
export interface TestApp extends TestEngine {
  readonly login: FakeLoginProvider;
  readonly mcp: AuthSecMcpServer;
}

/** Builds the sample application over the fake login. */
export async function createTestApp(
  options: {
    tools?: AuthSecTool[];
    services?: (principal: Principal) => ServiceAccess;
    directory?: FakeDirectory;
  } = {},
): Promise<TestApp> {
  const engine = createTestEngine(options.directory ? { directory: options.directory } : {});
  const login = new FakeLoginProvider(engine.authsec);
  const mcp = createAuthSecServer({
    name: 'test-server',
    version: '1.0.0',
    tools: options.tools ?? sampleTools(),
    authsec: engine.authsec,
    login,
    ...(options.services ? { services: options.services } : {}),
    ...(options.directory ? { directory: options.directory } : {}),
  });
  return { ...engine, login, mcp };
}

/** Waits until `check` passes (polling), or fails after `ms`. */
export async function eventually(check: () => void | Promise<void>, ms = 2000): Promise<void> {
  const started = Date.now();
  for (;;) {
    try {
      await check();
      return;
    } catch (error) {
      if (Date.now() - started > ms) throw error;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
}
