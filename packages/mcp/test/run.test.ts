import { PassThrough } from 'node:stream';
import { isAuthSecError } from '@authsec/core';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { publicTool } from '../src/protect.js';
import { runMcpServerWithOAuth } from '../src/run.js';
import { JOHN, JOHN_TOOLS } from './fixtures/sample-tools.js';
import { createTestEngine, sampleTools } from './helpers/app.js';
import { FakeLoginProvider } from './helpers/fake-login-provider.js';
import { connectHttpClient, freePort } from './helpers/http.js';
import { createTestIssuer } from './helpers/tokens.js';

const LOGIN_TOOLS = ['oauth_authenticate', 'oauth_status', 'oauth_logout'];

/** A client speaking to a server over a pair of in-process pipes, as an MCP client does over stdio. */
async function stdioPair() {
  const toServer = new PassThrough();
  const fromServer = new PassThrough();
  const output: string[] = [];
  fromServer.on('data', (chunk: Buffer) => output.push(chunk.toString('utf8')));
  const client = new Client({ name: 'stdio-test-client', version: '1.0.0' });
  let listChanged = 0;
  client.setNotificationHandler(ToolListChangedNotificationSchema, async () => {
    listChanged++;
  });
  return {
    toServer,
    fromServer,
    output,
    client,
    listChanged: () => listChanged,
    // The SDK's stdio server transport is a plain newline-delimited JSON-RPC transport: reversed, it is a client.
    connect: () => client.connect(new StdioServerTransport(fromServer, toServer)),
  };
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('runMcpServerWithOAuth over stdio', () => {
  it('walks the brief’s flow and closes (flushing audit) when stdin ends', async () => {
    const engine = createTestEngine();
    const login = new FakeLoginProvider(engine.authsec);
    const pipes = await stdioPair();
    const running = await runMcpServerWithOAuth({
      appName: 'My Secure MCP Server',
      version: '1.2.3',
      tools: sampleTools(),
      authsec: engine.authsec,
      login,
      stdio: { stdin: pipes.toServer, stdout: pipes.fromServer },
      handleSignals: false,
      env: {},
    });
    expect(running.transport).toBe('stdio');
    expect(running.url).toBeUndefined();
    await pipes.connect();
    expect(pipes.client.getServerVersion()).toEqual({ name: 'My Secure MCP Server', version: '1.2.3' });
    const names = async () => (await pipes.client.listTools()).tools.map((t) => t.name);
    expect(await names()).toEqual(LOGIN_TOOLS);
    await pipes.client.callTool({ name: 'oauth_authenticate', arguments: { jwt_token: engine.token(JOHN) } });
    expect(await names()).toEqual([...LOGIN_TOOLS, ...JOHN_TOOLS]);
    expect(pipes.listChanged()).toBe(1);
    const hello = (await pipes.client.callTool({ name: 'hello', arguments: {} })) as {
      content: { text: string }[];
    };
    expect(hello.content[0]?.text).toBe('Hello, john@company.com!');

    let sinkClosed = false;
    const close = engine.sink.close.bind(engine.sink);
    engine.sink.close = async () => {
      sinkClosed = true;
      await close();
    };
    pipes.toServer.end();
    await running.closed;
    expect(login.closed).toBe(true);
    expect(sinkClosed).toBe(true);
    // stdout carried MCP messages only.
    const lines = pipes.output.join('').split('\n').filter(Boolean);
    expect(lines.length).toBeGreaterThan(4);
    for (const line of lines) expect(JSON.parse(line)).toMatchObject({ jsonrpc: '2.0' });
  });

  it('builds the engine from options, logs and audits on stderr, and never writes to stdout', async () => {
    const stdout = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    const stderrLines: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      stderrLines.push(String(chunk));
      return true;
    });
    const issuer = createTestIssuer();
    const pipes = await stdioPair();
    const running = await runMcpServerWithOAuth({
      appName: 'stdio-options',
      tools: [publicTool('server_time', () => 'now'), ...sampleTools()],
      authsec: { issuers: [issuer.options], audience: 'urn:authsec:stdio-options' },
      stdio: { stdin: pipes.toServer, stdout: pipes.fromServer },
      handleSignals: false,
      env: {},
    });
    await pipes.connect();
    expect((await pipes.client.listTools()).tools.map((t) => t.name)).toEqual(['server_time']);
    await pipes.client.callTool({ name: 'server_time', arguments: {} });
    await pipes.client.callTool({ name: 'admin_panel', arguments: {} });
    await running.close();
    await running.close();
    expect(stdout).not.toHaveBeenCalled();
    const stderr = stderrLines.join('');
    expect(stderr).toContain('No login provider configured');
    expect(stderr).toContain('"action":"tool.call"');
    expect(stderr).toContain('"target":"server_time"');
    expect(stderr).toContain('"reason":"TOKEN_MISSING"');
  });
});

