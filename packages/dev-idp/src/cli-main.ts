import { isLoopbackHost } from './configuration.js';
import { isDevIdpError } from './errors.js';
import { createJsonLinesLogger } from './logger.js';
import { type DevIdp, type DevIdpOptions, startDevIdp } from './server.js';

/** The command's usage text. */
export const USAGE = `usage: authsec-dev-idp [--port <n>] [--host <address>] [--users <file>] [--issuer <url>]

Runs the AuthSec development OAuth 2.1 / OpenID Connect server. DEVELOPMENT ONLY.
  --port <n>        TCP port (default 4000; 0 picks a free port)
  --host <address>  loopback address to bind (default 127.0.0.1)
  --users <file>    JSON array of users (default: the demo users of tenant acme-corp)
  --issuer <url>    issuer identifier (default http://<host>:<port>)
  --help            show this text`;

/** What the command line asked for. */
export interface CliOptions {
  port: number;
  host: string;
  usersFile?: string;
  issuer?: string;
  help: boolean;
}

/** {@link parseCliArgs}'s result: options, or a usage error message that names the flag. */
export type CliParseResult = { ok: true; options: CliOptions } | { ok: false; message: string };

const VALUE_FLAGS = new Set(['--port', '--host', '--users', '--issuer']);

/** Parses the command line (without `node` and the script). Pure: never exits, never prints. */
export function parseCliArgs(argv: readonly string[]): CliParseResult {
  const values = new Map<string, string>();
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '--help' || arg === '-h') {
      help = true;
      continue;
    }
    const eq = arg.indexOf('=');
    const flag = arg.startsWith('--') && eq > 0 ? arg.slice(0, eq) : arg;
    if (!VALUE_FLAGS.has(flag)) {
      return {
        ok: false,
        message: arg.startsWith('-') ? `unknown flag ${flag}` : `unexpected argument ${arg}`,
      };
    }
    let value: string | undefined;
    if (flag !== arg) value = arg.slice(eq + 1);
    else {
      value = argv[i + 1];
      if (value === undefined || value.startsWith('--'))
        return { ok: false, message: `${flag} needs a value` };
      i++;
    }
    if (values.has(flag)) return { ok: false, message: `${flag} given twice` };
    values.set(flag, value);
  }

  const portText = values.get('--port') ?? '4000';
  const port = /^\d{1,5}$/.test(portText) ? Number(portText) : Number.NaN;
  if (!(port >= 0 && port <= 65535)) {
    return { ok: false, message: `--port must be an integer from 0 to 65535 (got "${portText}")` };
  }
  const host = values.get('--host') ?? '127.0.0.1';
  if (!isLoopbackHost(host)) {
    return {
      ok: false,
      message: `--host must be a loopback address such as 127.0.0.1 or ::1 (got "${host}")`,
    };
  }
  const issuer = values.get('--issuer');
  if (issuer !== undefined) {
    const url = URL.parse(issuer);
    if (
      !url ||
      (url.protocol !== 'http:' && url.protocol !== 'https:') ||
      url.pathname !== '/' ||
      url.search ||
      url.hash
    ) {
      return {
        ok: false,
        message: `--issuer must be an http(s) origin such as http://localhost:4000 (got "${issuer}")`,
      };
    }
  }
  const usersFile = values.get('--users');
  if (usersFile === '') return { ok: false, message: '--users needs a file name' };
  return {
    ok: true,
    options: {
      port,
      host,
      help,
      ...(usersFile === undefined ? {} : { usersFile }),
      ...(issuer === undefined ? {} : { issuer }),
    },
  };
}

/** The start-up banner: issuer, endpoints, users with their passwords, clients, and "development only". */
export function formatBanner(idp: DevIdp): string {
  const users = idp.users.map(
    (user) =>
      `    ${user.email}  password: ${user.password}  tenant: ${user.tenant_id}  roles: ${user.roles.join(', ') || '-'}  scopes: ${user.scopes.join(' ') || '-'}`,
  );
  return [
    '',
    '  AuthSec development IdP: DEVELOPMENT ONLY. Never use it in production.',
    '',
    `  issuer      ${idp.issuer}`,
    `  discovery   ${idp.issuer}/.well-known/openid-configuration`,
    `  jwks        ${idp.jwksUrl}`,
    '  client      authsec-dev (public; loopback redirect .../callback on any port; device flow)',
    '  users',
    ...users,
    '',
    '  Press Ctrl+C to stop.',
    '',
  ].join('\n');
}

/** Where {@link runCli} writes and what it reads; injectable for tests. */
export interface CliIo {
  stdout: { write(chunk: string): unknown };
  stderr: { write(chunk: string): unknown };
  env: Readonly<Record<string, string | undefined>>;
  /** Resolves when the process should stop (default: SIGINT or SIGTERM). */
  stopSignal?: Promise<unknown>;
}

// The first SIGINT/SIGTERM stops gracefully; a second one exits at once.
function waitForSignal(): Promise<string> {
  return new Promise((resolve) => {
    let received = false;
    const onSignal = (signal: string) => {
      if (received) process.exit(130);
      received = true;
      resolve(signal);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}

/**
 * Runs the command: 0 after a clean stop, 1 when the server cannot start, 2 on bad usage (the message names
 * the flag).
 */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  const parsed = parseCliArgs(argv);
  if (!parsed.ok) {
    io.stderr.write(`authsec-dev-idp: ${parsed.message}\n${USAGE}\n`);
    return 2;
  }
  if (parsed.options.help) {
    io.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const { port, host, usersFile, issuer } = parsed.options;
  const options: DevIdpOptions = {
    port,
    host,
    env: io.env,
    logger: createJsonLinesLogger({ level: 'info', stream: io.stderr }),
    ...(usersFile === undefined ? {} : { usersFile }),
    ...(issuer === undefined ? {} : { issuer }),
  };
  // Listen for signals before starting, so a stop request that arrives early is not lost or fatal.
  const stop = io.stopSignal ?? waitForSignal();
  let idp: DevIdp;
  try {
    idp = await startDevIdp(options);
  } catch (error) {
    if (isDevIdpError(error) && error.code === 'INVALID_USERS') {
      io.stderr.write(`authsec-dev-idp: --users: ${error.message}\n`);
      return 2;
    }
    const code = (error as { code?: unknown }).code;
    const message =
      code === 'EADDRINUSE'
        ? `--port ${port} is already in use`
        : error instanceof Error
          ? error.message
          : String(error);
    io.stderr.write(`authsec-dev-idp: ${message}\n`);
    return 1;
  }
  io.stderr.write(`${formatBanner(idp)}\n`);
  await stop;
  await idp.close();
  return 0;
}
