/**
 * The v2 client (`@modelcontextprotocol/client` 2.x) driving `apps/stdio-server` (`dist/main.js`, SDK v2) over
 * stdio, pinned to 2026-07-28 (`'modern'`, notifications on a `subscriptions/listen` stream) or in legacy mode
 * (2025 `initialize`, unsolicited notifications).
 */
import { type CallToolResult, Client } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { LoginClient, MAIN_JS, serverProcess, textOf } from './stdio.js';

/** The protocol era a client speaks. */
export type Era = 'modern' | 'legacy';
/** Both, in the order the suites run them. */
export const ERAS: readonly Era[] = ['modern', 'legacy'];

/** One v2 client with its own v2 stdio server process. */
export class V2StdioApp extends LoginClient {
  readonly client: Client;
  readonly transport: StdioClientTransport;

  constructor(
    readonly era: Era,
    env: Record<string, string>,
  ) {
    super();
    this.client = new Client(
      { name: 'authsec-e2e-v2', version: '1.0.0' },
      era === 'modern' ? { versionNegotiation: { mode: { pin: '2026-07-28' } } } : {},
    );
    this.transport = new StdioClientTransport(serverProcess(MAIN_JS, env));
    this.transport.stderr?.on('data', (chunk: Buffer) => this.stderr.push(chunk.toString('utf8')));
    this.client.setNotificationHandler('notifications/tools/list_changed', () => {
      this.changes++;
    });
  }

  /** Connects (discover or initialize); a 2026-07-28 client then listens for list changes. */
  async start(): Promise<this> {
    try {
      await this.client.connect(this.transport);
      if (this.era === 'modern') await this.client.listen({ toolsListChanged: true });
    } catch (error) {
      throw new Error(`the v2 stdio server did not start: ${String(error)}\n${this.stderrTail()}`);
    }
    return this;
  }

  /** The names `tools/list` shows now, sorted. */
  async tools(): Promise<string[]> {
    return (await this.client.listTools()).tools.map((t) => t.name).sort();
  }

  async call(name: string, args: Record<string, unknown> = {}): Promise<CallToolResult> {
    return (await this.client.callTool({ name, arguments: args })) as CallToolResult;
  }

  /** `structuredContent` of a login tool's result. */
  async login<T = Record<string, unknown>>(name: string, args: Record<string, unknown> = {}): Promise<T> {
    const result = await this.call(name, args);
    return (result.structuredContent ?? JSON.parse(textOf(result))) as T;
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}

/** Sorted copy (v2 lists are compared as sets: registration order is not part of the contract). */
export const sorted = (names: readonly string[]): string[] => [...names].sort();
