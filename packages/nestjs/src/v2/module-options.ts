import { ConfigurableModuleBuilder } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { AuthSecGuard } from '../authsec.route.js';
import type { AuthSecV2ModuleExtras, AuthSecV2ModuleOptions } from './options.js';

const defaults: Required<AuthSecV2ModuleExtras> = { isGlobal: true, globalGuard: false };

/**
 * The module's definition, from Nest's `ConfigurableModuleBuilder`: `forRoot(options)` and
 * `forRootAsync({ useFactory | useClass | useExisting, inject, imports })` (a class or an existing provider
 * implements `create()`, returning the options), each with the extras `isGlobal` and `globalGuard`.
 */
export const {
  ConfigurableModuleClass: AuthSecConfigurableModule,
  MODULE_OPTIONS_TOKEN: AUTHSEC_V2_OPTIONS,
  OPTIONS_TYPE: AUTHSEC_V2_OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE: AUTHSEC_V2_ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<AuthSecV2ModuleOptions>({ moduleName: 'AuthSec' })
  .setClassMethodName('forRoot')
  .setExtras<AuthSecV2ModuleExtras>(defaults, (definition, extras) => ({
    ...definition,
    global: extras.isGlobal ?? defaults.isGlobal,
    providers: [
      ...(definition.providers ?? []),
      // APP_GUARD from a module applies to every route of the application, @Public() ones excepted.
      ...((extras.globalGuard ?? defaults.globalGuard)
        ? [{ provide: APP_GUARD, useExisting: AuthSecGuard }]
        : []),
    ],
  }))
  .build();

/** What `forRoot` takes: the module's options and its extras. */
export type AuthSecModuleOptionsInput = typeof AUTHSEC_V2_OPTIONS_TYPE;
/** What `forRootAsync` takes. */
export type AuthSecModuleAsyncOptionsInput = typeof AUTHSEC_V2_ASYNC_OPTIONS_TYPE;
