// Persistent JavaScript / TypeScript "kernel" for the local E2B host: one long-lived node
// process that evaluates each cell in the same `vm` context and reports the last expression's
// value. argv[2] is the context's language: "javascript" (default) or "typescript".
// A cell is a script, not a module, so like Node's REPL the runner rewrites what a script cannot
// hold (see prepareCell): static `import`s, top-level `await`, `import()`; TypeScript is first
// transpiled by the real compiler (Debian's node-typescript), types unchecked, like E2B's kernel.
// Requests: one JSON line per cell on stdin {"seq", "code", "env"}.
// Replies: JSON lines on the fd named by E2B_CTRL_FD; cell output goes to fd 1/2 as usual,
// followed by a marker on both so the host knows every byte of the cell has arrived.
'use strict';

const fs = require('fs');
const vm = require('vm');
const util = require('util');
const readline = require('readline');
const path = require('path');
const { builtinModules, createRequire } = require('module');
const { pathToFileURL } = require('url');

const language = process.argv[2] || 'javascript';

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
  __e2b_import: importForCell,
};
const context = vm.createContext(sandbox);
vm.runInContext('globalThis.global = globalThis;', context);

let interruptCurrent = null;
process.on('SIGINT', () => {
  if (interruptCurrent) interruptCurrent(new Error('Script execution interrupted.'));
});

// --- TypeScript's compiler: transpiles TS cells, and parses JS cells that need rewriting -------
// Debian's nodejs finds /usr/share/nodejs by itself; other builds of node (nodesource) do not.
const TYPESCRIPT_PATHS = ['typescript', '/usr/share/nodejs/typescript', '/usr/lib/nodejs/typescript'];
let tsModule;

function typescript() {
  if (tsModule === undefined) {
    tsModule = null;
    for (const id of TYPESCRIPT_PATHS) {
      try {
        tsModule = require(id);
        break;
      } catch (err) {
        // try the next place
      }
    }
  }
  return tsModule;
}

// An error shown as the cell's error result (name, message, and the stack as its traceback).
function cellError(name, message, traceback) {
  const err = new Error(message);
  err.name = name;
  err.stack = traceback || `${name}: ${message}`;
  return err;
}

function transpileTypeScript(code, seq) {
  const ts = typescript();
  if (!ts) {
    throw cellError('TypeScriptUnavailable', 'the TypeScript compiler is not installed (Debian package: node-typescript)');
  }
  const out = ts.transpileModule(code, {
    fileName: `cell${seq}.ts`,
    reportDiagnostics: true,
    compilerOptions: {
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.ESNext,
      // Keep an import whose binding this cell does not use: a later cell may.
      preserveValueImports: true,
      esModuleInterop: true,
    },
  });
  const errors = (out.diagnostics || []).filter((d) => d.category === ts.DiagnosticCategory.Error);
  if (errors.length) {
    const lines = errors.map((d) => {
      const text = ts.flattenDiagnosticMessageText(d.messageText, '\n');
      if (d.file === undefined || d.start === undefined) return `error TS${d.code}: ${text}`;
      const { line, character } = d.file.getLineAndCharacterOfPosition(d.start);
      return `<cell ${seq}>:${line + 1}:${character + 1} - error TS${d.code}: ${text}`;
    });
    const first = ts.flattenDiagnosticMessageText(errors[0].messageText, '\n');
    throw cellError('SyntaxError', first, lines.join('\n'));
  }
  return out.outputText;
}

// --- Rewriting a cell so a script can run it ---------------------------------------------------
// As Node's REPL does: with a top-level `await` or a static `import`, the cell runs inside an
// async function whose last expression statement is returned, and its top-level declarations are
// hoisted out of it (const/let/class as `let`, var and imports as `var`, functions assigned to the
// global) so they persist to later cells. A static import becomes an awaited import() run first,
// as ES modules do. Every import() goes to __e2b_import, which resolves against the working
// directory (a script in a vm context has no module loader of its own).
const MAYBE_REWRITE = /\b(?:import|await|export)\b/;

