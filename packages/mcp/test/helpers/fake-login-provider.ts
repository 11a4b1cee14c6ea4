import type { AuthSec, Principal } from '@authsec/core';
import * as z from 'zod';
import { publicTool } from '../../src/protect.js';
import type { AuthSecTool, LoginProvider } from '../../src/types.js';

/**
 * A TEST DOUBLE of the tool-based login: it keeps one principal per connection in memory and announces every
 * change, like the real provider does after a browser login, a logout or an expiry. Its tools are a minimal
 * stand-in for the real `oauth_*` tools: `oauth_authenticate { jwt_token }` verifies a token with the engine.
 */
export class FakeLoginProvider implements LoginProvider {
  readonly tools: readonly AuthSecTool[];
  readonly disconnected: string[] = [];
  closed = false;
  /** When set, `principalFor` throws it (a store that cannot answer). */
  failWith: Error | undefined;
  private readonly principals = new Map<string, Principal>();
  private readonly listeners = new Set<(connectionId: string) => void>();

  constructor(authsec: AuthSec) {
    this.tools = [
      publicTool(
        'oauth_authenticate',
        async (args, context) => {
          const principal = await authsec.authenticate(args.jwt_token);
          this.login(context.connectionId, principal);
          return JSON.stringify({ status: 'authenticated' });
        },
        { description: 'Log in with a token', inputSchema: z.object({ jwt_token: z.string() }) },
      ),
      publicTool('oauth_status', (_args, context) =>
        context.user ? `authenticated as ${context.user.email}` : 'not authenticated',
      ),
      publicTool('oauth_logout', (_args, context) => {
        this.logout(context.connectionId);
        return 'logged_out';
      }),
    ];
  }

  /** Logs `principal` in on `connectionId` and announces it. */
  login(connectionId: string, principal: Principal): void {
    this.principals.set(connectionId, principal);
    this.emit(connectionId);
  }

  /** Logs `connectionId` out and announces it. */
  logout(connectionId: string): void {
    this.principals.delete(connectionId);
    this.emit(connectionId);
  }

  async principalFor(connectionId: string): Promise<Principal | undefined> {
    if (this.failWith) throw this.failWith;
    return this.principals.get(connectionId);
  }

  sessionIdFor(connectionId: string): string | undefined {
    return this.principals.has(connectionId) ? `login-${connectionId}` : undefined;
  }

  onChange(listener: (connectionId: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  disconnect(connectionId: string): void {
    this.disconnected.push(connectionId);
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  private emit(connectionId: string): void {
    for (const listener of this.listeners) listener(connectionId);
  }
}
