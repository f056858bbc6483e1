// Validates OpenAPI documents with @seriousme/openapi-schema-validator, which checks a
// document against the OpenAPI Initiative's published JSON Schema for its version
// (3.1 here) and resolves its $refs.
//
//   node openapi.mjs DOC.json [DOC.json ...]
//
// Prints [{"file", "version", "valid", "errors"}], one per document; 014_openapi.pl
// makes the assertions.  Exits non-zero only when it cannot run.

import { readFileSync } from 'node:fs';
import { Validator } from '@seriousme/openapi-schema-validator';

const files = process.argv.slice(2);
if (files.length === 0) {
	console.error('usage: node openapi.mjs DOC.json [DOC.json ...]');
	process.exit(2);
}
const results = [];
for (const file of files) {
	const validator = new Validator();
	const doc = JSON.parse(readFileSync(file, 'utf8'));
	const res = await validator.validate(doc);
	results.push({ file, version: validator.version, valid: res.valid, errors: res.errors ?? null });
}
console.log(JSON.stringify(results));
