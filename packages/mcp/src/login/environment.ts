import { readFileSync, statSync } from 'node:fs';
import {
  type AuthSec,
  type AuthSecEnvOptions,
  AuthSecError,
  type Logger,
  type Principal,
  toAuthSecError,
} from '@authsec/core';
import type { LoginProvider } from '../types.js';
import { createChangeListeners } from './listeners.js';

/** Where the token comes from: `AUTHSEC_ACCESS_TOKEN` or `AUTHSEC_ACCESS_TOKEN_FILE` (`authSecOptionsFromEnv`). */
export type EnvironmentCredential = NonNullable<AuthSecEnvOptions['accessToken']>;

/** Options of {@link createEnvironmentLogin}. */
export interface EnvironmentLoginOptions {
  /** The engine: verifies the token like any other (signature, issuer, audience, lifetime, directory claims). */
  readonly authsec: AuthSec;
  readonly credential: EnvironmentCredential;
  /** Default: the engine's logger. Never receives the token. */
  readonly logger?: Logger;
}

const MAX_TIMER_MS = 2_147_000_000;
/** How often a token file is looked at for a replacement, ms. */
const FILE_CHECK_MS = 2000;

/**
 * Credentials from the environment for stdio, as the MCP specification recommends there: the caller is the
 * token in `AUTHSEC_ACCESS_TOKEN` (or the file `AUTHSEC_ACCESS_TOKEN_FILE` names), verified at start and again on
 * every request. A token the engine refuses at start is an error naming the variable and the refusal's code
 * (`TOKEN_EXPIRED`, `TOKEN_AUDIENCE`, ...); one that stops being accepted later (it expired, the user lost a
 * grant) hides the protected tools, with a warning naming the variable and `list_changed`. A token file is read
 * again when it changes (a rotated token takes over) and warned about when group or others can read it.
 * It offers no tools (there is nothing to log in to) and no session.
 */
export async function createEnvironmentLogin(options: EnvironmentLoginOptions): Promise<LoginProvider> {
  const { authsec, credential } = options;
  const logger = options.logger ?? authsec.logger;
  const variable = credential.variable;
  const listeners = createChangeListeners(logger);
  /** The connections that asked who the caller is (a change concerns all of them). */
  const connections = new Set<string>();
  let fileStamp = '';
  let token = '';
  let warnedMode = false;
  let lastRefusal: string | undefined;
  let expiryTimer: NodeJS.Timeout | undefined;
  let closed = false;

  /** The current token (a file is read again only when it changed); `true` when it is another one. */
  const load = (): boolean => {
    if (credential.variable === 'AUTHSEC_ACCESS_TOKEN') {
      if (token !== '') return false;
      token = credential.token;
      return true;
    }
    const { file } = credential;
    let text: string;
    let stamp: string;
    try {
      const stat = statSync(file);
      if ((stat.mode & 0o077) !== 0 && !warnedMode) {
        warnedMode = true;
        logger.warn(`${variable}: the token file can be read by group or others; chmod 600 it`, { file });
      }
      stamp = `${stat.mtimeMs}:${stat.size}:${stat.ino}`;
      if (stamp === fileStamp) return false;
      text = readFileSync(file, 'utf8').trim();
    } catch (cause) {
      throw new AuthSecError('CONFIG_INVALID', `${variable}: cannot read the token file ${file}`, { cause });
    }
    fileStamp = stamp;
    const changed = text !== token;
    token = text;
    return changed;
  };

  const fire = (): void => {
    for (const connectionId of connections) listeners.fire(connectionId);
  };

  const scheduleExpiry = (principal: Principal): void => {
    if (expiryTimer !== undefined) clearTimeout(expiryTimer);
    const delay = Math.min(Math.max(principal.expiresAt * 1000 - Date.now() + 50, 0), MAX_TIMER_MS);
    expiryTimer = setTimeout(fire, delay);
    expiryTimer.unref();
  };

  const verify = async (): Promise<Principal> => {
    if (token === '') throw new AuthSecError('TOKEN_MISSING', `${variable} is empty`);
    const principal = await authsec.authenticate(token);
    // The engine's clock tolerance is for clocks that differ; this process ends the login at `exp` itself.
    if (principal.expiresAt * 1000 <= Date.now())
      throw new AuthSecError('TOKEN_EXPIRED', 'The token has expired');
    return principal;
  };

  // At start: a token that is refused is a configuration error naming the variable.
  load();
  try {
    scheduleExpiry(await verify());
  } catch (error) {
    const err = toAuthSecError(error);
    if (err.code === 'SERVICE_UNAVAILABLE' || err.code === 'CONFIG_INVALID') throw err;
    throw new AuthSecError(err.code, `${variable}: the token was refused (${err.code}): ${err.message}`, {
      cause: error,
    });
  }
  logger.info(`Using the access token from ${variable}`, {});

  const fileWatch =
    credential.variable === 'AUTHSEC_ACCESS_TOKEN_FILE'
      ? setInterval(() => {
          try {
            if (load()) fire();
          } catch (error) {
            logger.warn(`${variable}: the token file cannot be read`, { code: toAuthSecError(error).code });
          }
        }, FILE_CHECK_MS)
      : undefined;
  fileWatch?.unref();

  return {
    tools: [],
    async principalFor(connectionId) {
      if (closed) throw new AuthSecError('SERVICE_UNAVAILABLE', 'The login is closed');
      connections.add(connectionId);
      try {
        load();
        const principal = await verify();
        lastRefusal = undefined;
        scheduleExpiry(principal);
        return principal;
      } catch (error) {
        const err = toAuthSecError(error);
        if (err.code === 'SERVICE_UNAVAILABLE' || err.code === 'INTERNAL') throw err;
        if (lastRefusal !== err.code) {
          lastRefusal = err.code;
          logger.warn(
            `${variable}: the token is no longer accepted (${err.code}); the protected tools are hidden until it is replaced`,
            { code: err.code },
          );
        }
        return undefined;
      }
    },
    sessionIdFor: () => undefined,
    onChange: (listener) => listeners.add(listener),
    disconnect(connectionId) {
      connections.delete(connectionId);
    },
    async close() {
      closed = true;
      if (expiryTimer !== undefined) clearTimeout(expiryTimer);
      if (fileWatch !== undefined) clearInterval(fileWatch);
      listeners.clear();
    },
  };
}
