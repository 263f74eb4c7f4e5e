// Persistent JavaScript "kernel" for the local E2B host: one long-lived node process that
// evaluates each cell in the same `vm` context and reports the last expression's value.
// Requests: one JSON line per cell on stdin {"seq", "code", "env"}.
// Replies: JSON lines on the fd named by E2B_CTRL_FD; cell output goes to fd 1/2 as usual,
// followed by a marker on both so the host knows every byte of the cell has arrived.
'use strict';

const fs = require('fs');
const vm = require('vm');
const util = require('util');
const readline = require('readline');
const { createRequire } = require('module');

const ctrlFd = Number(process.env.E2B_CTRL_FD);
const mark = process.env.E2B_MARK;
delete process.env.E2B_CTRL_FD;
delete process.env.E2B_MARK;

function ctrl(msg) {
  fs.writeSync(ctrlFd, JSON.stringify(msg) + '\n');
}

const cwd = process.cwd();
const cellRequire = createRequire(cwd + '/');
const cellModule = { exports: {}, require: cellRequire, id: '.', filename: cwd + '/[cell]' };
const sandbox = {
  console: new console.Console({ stdout: process.stdout, stderr: process.stderr }),
  process,
  require: cellRequire,
  module: cellModule,
  exports: cellModule.exports,
  __filename: cellModule.filename,
  __dirname: cwd,
  Buffer,
  URL,
  URLSearchParams,
  TextEncoder,
  TextDecoder,
  AbortController,
  AbortSignal,
  setTimeout,
  clearTimeout,
  setInterval,
  clearInterval,
  setImmediate,
  clearImmediate,
  queueMicrotask,
  structuredClone,
  performance,
  fetch: globalThis.fetch,
  Headers: globalThis.Headers,
  Request: globalThis.Request,
  Response: globalThis.Response,
  crypto: globalThis.crypto,
};
const context = vm.createContext(sandbox);
vm.runInContext('globalThis.global = globalThis;', context);

let interruptCurrent = null;
process.on('SIGINT', () => {
  if (interruptCurrent) interruptCurrent(new Error('Script execution interrupted.'));
});

function compile(code, seq) {
  const filename = `<cell ${seq}>`;
  try {
    return { script: new vm.Script(code, { filename }), wrapped: false };
  } catch (err) {
    if (err && err.name === 'SyntaxError' && /\bawait\b/.test(code)) {
      // Top-level await: run the cell as an async function (its declarations stay local).
      const body = `(async () => {\n${code}\n})()`;
      return { script: new vm.Script(body, { filename, lineOffset: -1 }), wrapped: true };
    }
    throw err;
  }
}

function describe(err) {
  if (err && typeof err === 'object') {
    const name = err.name !== undefined ? String(err.name) : 'Error';
    const value = err.message !== undefined ? String(err.message) : util.inspect(err);
    return { name, value, traceback: err.stack ? String(err.stack) : `${name}: ${value}` };
  }
  return { name: 'Error', value: String(err), traceback: `Uncaught ${util.inspect(err)}` };
}

async function run(req) {
  const saved = {};
  for (const [k, v] of Object.entries(req.env || {})) {
    saved[k] = Object.prototype.hasOwnProperty.call(process.env, k) ? process.env[k] : undefined;
    process.env[k] = String(v);
  }
  try {
    const { script, wrapped } = compile(req.code, req.seq);
    let value = script.runInContext(context, { breakOnSigint: true, displayErrors: false });
    if (value && typeof value.then === 'function') {
      const interrupted = new Promise((_, reject) => {
        interruptCurrent = reject;
      });
      value = await Promise.race([value, interrupted]);
    }
    if (!wrapped && value !== undefined) {
      ctrl({ type: 'result', seq: req.seq, text: util.inspect(value, { depth: 4, colors: false }) });
    }
  } catch (err) {
    ctrl({ type: 'error', seq: req.seq, ...describe(err) });
  } finally {
    interruptCurrent = null;
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    const marker = `\x1e\x1f${mark}:${req.seq}\x1e`;
    fs.writeSync(1, marker);
    fs.writeSync(2, marker);
    ctrl({ type: 'done', seq: req.seq, rc: 0 });
  }
}

process.on('uncaughtException', (err) => {
  process.stderr.write(`Uncaught ${describe(err).traceback}\n`);
});
process.on('unhandledRejection', (err) => {
  process.stderr.write(`Unhandled rejection: ${describe(err).traceback}\n`);
});

let queue = Promise.resolve();
const rl = readline.createInterface({ input: process.stdin, terminal: false });
rl.on('line', (line) => {
  if (!line.trim()) return;
  const req = JSON.parse(line);
  queue = queue.then(() => run(req));
});
rl.on('close', () => process.exit(0));
ctrl({ type: 'ready' });
