// The client side of journeyc's language server: start `journeyc lsp` (stdio) for
// `.journey` files. The server does the work: diagnostics, hover, definition,
// references, completion and formatting.
"use strict";
const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const [command, ...args] = vscode.workspace
    .getConfiguration("journeyc")
    .get("server.command", ["journeyc", "lsp"]);
  const serverOptions = { command, args };
  const clientOptions = {
    documentSelector: [{ scheme: "file", language: "journey" }],
    synchronize: {
      // Files changed outside the editor (git checkout, fmt) are read again.
      fileEvents: vscode.workspace.createFileSystemWatcher("**/*.journey"),
    },
  };
  client = new LanguageClient("journeyc", "journeyc", serverOptions, clientOptions);
  client.start();
  context.subscriptions.push({ dispose: () => client && client.stop() });
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
