// Tokenize texts with a TextMate grammar, as VS Code does (vscode-textmate and the
// Oniguruma regex engine compiled to WebAssembly). Used by tests/test_tmgrammar.py.
//
//   node tokenize.js NODE_MODULES_DIR < {"grammar": PATH, "texts": {NAME: TEXT}}
//
// Prints {NAME: [[{"start": S, "end": E, "scopes": [...]}, ...] for each line]};
// S and E are UTF-16 indexes into the line, as vscode-textmate gives them.
"use strict";
const fs = require("fs");
const path = require("path");

const modules = path.resolve(process.argv[2]);
const vsctm = require(path.join(modules, "vscode-textmate"));
const oniguruma = require(path.join(modules, "vscode-oniguruma"));

async function main() {
  const input = JSON.parse(fs.readFileSync(0, "utf8"));
  const wasm = fs.readFileSync(path.join(modules, "vscode-oniguruma", "release", "onig.wasm"));
  await oniguruma.loadWASM(wasm.buffer.slice(wasm.byteOffset, wasm.byteOffset + wasm.byteLength));
  const registry = new vsctm.Registry({
    onigLib: Promise.resolve({
      createOnigScanner: (patterns) => new oniguruma.OnigScanner(patterns),
      createOnigString: (s) => new oniguruma.OnigString(s),
    }),
    loadGrammar: async (scopeName) => {
      if (scopeName !== "source.journey") return null;
      const raw = fs.readFileSync(input.grammar, "utf8");
      return vsctm.parseRawGrammar(raw, input.grammar);
    },
  });
  const grammar = await registry.loadGrammar("source.journey");
  if (!grammar) throw new Error("the grammar did not load");
  const out = {};
  for (const [name, text] of Object.entries(input.texts)) {
    let stack = vsctm.INITIAL;
    out[name] = text.split("\n").map((line) => {
      const result = grammar.tokenizeLine(line, stack);
      stack = result.ruleStack;
      return result.tokens.map((t) => ({ start: t.startIndex, end: t.endIndex, scopes: t.scopes }));
    });
  }
  process.stdout.write(JSON.stringify(out));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