describe('runMcpServerWithOAuth over HTTP', () => {
  it('serves per-caller lists at /mcp and keeps the login tools off HTTP unless allowed', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}/mcp`;
    const engine = createTestEngine({ audience: url });
    const login = new FakeLoginProvider(engine.authsec);
    const running = await runMcpServerWithOAuth({
      appName: 'HTTP App',
      tools: sampleTools(),
      transport: 'http',
      port,
      authsec: engine.authsec,
      login,
      authorizationServers: [engine.issuer.issuer],
      handleSignals: false,
      env: {},
    });
    try {
      expect(running.url).toBe(url);
      expect(login.closed).toBe(true);
      const metadata = await (
        await fetch(`http://127.0.0.1:${port}/.well-known/oauth-protected-resource`)
      ).json();
      expect(metadata).toMatchObject({ resource: url, resource_name: 'HTTP App' });
      const john = await connectHttpClient(url, engine.token(JOHN));
      expect((await john.client.listTools()).tools.map((t) => t.name)).toEqual(JOHN_TOOLS);
      await john.close();
    } finally {
      await running.close();
    }
  });

  it('reads the AUTHSEC_* environment when options are absent', async () => {
    const port = await freePort();
    vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    const running = await runMcpServerWithOAuth({
      appName: 'env-app',
      tools: sampleTools(),
      transport: 'http',
      handleSignals: false,
      env: {
        AUTHSEC_ISSUER: 'https://idp.env.example',
        AUTHSEC_RESOURCE_URL: `http://127.0.0.1:${port}/mcp`,
        PORT: String(port),
        AUTHSEC_LOG_LEVEL: 'error',
      },
    });
    try {
      const metadata = await (
        await fetch(`http://127.0.0.1:${port}/.well-known/oauth-protected-resource/mcp`)
      ).json();
      expect(metadata).toMatchObject({
        resource: `http://127.0.0.1:${port}/mcp`,
        authorization_servers: ['https://idp.env.example'],
      });
    } finally {
      await running.close();
    }
  });
});

describe('runMcpServerWithOAuth configuration errors', () => {
  async function codeOf(promise: Promise<unknown>): Promise<string> {
    try {
      await promise;
    } catch (error) {
      return isAuthSecError(error) ? `${error.code}: ${error.message}` : `${String(error)}`;
    }
    return 'resolved';
  }

  it('names the missing or wrong variable', async () => {
    const base = { appName: 'x', tools: [], handleSignals: false } as const;
    // In production nothing is embedded: each missing piece is named.
    const prod = { NODE_ENV: 'production' };
    expect(await codeOf(runMcpServerWithOAuth({ ...base, env: prod }))).toMatch(
      /^CONFIG_INVALID: AUTHSEC_ISSUER/,
    );
    const issuer = { ...prod, AUTHSEC_ISSUER: 'https://idp.example' };
    expect(await codeOf(runMcpServerWithOAuth({ ...base, transport: 'http', port: 0, env: issuer }))).toMatch(
      /^CONFIG_INVALID: AUTHSEC_RESOURCE_URL/,
    );
    expect(await codeOf(runMcpServerWithOAuth({ ...base, env: issuer }))).toMatch(
      /^CONFIG_INVALID: AUTHSEC_MASTER_KEY/,
    );
    const keyed = { ...issuer, AUTHSEC_MASTER_KEY: Buffer.alloc(32, 1).toString('base64') };
    expect(await codeOf(runMcpServerWithOAuth({ ...base, env: keyed }))).toMatch(
      /^CONFIG_INVALID: AUTHSEC_DATABASE_URL/,
    );
    // Off loopback, the embedded development IdP is refused too.
    expect(await codeOf(runMcpServerWithOAuth({ ...base, env: { HOST: '0.0.0.0' } }))).toMatch(
      /^CONFIG_INVALID: AUTHSEC_ISSUER is required \(HOST 0.0.0.0/,
    );
    expect(await codeOf(runMcpServerWithOAuth({ ...base, env: { AUTHSEC_ISSUR: 'x' } }))).toMatch(
      /did you mean AUTHSEC_ISSUER/,
    );
  });

  it('throws TypeError for misuse', async () => {
    await expect(runMcpServerWithOAuth({ appName: '', tools: [] })).rejects.toThrow(TypeError);
    await expect(
      runMcpServerWithOAuth({ appName: 'x', tools: [], transport: 'ws' as never, env: {} }),
    ).rejects.toThrow(TypeError);
  });
});