function prepareCell(code, seq) {
  const js = language === 'typescript' ? transpileTypeScript(code, seq) : code;
  if (!MAYBE_REWRITE.test(js)) return { source: js, lineOffset: 0 };
  const ts = typescript();
  if (!ts) return { source: js, lineOffset: 0 };
  const file = ts.createSourceFile(`cell${seq}.js`, js, ts.ScriptTarget.Latest, true, ts.ScriptKind.JS);
  if ((file.parseDiagnostics || []).length) return { source: js, lineOffset: 0 }; // V8 says why
  return new CellRewriter(ts, file, js).rewrite();
}

class CellRewriter {
  constructor(ts, file, text) {
    this.ts = ts;
    this.file = file;
    this.text = text;
    this.importCalls = []; // edits turning `import(` into `__e2b_import(`
    this.awaitsAtTop = false;
    this.hoistedLet = new Set();
    this.hoistedVar = new Set();
    this.prologue = []; // statements run first in the async body
  }

  rewrite() {
    const ts = this.ts;
    this.scan(this.file, false);
    const statements = this.file.statements;
    const needsAsync = this.awaitsAtTop || statements.some((s) => ts.isImportDeclaration(s));
    const edits = [];
    const last = [...statements].reverse().find((s) => !ts.isEmptyStatement(s));
    for (const statement of statements) {
      const edit = this.statementEdit(statement, needsAsync, statement === last);
      if (edit) edits.push(edit);
    }
    const outside = this.importCalls.filter((call) => !edits.some((e) => e.start <= call.start && call.end <= e.end));
    const body = this.render(0, this.text.length, [...edits, ...outside]);
    if (!needsAsync) return { source: body, lineOffset: 0 };
    const lets = this.hoistedLet.size ? `let ${[...this.hoistedLet].join(', ')}; ` : '';
    const vars = this.hoistedVar.size ? `var ${[...this.hoistedVar].join(', ')}; ` : '';
    const head = `${vars}${lets}(async () => { ${this.prologue.join(' ')}`;
    return { source: `${head}\n${body}\n})()`, lineOffset: -1 };
  }

