// One scripted browser serves every package's tests: the one @authsec/dev-idp exports.
export { approveDevice, formOf, ScriptedBrowser as Browser, signIn } from '@authsec/dev-idp';
