import type { Principal, Requirement, ServiceAccess } from '@authsec/core';
import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js';
import type {
  LoggingLevel,
  ProgressToken,
  ServerNotification,
  ServerRequest,
} from '@modelcontextprotocol/sdk/types.js';

/**
 * The contract between the MCP server (`server.ts`), the tool wrappers (`protect.ts`) and the tool-based login
 * (`login/`). Plain types only.
 */

import type { UserInfo } from './user-info.js';

export type { UserInfo };

/** What every tool handler receives as its second argument. */
export interface ToolContext {
  /** The caller, for protected tools always set. */
  readonly user: UserInfo;
  /** The full verified principal (effective claims). */
  readonly principal: Principal;
  /** The caller's tenant id. */
  readonly tenant: string;
  /** The login session behind this call (tool-based login), or the MCP session id over HTTP. */
  readonly sessionId: string | undefined;
  /** Service credentials of the caller's tenant. */
  readonly services: ServiceAccess;
  /** Aborted when the client cancels the request or the connection closes. */
  readonly signal: AbortSignal;
  /**
   * The token the client sent in this call's `_meta.progressToken`, or `undefined` when it wants no progress.
   * Report progress by sending `notifications/progress` with it through {@link ToolContext.sendNotification}.
   */
  readonly progressToken: ProgressToken | undefined;
  /**
   * Sends a notification that belongs to this call (over Streamable HTTP it travels on the call's own response
   * stream): `notifications/progress`, `notifications/message`... Does nothing once the call is cancelled.
   */
  sendNotification(notification: ServerNotification): Promise<void>;
  /**
   * Sends a request to the client on behalf of this call (`sampling/createMessage`, `elicitation/create`,
   * `roots/list`) and resolves with its result, validated by `resultSchema` (the SDK's `CreateMessageResultSchema`,
   * `ElicitResultSchema`...). Cancelled with the call (`signal`) unless `options.signal` says otherwise; rejects
   * with the client's error (a client without the capability answers "Method not found") or after the SDK's
   * request timeout (60 s by default, `options.timeout`).
   */
  readonly sendRequest: RequestHandlerExtra<ServerRequest, ServerNotification>['sendRequest'];
  /**
   * Sends a log message (`notifications/message`) that belongs to this call, unless `level` is below the level
   * the client chose for this connection with `logging/setLevel` (until it chooses one, every level is sent).
   * `logger` names the source. The server declares the `logging` capability for this.
   */
  log(level: LoggingLevel, data: unknown, logger?: string): Promise<void>;
}

/** The context of a public tool: the caller may not be logged in. */
export interface PublicToolContext extends Omit<ToolContext, 'user' | 'principal' | 'tenant'> {
  readonly user: UserInfo | undefined;
  readonly principal: Principal | undefined;
  readonly tenant: string | undefined;
  /** The connection the call arrived on (the login tools key their state by it). */
  readonly connectionId: string;
}

/** One MCP content item (text, image, resource...), as the SDK defines it. */
export interface ToolContent {
  readonly type: string;
  readonly [key: string]: unknown;
}

/** A full `tools/call` result. */
export interface ToolResult {
  readonly content: readonly ToolContent[];
  readonly structuredContent?: Record<string, unknown>;
  readonly isError?: boolean;
  readonly _meta?: Record<string, unknown>;
}

/** What a handler may return: a full result, a list of content items (as in the brief), or plain text. */
export type ToolReturn = ToolResult | readonly ToolContent[] | string;

/** Arguments as a protected handler sees them: the client's arguments plus `_user_info`. */
export type ToolArguments<A> = A & { readonly _user_info: UserInfo };

/** A protected tool's handler. */
export type ToolHandler<A = Record<string, unknown>> = (
  args: ToolArguments<A>,
  context: ToolContext,
) => ToolReturn | Promise<ToolReturn>;

/** A public tool's handler. */
export type PublicToolHandler<A = Record<string, unknown>> = (
  args: A,
  context: PublicToolContext,
) => ToolReturn | Promise<ToolReturn>;

/** A JSON Schema object for a tool's input (`type: 'object'`). */
export type JsonSchemaObject = { readonly type: 'object'; readonly [key: string]: unknown };

/** A tool as the server registers it. Build with `protect()` or `publicTool()`. */
export interface AuthSecTool {
  readonly name: string;
  readonly description: string | undefined;
  /** `undefined` for public tools; `{}` for "any authenticated caller". */
  readonly requirement: Requirement | undefined;
  readonly public: boolean;
  /** JSON Schema advertised in `tools/list`. */
  readonly inputSchema: JsonSchemaObject;
  /** MCP tool annotations, passed through. */
  readonly annotations: Record<string, unknown> | undefined;
  /**
   * Validates and normalises client arguments (after `_user_info` was stripped); throws an `AuthSecError`
   * `BAD_REQUEST` naming the invalid field.
   */
  parse(args: Record<string, unknown>): Record<string, unknown>;
  /** Runs the tool. The server has already authorized the call. */
  run(args: Record<string, unknown>, context: ToolContext | PublicToolContext): Promise<ToolResult>;
}

/**
 * The tool-based login (the brief's `oauth_*` tools), seen from the server. The server asks it who is
 * logged in on a connection, and it tells the server when that changes so the server can send
 * `notifications/tools/list_changed`.
 */
export interface LoginProvider {
  /** The `oauth_*` tools: public, always listed. */
  readonly tools: readonly AuthSecTool[];
  /**
   * The principal logged in on `connectionId` (verified again, refreshed when needed), or `undefined` when
   * nobody is, or the login expired. Throws `SERVICE_UNAVAILABLE` when it cannot tell (fail closed).
   */
  principalFor(connectionId: string): Promise<Principal | undefined>;
  /** The login session id of `connectionId`, if any (for tool contexts). */
  sessionIdFor(connectionId: string): string | undefined;
  /** Registers a listener called with a connection id whenever who is logged in there changes. */
  onChange(listener: (connectionId: string) => void): () => void;
  /** Forgets a closed connection's in-memory state (the persisted session stays until logout or expiry). */
  disconnect(connectionId: string): void;
  /** Stops timers and listeners (the callback listener included). */
  close(): Promise<void>;
}