  // Finds import() calls anywhere, and awaits outside any function.
  scan(node, inFunction) {
    const ts = this.ts;
    if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const start = node.expression.getStart(this.file);
      this.importCalls.push({ start, end: node.expression.end, text: '__e2b_import' });
    }
    if (!inFunction && (ts.isAwaitExpression(node) || (ts.isForOfStatement(node) && node.awaitModifier))) {
      this.awaitsAtTop = true;
    }
    const nested = inFunction || ts.isFunctionLike(node) || ts.isClassStaticBlockDeclaration(node);
    ts.forEachChild(node, (child) => this.scan(child, nested));
  }

  // The text of [start, end) with the given edits (sorted, not overlapping) applied.
  render(start, end, edits) {
    let out = '';
    let at = start;
    for (const edit of [...edits].sort((a, b) => a.start - b.start)) {
      if (edit.start < start || edit.end > end) continue;
      out += this.text.slice(at, edit.start) + edit.text;
      at = edit.end;
    }
    return out + this.text.slice(at, end);
  }

  // A node's text with the import() edits inside it.
  source(node) {
    return this.render(node.getStart(this.file), node.end, this.importCalls);
  }

  // Replacement text keeps the replaced text's line breaks, so error lines still match the cell.
  replace(node, text) {
    const start = node.getStart(this.file);
    const lost = this.text.slice(start, node.end).split('\n').length - text.split('\n').length;
    return { start, end: node.end, text: text + '\n'.repeat(Math.max(lost, 0)) };
  }

  statementEdit(statement, needsAsync, isLast) {
    const ts = this.ts;
    if (ts.isExportDeclaration(statement)) return this.replace(statement, ''); // `export {}` from tsc
    if (ts.isExportAssignment(statement)) return this.replace(statement, `${this.source(statement.expression)};`);
    const exported = this.withoutExport(statement);
    if (!needsAsync) return exported;
    if (ts.isImportDeclaration(statement)) return this.importEdit(statement);
    if (ts.isVariableStatement(statement)) return this.variableEdit(statement);
    if (ts.isFunctionDeclaration(statement) && statement.name) {
      const name = statement.name.text;
      this.prologue.push(`globalThis[${JSON.stringify(name)}] = ${name};`);
      return exported;
    }
    if (ts.isClassDeclaration(statement) && statement.name) {
      this.hoistedLet.add(statement.name.text);
      return this.replace(statement, `${statement.name.text} = ${this.source(statement).slice(this.modifiersLength(statement))};`);
    }
    if (isLast && ts.isExpressionStatement(statement)) {
      return this.replace(statement, `return (${this.source(statement.expression)});`);
    }
    return exported;
  }

  // `export` / `export default` before a declaration: dropped (a cell has no exports).
  modifiersLength(statement) {
    const mods = (statement.modifiers || []).filter(
      (m) => m.kind === this.ts.SyntaxKind.ExportKeyword || m.kind === this.ts.SyntaxKind.DefaultKeyword,
    );
    if (!mods.length) return 0;
    const start = statement.getStart(this.file);
    let end = mods[mods.length - 1].end;
    while (/\s/.test(this.text[end] || '')) end += 1;
    return end - start;
  }

  withoutExport(statement) {
    const length = this.modifiersLength(statement);
    if (!length) return null;
    const ts = this.ts;
    const anonymous = (ts.isFunctionDeclaration(statement) || ts.isClassDeclaration(statement)) && !statement.name;
    if (anonymous) return this.replace(statement, `(${this.source(statement).slice(length)});`); // a value
    const start = statement.getStart(this.file);
    return { start, end: start + length, text: '' };
  }

  importEdit(statement) {
    const ts = this.ts;
    const clause = statement.importClause;
    const load = `await __e2b_import(${JSON.stringify(statement.moduleSpecifier.text)})`;
    if (!clause) {
      this.prologue.push(`${load};`);
    } else if (!clause.isTypeOnly) {
      const assignments = [];
      const bind = (local, value) => {
        this.hoistedVar.add(local);
        assignments.push(`${local} = ${value};`);
      };
      if (clause.name) bind(clause.name.text, '__e2b_module.default');
      const named = clause.namedBindings;
      if (named && ts.isNamespaceImport(named)) bind(named.name.text, '__e2b_module');
      if (named && ts.isNamedImports(named)) {
        for (const element of named.elements) {
          if (element.isTypeOnly) continue;
          const imported = (element.propertyName || element.name).text;
          bind(element.name.text, `__e2b_module[${JSON.stringify(imported)}]`);
        }
      }
      this.prologue.push(`{ const __e2b_module = ${load}; ${assignments.join(' ')} }`);
    }
    return this.replace(statement, '');
  }

  variableEdit(statement) {
    const ts = this.ts;
    const list = statement.declarationList;
    const lexical = (list.flags & (ts.NodeFlags.Let | ts.NodeFlags.Const)) !== 0;
    const hoisted = lexical ? this.hoistedLet : this.hoistedVar;
    const assignments = [];
    for (const declaration of list.declarations) {
      this.boundNames(declaration.name).forEach((name) => hoisted.add(name));
      if (declaration.initializer) {
        assignments.push(`(${this.source(declaration.name)} = ${this.source(declaration.initializer)})`);
      }
    }
    return this.replace(statement, assignments.length ? `void (${assignments.join(', ')});` : '');
  }

  boundNames(name) {
    const ts = this.ts;
    if (ts.isIdentifier(name)) return [name.text];
    const names = [];
    for (const element of name.elements) {
      if (!ts.isOmittedExpression(element)) names.push(...this.boundNames(element.name));
    }
    return names;
  }
}

