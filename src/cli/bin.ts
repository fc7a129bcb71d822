#!/usr/bin/env node
/**
 * Entry point. `--version` is answered before the command tree is loaded,
 * so it starts as fast as node itself; everything else loads main (in the
 * bundle, through codeCache.ts: see there).
 */
import { exitWhenFlushed, flushCodeCache } from "./codeCache.js"
import { VERSION } from "./version.js"

const args = process.argv.slice(2)
if (args.length === 1 && (args[0] === "--version" || args[0] === "-V")) {
  process.stdout.write(`bottle ${VERSION}\n`)
} else {
  // Not top-level await: the bundle's entry is CommonJS, which node starts without its ES module loader.
  // Should the command never end (nothing left to wait on), node exits with this, never with a silent 0.
  process.exitCode = 2
  void import("./main.js").then(({ main }) => main(process.argv)).then(
    ({ code, ran }) => {
      flushCodeCache(ran)
      exitWhenFlushed(code)
    },
    (e: unknown) => {
      process.stderr.write(`bottle: unexpected failure:\n${e instanceof Error ? e.stack ?? e.message : String(e)}\n`)
      exitWhenFlushed(2)
    }
  )
}
