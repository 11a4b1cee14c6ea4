/**
 * The engine and the resource server as Nest providers, for both entries' modules. It names no MCP SDK and no
 * `@authsec/mcp` entry.
 */
import {
  type AuthSec,
  type AuthSecOptions,
  applicationLogger,
  createAuthSec,
  createResourceServer,
  type ResourceServer,
  useApplicationLogger,
} from '@authsec/core';
import { Logger, type Provider } from '@nestjs/common';
import { AUTHSEC_ENGINE, AUTHSEC_RESOURCE_SERVER, DEFAULT_SERVER_NAME } from './authsec.constants.js';

/** What the providers read from a module's options. */
export interface EngineModuleOptions {
  readonly authsec: AuthSec | AuthSecOptions;
  readonly resourceUrl: string;
  readonly authorizationServers: readonly string[];
  readonly scopesSupported?: readonly string[];
  readonly resourceName?: string;
  readonly name?: string;
}

/** Whether `value` is an engine (from `createAuthSec`) rather than its options. */
export function isEngine(value: AuthSec | AuthSecOptions): value is AuthSec {
  return typeof (value as AuthSec).authenticateHeader === 'function';
}

/** The engine (created from options, or given) and the resource server, from the options under `optionsToken`. */
export function engineProviders(optionsToken: string | symbol): Provider[] {
  return [
    {
      provide: AUTHSEC_ENGINE,
      useFactory: (options: EngineModuleOptions): AuthSec => {
        if (typeof options?.authsec !== 'object' || options.authsec === null)
          throw new TypeError('AuthSecModule: authsec (an engine or its options) is required');
        const logger = applicationLogger(new Logger('AuthSec'));
        // Options without a logger: the engine logs through Nest's Logger (and so the application's) from the start.
        const engine = isEngine(options.authsec)
          ? options.authsec
          : createAuthSec({ logger, ...options.authsec });
        // An engine created without a logger follows Nest's Logger too; an explicit one is kept.
        useApplicationLogger(engine, logger);
        return engine;
      },
      inject: [optionsToken],
    },
    {
      provide: AUTHSEC_RESOURCE_SERVER,
      useFactory: (options: EngineModuleOptions, authsec: AuthSec): ResourceServer =>
        createResourceServer({
          authsec,
          resourceUrl: options.resourceUrl,
          authorizationServers: options.authorizationServers,
          // Without explicit scopes, the resource server derives them from the registered tools.
          ...(options.scopesSupported === undefined ? {} : { scopesSupported: options.scopesSupported }),
          resourceName: options.resourceName ?? options.name ?? DEFAULT_SERVER_NAME,
          // Origins, CORS, proxies and step-up are the request pipeline's: the MCP service passes them on.
        }),
      inject: [optionsToken, AUTHSEC_ENGINE],
    },
  ];
}
