export {
  createToolLogin,
  type ToolLoginCallbackOptions,
  type ToolLoginOptions,
  type ToolLoginRememberOptions,
} from './tool-login.js';
