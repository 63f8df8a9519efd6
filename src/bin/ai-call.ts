#!/usr/bin/env node
import { runCli, type CliIo } from '../cli.js';

const io: CliIo = {
  env: process.env,
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
};

const code = await runCli(process.argv.slice(2), io);
// `serve` keeps running on its own servers; every other command ends with its exit code.
if (code !== 0) process.exit(code);
