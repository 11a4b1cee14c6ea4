/**
 * @authsec/mcp/v2/stdio: a protected v2 server over stdio, both protocol eras, with the brief's `oauth_*` login
 * (`serveProtectedStdio`, `runMcpV2StdioServer`), and `declareTools`, which puts tools written for the v1 line
 * (`protect()`/`publicTool()` of `@authsec/mcp`, the login tools among them) on a v2 server, so one definition
 * serves both SDK lines. Its declarations name the v1 line's tool types (`AuthSecTool`, `ToolContext`), so
 * TypeScript needs `@modelcontextprotocol/sdk`'s declarations installed; at run time it loads nothing of it.
 *
 * @packageDocumentation
 */

export { type RunMcpV2StdioOptions, type RunningMcpV2StdioServer, runMcpV2StdioServer } from './run.js';
export {
  type ProtectedStdioHandle,
  type ServeProtectedStdioOptions,
  STDIO_CONNECTION_ID,
  serveProtectedStdio,
} from './stdio.js';
export { declareTools, type ToolChannel } from './tools.js';