// `import()` from the runner itself, for a cell: a bare name is looked up from the working
// directory (as the cell's require() is), a relative path resolved against it.
function resolveForImport(specifier) {
  if (specifier.startsWith('node:') || builtinModules.includes(specifier)) return specifier;
  if (/^[a-z][a-z0-9+.-]*:/i.test(specifier)) return specifier; // file:, data: URLs
  const base = process.cwd() + '/';
  if (/^\.{0,2}\//.test(specifier)) return pathToFileURL(path.resolve(base, specifier)).href;
  const lookup = createRequire(base);
  try {
    return pathToFileURL(lookup.resolve(specifier)).href;
  } catch (err) {
    const entry = esmOnlyEntry(lookup, specifier);
    if (entry) return pathToFileURL(entry).href;
    throw err;
  }
}

// The file a package exports to import() when its "exports" offer require() nothing (an
// ES-module-only package, which require.resolve refuses).
function esmOnlyEntry(lookup, specifier) {
  const match = /^((?:@[^/]+\/)?[^/]+)(\/.*)?$/.exec(specifier);
  if (!match) return null;
  const [, name, rest] = match;
  const subpath = rest ? `.${rest}` : '.';
  for (const dir of lookup.resolve.paths(name) || []) {
    const root = path.join(dir, name);
    let manifest;
    try {
      manifest = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
    } catch (err) {
      continue; // not in this node_modules
    }
    let target = manifest.exports;
    const bySubpath = target && typeof target === 'object' && Object.keys(target).some((k) => k.startsWith('.'));
    if (bySubpath) target = target[subpath];
    else if (subpath !== '.') target = undefined;
    const file = exportedFile(target);
    return file ? path.join(root, file) : null;
  }
  return null;
}

// The first target whose condition import() meets, in the package's order (as Node picks).
function exportedFile(target) {
  if (typeof target === 'string') return target;
  const choices = Array.isArray(target)
    ? target
    : Object.entries(target || {})
        .filter(([condition]) => ['import', 'node', 'default'].includes(condition))
        .map(([, value]) => value);
  for (const choice of choices) {
    const file = exportedFile(choice);
    if (file) return file;
  }
  return null;
}

function importForCell(specifier) {
  try {
    return import(resolveForImport(String(specifier)));
  } catch (err) {
    return Promise.reject(err);
  }
}

function compile(code, seq) {
  const filename = `<cell ${seq}>`;
  const { source, lineOffset } = prepareCell(code, seq);
  try {
    return new vm.Script(source, { filename, lineOffset });
  } catch (err) {
    if (err && err.name === 'SyntaxError' && lineOffset === 0 && /\bawait\b/.test(source)) {
      // Without the TypeScript parser: run the cell as an async function (its declarations
      // stay local, and its value is not reported).
      const body = `(async () => {\n${source}\n})()`;
      return new vm.Script(body, { filename, lineOffset: -1 });
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
    const script = compile(req.code, req.seq);
    let value = script.runInContext(context, { breakOnSigint: true, displayErrors: false });
    if (value && typeof value.then === 'function') {
      const interrupted = new Promise((_, reject) => {
        interruptCurrent = reject;
      });
      value = await Promise.race([value, interrupted]);
    }
    if (value !== undefined) {
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

if (language === 'typescript') typescript(); // its load time belongs to start-up, not the first cell
let queue = Promise.resolve();
const rl = readline.createInterface({ input: process.stdin, terminal: false });
rl.on('line', (line) => {
  if (!line.trim()) return;
  const req = JSON.parse(line);
  queue = queue.then(() => run(req));
});
rl.on('close', () => queue.then(() => process.exit(0))); // the cells already sent run first
ctrl({ type: 'ready' });
