#!/usr/bin/env node
// A solc command-line stand-in over solcjs, for py-solc-x (and so Brownie and Slither) on machines
// that cannot download a native solc. It answers the two calls py-solc-x makes: `--version` and
// `--standard-json` (input on stdin, output on stdout).
//
// Why no process.exit(): when stdout is a pipe, Node writes asynchronously; exiting right after the
// write truncates the output at 64-128 KiB and py-solc-x then fails on half a JSON document.
'use strict';
const fs = require('fs');
const path = require('path');

const solc = require(path.join(__dirname, '..', 'node_modules', 'solc'));

function parseAllowedPaths(argv) {
  const roots = [process.cwd()];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    let value = null;
    if (arg === '--allow-paths' || arg === '--base-path' || arg === '--include-path') value = argv[i + 1];
    else if (arg.startsWith('--allow-paths=')) value = arg.slice('--allow-paths='.length);
    if (value) for (const p of value.split(',')) if (p) roots.push(path.resolve(p));
  }
  return roots;
}

function makeImportResolver(roots) {
  return function findImports(importPath) {
    const candidates = path.isAbsolute(importPath)
      ? [importPath]
      : roots.map((root) => path.join(root, importPath));
    for (const candidate of candidates) {
      try {
        return { contents: fs.readFileSync(candidate, 'utf8') };
      } catch (_) {
        // try the next root
      }
    }
    return { error: `File not found in ${roots.join(', ')}: ${importPath}` };
  };
}

function main() {
  const argv = process.argv.slice(2);
  if (argv.includes('--version')) {
    process.stdout.write('solc, the solidity compiler commandline interface\n');
    process.stdout.write(`Version: ${solc.version()}\n`);
    return;
  }
  if (!argv.includes('--standard-json')) {
    process.stderr.write('solc-shim: only --version and --standard-json are supported\n');
    process.exitCode = 2;
    return;
  }
  const chunks = [];
  process.stdin.on('data', (chunk) => chunks.push(chunk));
  process.stdin.on('end', () => {
    const input = Buffer.concat(chunks).toString('utf8');
    const output = solc.compile(input, { import: makeImportResolver(parseAllowedPaths(argv)) });
    process.stdout.write(output);
  });
}

main();
