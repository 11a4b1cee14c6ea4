#!/usr/bin/env node
import { run } from './main.js';

// The `authsec` binary. Ctrl-C stops `audit tail --follow` normally and interrupts any other command (exit
// 130, after closing the database); a second Ctrl-C exits at once.
const controller = new AbortController();
process.on('SIGINT', () => {
  if (controller.signal.aborted) process.exit(130);
  controller.abort();
});

const code = await run(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  stdin: process.stdin,
  signal: controller.signal,
});
process.exitCode = code;
