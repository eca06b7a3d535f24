import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import openapiTS, { COMMENT_HEADER, astToString } from "openapi-typescript";
import { expect, test } from "./support/fixtures";
import { WEB_DIR, runState } from "./support/env";

const COMMITTED = path.join(WEB_DIR, "src", "lib", "api-schema.d.ts");

/** What `openapi-typescript <file> -o <out>` (the CLI, as `npm run api-types` runs it) writes for `file`. */
function cliOutput(file: string, out: string): string {
  const cli = path.join(WEB_DIR, "node_modules", ".bin", "openapi-typescript");
  execFileSync(cli, [file, "-o", out], { cwd: WEB_DIR, stdio: "pipe" });
  return fs.readFileSync(out, "utf8");
}

/**
 * src/lib/api-schema.d.ts is generated from the API's /openapi.json by `npm run api-types` (the openapi-typescript
 * CLI). This generates it again from the running API as the CLI does (its header, then the printed AST, with the
 * CLI's defaults: byte for byte the CLI's output), and compares: the pages' typed client must not drift from the API.
 */
test("the generated API types match the API's /openapi.json", async () => {
  const response = await fetch(`${runState().apiUrl}/openapi.json`);
  expect(response.status).toBe(200);
  const schema = await response.text();
  const committed = fs.readFileSync(COMMITTED, "utf8");
  let generated = `${COMMENT_HEADER}${astToString(await openapiTS(schema, { silent: true }))}`;
  if (generated === committed) return;

  // Before calling it drift, ask the CLI itself (should a version of the Node API ever print differently).
  const saved = test.info().outputPath("openapi.json");
  fs.writeFileSync(saved, schema);
  generated = cliOutput(saved, test.info().outputPath("api-schema.d.ts"));
  if (generated === committed) return;

  const a = committed.split("\n");
  const b = generated.split("\n");
  const line = a.findIndex((text, i) => text !== b[i]);
  throw new Error(
    `src/lib/api-schema.d.ts is out of date with the API's /openapi.json (first difference at line ${line + 1}:\n` +
      `  committed: ${JSON.stringify(a[line])}\n  generated: ${JSON.stringify(b[line])}).\n` +
      `Regenerate it in clients/web with the API's schema saved to a file:\n` +
      `  OPENAPI_JSON=${saved} npm run api-types\n` +
      `(this run's /openapi.json; or save your API's: curl -s http://127.0.0.1:8000/openapi.json > ../../var/openapi.json && npm run api-types),\n` +
      `then rebuild the client (npx next build): the type checker shows what the pages must change.`,
  );
});
