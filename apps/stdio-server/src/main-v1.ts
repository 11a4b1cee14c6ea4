#!/usr/bin/env node
/**
 * The sample tool set over stdio on the MCP SDK v1 line (`runMcpServerWithOAuth`), kept beside the v2 entry
 * (`main.js`) for servers still on `@modelcontextprotocol/sdk` 1.x. As the brief shows it: tools hidden until the `oauth_*` login, then exactly
 * the caller's tools. With nothing configured it runs on embedded development defaults (a local OAuth server,
 * PGlite and the demo tenant); the `AUTHSEC_*` variables point it at real ones. Only MCP messages go to stdout.
 */
import { isAuthSecError } from '@authsec/core';
import { runMcpServerWithOAuth } from '@authsec/mcp';
import { createSampleTools } from '@authsec/sample-tools';

try {
  await runMcpServerWithOAuth({
    appName: 'AuthSec stdio demo',
    version: '0.1.0',
    tools: createSampleTools(),
    transport: 'stdio',
  });
} catch (error) {
  // A configuration error names the variable at fault; anything else is a bug, and its stack helps.
  process.stderr.write(
    `authsec-stdio-demo: ${isAuthSecError(error) ? error.message : String((error as Error)?.stack ?? error)}\n`,
  );
  process.exit(1);
}
