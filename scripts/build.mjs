// Bundles the CLI into dist/: bottle.mjs is the entry; the command tree is a
// chunk of its own, loaded only when needed (so `--version` starts fast).
import { build } from "esbuild"
import { chmodSync, rmSync } from "node:fs"

rmSync("dist", { recursive: true, force: true })
await build({
  entryPoints: { bottle: "src/cli/bin.ts" },
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  outdir: "dist",
  outExtension: { ".js": ".mjs" },
  chunkNames: "chunks/[name]-[hash]",
  // Smaller to parse at every start; names are kept (errors and stack-free messages do not depend on them, but debugging does).
  minifyWhitespace: true,
  minifySyntax: true,
  // Some dependencies still call require(); give the ESM bundle one.
  banner: { js: "import { createRequire as __bottleCreateRequire } from 'node:module'; const require = __bottleCreateRequire(import.meta.url);" },
  logLevel: "warning"
})
chmodSync("dist/bottle.mjs", 0o755)
