#!/usr/bin/env node
/**
 * The sample tool set over stdio on the MCP SDK v2, both protocol eras (a client pinned to 2026-07-28 and a
 * 2025 client alike), as the brief shows it: only the `oauth_*` tools until the login, then exactly the
 * caller's tools. With nothing configured it runs on embedded development defaults (a local OAuth server,
 * PGlite and the demo tenant); the `AUTHSEC_*` variables point it at real ones, and `AUTHSEC_ACCESS_TOKEN`
 * (or `AUTHSEC_ACCESS_TOKEN_FILE`) replaces the login. Only MCP messages go to stdout.
 */
import { isAuthSecError } from '@authsec/core';
import { runMcpV2StdioServer } from '@authsec/mcp/v2/stdio';
import { createSampleTools } from '@authsec/sample-tools';

try {
  await runMcpV2StdioServer({
    appName: 'AuthSec stdio demo',
    version: '0.1.0',
    tools: createSampleTools(),
  });
} catch (error) {
  // A configuration error names the variable at fault; anything else is a bug, and its stack helps.
  process.stderr.write(
    `authsec-stdio-demo: ${isAuthSecError(error) ? error.message : String((error as Error)?.stack ?? error)}\n`,
  );
  process.exit(1);
}
