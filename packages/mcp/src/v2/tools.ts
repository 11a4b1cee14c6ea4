/**
 * Tools built with `protect()`/`publicTool()` of `@authsec/mcp` (and the `oauth_*` login tools, which are built
 * the same way) declared on a v2 {@link ProtectedMcpServer}: one tool definition serves both SDK lines. The
 * tool's own JSON Schema is what `tools/list` shows and its own `parse` is what validates a call, wrapped as the
 * Standard Schema the v2 SDK takes.
 */

import { isAuthSecError } from '@authsec/core';
import type { CallToolResult, StandardSchemaWithJSON, ToolAnnotations } from '@modelcontextprotocol/server';
import type { AuthSecTool, PublicToolContext } from '../types.js';
import { USER_INFO_KEY } from '../user-info.js';
import type { AuthSecContext, ProtectedMcpServer } from './server.js';

/** Where declared tools run: the connection id the login keys its state by, and its login session. */
export interface ToolChannel {
  /** The connection the tools serve (stdio has one). */
  readonly connectionId: string;
  /** The login session behind a call, for `context.sessionId`. Default: none. */
  readonly sessionIdFor?: (connectionId: string) => string | undefined;
}

/** The tool's JSON Schema and `parse` as a Standard Schema; a client's `_user_info` never reaches `parse`. */
function schemaOf(tool: AuthSecTool): StandardSchemaWithJSON<Record<string, unknown>> {
  return {
    '~standard': {
      version: 1,
      vendor: 'authsec',
      validate: (value: unknown) => {
        const { [USER_INFO_KEY]: _forged, ...args } =
          typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {};
        try {
          return { value: tool.parse(args) };
        } catch (error) {
          return {
            issues: [{ message: isAuthSecError(error) ? error.message : 'Invalid arguments' }],
          };
        }
      },
      jsonSchema: {
        input: () => tool.inputSchema as Record<string, unknown>,
        output: () => tool.inputSchema as Record<string, unknown>,
      },
    },
  };
}

/** The v1 tool context, from the v2 handler's {@link AuthSecContext}. */
function contextOf(context: AuthSecContext, channel: ToolChannel): PublicToolContext {
  const req = context.sdk.mcpReq;
  const progressToken = (req._meta as { progressToken?: string | number } | undefined)?.progressToken;
  return {
    user: context.user,
    principal: context.principal,
    tenant: context.tenant,
    sessionId: channel.sessionIdFor?.(channel.connectionId),
    services: context.services,
    signal: req.signal,
    progressToken,
    connectionId: channel.connectionId,
    sendNotification: (notification) => req.notify(notification as never),
    sendRequest: ((request: never, schema: never, options: never) =>
      req.send(request, schema, options)) as unknown as PublicToolContext['sendRequest'],
    log: (level, data, logger) => req.log(level, data, logger),
  };
}

/**
 * Declares `tools` (from `protect()`, `publicTool()` or a login provider's `tools`) on a v2 server: a public
 * tool is `'public'`, a protected one keeps its requirement; the handler runs with the v1 context (its
 * `connectionId` is `channel.connectionId`, default `'http'`: over HTTP the v2 line has no tool login, whose
 * state the connection keys). Names must be unique on `server` (`TypeError` otherwise).
 */
export function declareTools(
  server: ProtectedMcpServer,
  tools: readonly AuthSecTool[],
  channel: ToolChannel = { connectionId: 'http' },
): void {
  for (const tool of tools) {
    server.registerTool(
      tool.name,
      {
        ...(tool.description === undefined ? {} : { description: tool.description }),
        inputSchema: schemaOf(tool),
        ...(tool.annotations === undefined ? {} : { annotations: tool.annotations as ToolAnnotations }),
        requirement: tool.public ? 'public' : (tool.requirement ?? {}),
      },
      async (args, context) => {
        // The v2 wrapper added the verified `_user_info`; a protected v1 tool adds its own from the context.
        const { [USER_INFO_KEY]: _user, ...rest } = args as Record<string, unknown>;
        return (await tool.run(rest, contextOf(context, channel))) as CallToolResult;
      },
    );
  }
}
