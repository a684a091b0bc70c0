// Validates AsyncAPI documents with the official parser (@asyncapi/parser, pinned in
// package.json and package-lock.json): its schema validation and its built-in ruleset.
// Usage: node validate.mjs FILE...   Exit 1 on any error or warning, 0 otherwise.
import { Parser, fromFile } from '@asyncapi/parser';

const SEVERITY = ['error', 'warning', 'info', 'hint'];
const files = process.argv.slice(2);
if (files.length === 0) {
  console.error('usage: node validate.mjs FILE...');
  process.exit(2);
}

const parser = new Parser();
let failed = false;
for (const file of files) {
  const { document, diagnostics } = await fromFile(parser, file).parse();
  const serious = diagnostics.filter((d) => d.severity <= 1);
  for (const d of diagnostics) {
    const where = d.path.length ? d.path.join('.') : '(document)';
    console.log(`${file}: ${SEVERITY[d.severity] ?? d.severity}: ${d.code}: ${d.message} at ${where}`);
  }
  if (!document || serious.length > 0) {
    failed = true;
    console.log(`${file}: FAILED (${serious.length} errors or warnings)`);
  } else {
    const version = document.info().version();
    console.log(`${file}: valid AsyncAPI ${document.version()}, contract ${version}`);
  }
}
process.exit(failed ? 1 : 0);
