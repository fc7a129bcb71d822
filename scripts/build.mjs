// Bundles the CLI into dist/:
// - bottle.cjs, the entry: answers `--version` at once, else loads app.cjs;
// - app.cjs, the command tree, CommonJS so that codeCache.ts can keep V8's
//   compiled code between starts (Node 20 has no compile cache for ES
//   modules);
// - lazy/*.cjs, what the command tree loads only when used: the spec
//   parsers (yaml, smol-toml), the build context's tar writer, the CA
//   maker (node-forge) and the kubeconfig reader (yaml);
// - sidecars/supervise.cjs, the supervisor sidecar's MCP server.
import { build } from "esbuild"
import { createHash } from "node:crypto"
import { chmodSync, readFileSync, rmSync } from "node:fs"
import { resolve } from "node:path"

// bottle's sources import each module of effect and @effect/* by its own path ("effect/Schema"), never
// through a package's index ("effect"): esbuild cannot drop what an index re-exports as a namespace, so
// one `import { Schema } from "effect"` bundles and runs every schema effect defines, and one from
// "@effect/platform" or "@effect/cli" its HTTP API, OpenAPI and file-option modules, with undici, fast-check
// and TOML/INI/YAML readers under them. That was a third of the bundle and 40-50 ms of every start; the
// build fails should it come back.
const barrels = /^(effect|@effect\/(platform|platform-node|platform-node-shared|cli|printer|printer-ansi|typeclass))$/
const noBarrels = {
  name: "no-barrels",
  setup(b) {
    b.onResolve({ filter: barrels }, (args) =>
      /[\\/]node_modules[\\/]/.test(args.importer) ? undefined : {
        errors: [{ text: `import "${args.path}/<Module>" (e.g. import * as Effect from "effect/Effect"), not "${args.path}": an index import bundles all of ${args.path}` }]
      })
  }
}

// The modules the sources import with import() so that they load only when used.
const lazy = {
  parseDocuments: "src/resources/parseDocuments.ts",
  buildContext: "src/resources/buildContext.ts",
  bottleCaMake: "src/reconcilers/bottleCaMake.ts",
  kubeconfig: "src/resources/kubeconfig.ts"
}
// In app.cjs, such an import() asks codeCache's require for lazy/<name>.cjs.
const lazyImports = {
  name: "lazy-imports",
  setup(b) {
    const names = Object.keys(lazy).join("|")
    b.onResolve({ filter: new RegExp(`(^|/)(${names})\\.js$`) }, (args) => {
      if (args.kind !== "dynamic-import") return undefined
      return { path: args.path.split("/").pop().slice(0, -3), namespace: "lazy-import" }
    })
    b.onLoad({ filter: /.*/, namespace: "lazy-import" }, (args) => ({
      contents: `module.exports = require(${JSON.stringify(`bottle-lazy:${args.path}`)})`,
      loader: "js"
    }))
    b.onResolve({ filter: /^bottle-lazy:/ }, (args) => ({ path: args.path, external: true }))
  }
}

const common = {
  bundle: true,
  platform: "node",
  target: "node20",
  // Smaller to parse at every start; names are kept for stack traces.
  minifyWhitespace: true,
  minifySyntax: true,
  logLevel: "warning"
}

rmSync("dist", { recursive: true, force: true })
await build({
  ...common,
  entryPoints: { app: "src/cli/main.ts", ...Object.fromEntries(Object.entries(lazy).map(([n, p]) => [`lazy/${n}`, p])) },
  format: "cjs",
  outdir: "dist",
  outExtension: { ".js": ".cjs" },
  plugins: [noBarrels, lazyImports]
})

// The supervisor's server, on its own: it runs in the supervise sidecar (Debian's Node 18), copied into each
// bottle's state dir. Not loaded by the CLI.
await build({
  ...common,
  entryPoints: { "sidecars/supervise": "src/sidecars/supervise.ts" },
  format: "cjs",
  target: "node18",
  outdir: "dist",
  outExtension: { ".js": ".cjs" },
  plugins: [noBarrels]
})

// What codeCache.ts checks before it trusts a cache: each bundle's hash and length.
const bundles = {}
for (const name of ["app", ...Object.keys(lazy).map((n) => `lazy/${n}`)]) {
  const text = readFileSync(`dist/${name}.cjs`, "utf8")
  // codeCache.ts reads bundles as latin1, which is right only for ASCII (esbuild escapes the rest by default).
  if (!/^[\x00-\x7f]*$/.test(text)) throw new Error(`dist/${name}.cjs is not ASCII: codeCache.ts would misread it`)
  bundles[name] = { hash: createHash("sha256").update(text).digest("hex").slice(0, 32), length: text.length }
}

// The entry: its import("./main.js") becomes app.cjs, loaded through codeCache.
const appEntry = {
  name: "app-entry",
  setup(b) {
    b.onResolve({ filter: /^\.\/main\.js$/ }, () => ({ path: "app", namespace: "app-entry" }))
    b.onLoad({ filter: /.*/, namespace: "app-entry" }, () => ({
      contents: `import { load } from "./codeCache.ts"
export const main = load("app", __dirname).main`,
      resolveDir: resolve("src/cli"),
      loader: "js"
    }))
  }
}
await build({
  ...common,
  entryPoints: { bottle: "src/cli/bin.ts" },
  // CommonJS: node starts a CommonJS entry without its ES module loader (about 8 ms of every start).
  format: "cjs",
  outdir: "dist",
  outExtension: { ".js": ".cjs" },
  define: { __BOTTLE_BUNDLES__: JSON.stringify(bundles) },
  plugins: [appEntry]
})
chmodSync("dist/bottle.cjs", 0o755)
