export {
  type AuthorizationRequestInput,
  type CodeExchangeInput,
  createOAuthClient,
  type DeviceAuthorization,
  type DevicePollOptions,
  generateCodeVerifier,
  generateNonce,
  type OAuthClient,
  type OAuthClientOptions,
  type TokenSet,
  type TokenTypeHint,
} from './client.js';
