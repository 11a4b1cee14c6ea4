import {
  type AuthSec,
  type AuthSecOptions,
  applicationLogger,
  createAuthSec,
  createResourceServer,
  type ResourceServer,
  useApplicationLogger,
} from '@authsec/core';
import { type DynamicModule, Logger, Module, type Provider } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import {
  AUTHSEC_ENGINE,
  AUTHSEC_MODULE_OPTIONS,
  AUTHSEC_RESOURCE_SERVER,
  DEFAULT_SERVER_NAME,
} from './authsec.constants.js';
import { AuthSecGuard } from './authsec.guard.js';
import type { AuthSecModuleAsyncOptions, AuthSecModuleOptions } from './authsec.options.js';
import { AuthSecMcpService } from './authsec-mcp.service.js';

function isEngine(value: AuthSec | AuthSecOptions): value is AuthSec {
  return typeof (value as AuthSec).authenticateHeader === 'function';
}

const shared: Provider[] = [
  {
    provide: AUTHSEC_ENGINE,
    useFactory: (options: AuthSecModuleOptions): AuthSec => {
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
    inject: [AUTHSEC_MODULE_OPTIONS],
  },
  {
    provide: AUTHSEC_RESOURCE_SERVER,
    useFactory: (options: AuthSecModuleOptions, authsec: AuthSec): ResourceServer =>
      createResourceServer({
        authsec,
        resourceUrl: options.resourceUrl,
        authorizationServers: options.authorizationServers,
        // Without explicit scopes, the resource server derives them from the registered tools.
        ...(options.scopesSupported === undefined ? {} : { scopesSupported: options.scopesSupported }),
        resourceName: options.resourceName ?? options.name ?? DEFAULT_SERVER_NAME,
        // Origins, CORS, proxies and step-up are the request pipeline's: the MCP service passes them on.
      }),
    inject: [AUTHSEC_MODULE_OPTIONS, AUTHSEC_ENGINE],
  },
  AuthSecGuard,
  AuthSecMcpService,
];

const exported = [AUTHSEC_ENGINE, AUTHSEC_RESOURCE_SERVER, AuthSecGuard, AuthSecMcpService];

/**
 * Registers AuthSec in a Nest application (global): the engine, the resource server, {@link AuthSecGuard}, and
 * the MCP endpoint serving every `@AuthSecTool` method at the resource URL's path with the RFC 9728 metadata.
 */
@Module({})
export class AuthSecModule {
  /** Registers the module with options known up front. Bad options throw at start. */
  static forRoot(options: AuthSecModuleOptions): DynamicModule {
    return {
      module: AuthSecModule,
      global: true,
      imports: [DiscoveryModule],
      providers: [{ provide: AUTHSEC_MODULE_OPTIONS, useValue: options }, ...shared],
      exports: exported,
    };
  }

  /** Registers the module with options from a factory (configuration services, secrets...). */
  static forRootAsync(options: AuthSecModuleAsyncOptions): DynamicModule {
    return {
      module: AuthSecModule,
      global: true,
      imports: [DiscoveryModule, ...(options.imports ?? [])],
      providers: [
        {
          provide: AUTHSEC_MODULE_OPTIONS,
          useFactory: options.useFactory as (...args: unknown[]) => unknown,
          inject: options.inject ?? [],
        },
        ...shared,
      ],
      exports: exported,
    };
  }
}
