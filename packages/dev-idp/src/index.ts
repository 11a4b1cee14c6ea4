export { approveDevice, formOf, ScriptedBrowser, signIn } from './browser.js';
export { DevIdpError, type DevIdpErrorCode, isDevIdpError } from './errors.js';
export { escapeHtml } from './html.js';
export { generateSigningKeys, type PrivateJwks } from './keys.js';
export {
  createJsonLinesLogger,
  type DevIdpLogger,
  type DevIdpLogLevel,
  type JsonLinesLoggerOptions,
} from './logger.js';
export {
  DEFAULT_DEV_CLIENT,
  DEFAULT_DEV_CLIENT_ID,
  type DevClient,
  type DevIdp,
  type DevIdpOptions,
  type IssueTokenOptions,
  startDevIdp,
} from './server.js';
export {
  DEMO_USERS,
  DEMO_USERS_FILE,
  type DevUser,
  deriveSubject,
  loadUsersFile,
  type ResolvedDevUser,
  resolveDevUsers,
} from './users.js';
