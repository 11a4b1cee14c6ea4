/**
 * End to end on the v2 SDK line, on both Nest platforms (`AUTHSEC_NEST_PLATFORM`): the shared suite of
 * `@authsec/adapter-conformance` (the built server on embedded defaults, the v2 client as a real OAuth client
 * pinned to 2026-07-28 and in the 2025 era).
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineOAuthClientE2EV2 } from '@authsec/adapter-conformance/oauth-client-e2e-v2';

const MAIN_JS = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'main.js');

defineOAuthClientE2EV2('nestjs-server', MAIN_JS);
defineOAuthClientE2EV2('nestjs-server on Fastify', MAIN_JS, { AUTHSEC_NEST_PLATFORM: 'fastify' });
