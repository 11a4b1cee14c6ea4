export {
  createEnvironmentLogin,
  type EnvironmentCredential,
  type EnvironmentLoginOptions,
} from './environment.js';
export {
  createToolLogin,
  type LoginCallbackRoute,
  type ToolLogin,
  type ToolLoginCallbackOptions,
  type ToolLoginOptions,
  type ToolLoginRememberOptions,
} from './tool-login.js';
