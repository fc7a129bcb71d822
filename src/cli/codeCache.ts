/**
 * Loads the bundled command tree (dist/app.cjs) and the parts it loads only
 * when used (dist/lazy/*.cjs), keeping V8's compiled code between starts.
 *
 * Compiling the command tree is a third of every start. Node 22 caches it
 * on its own (module.enableCompileCache); Node 20 does not, so bottle does
 * what that does, with vm.Script's cachedData. The cache is kept in
 * `$BOTTLE_HOME/cache`, only once BOTTLE_HOME exists: a directory bottle
 * never hands to an agent (a spec naming it, or a directory holding it, is
 * refused), because whoever can write compiled code there runs it on the
 * host at the next start. A cache is used only for the exact bundle it was
 * made from (the build records each bundle's hash and length), this node
 * and this machine; V8 refuses one made under other flags. A cache that is
 * missing, refused, unreadable or not a regular file is ignored, and a new
 * one is written (atomically) when the command has run.
 *
 * In a run from the sources (tests), nothing here is used.
 */
import { closeSync, fstatSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, statSync, unlinkSync, writeFileSync, constants as fs } from "node:fs"
import { createRequire } from "node:module"
import { homedir } from "node:os"
import { basename, dirname, isAbsolute, join } from "node:path"
import { Script } from "node:vm"

/** What the build recorded of each bundle: its hash and its length in characters. */
declare const __BOTTLE_BUNDLES__: Record<string, { readonly hash: string; readonly length: number }> | undefined

/** How a bundle asks for a part loaded only when used (the build rewrites those imports to it). */
export const LAZY_PREFIX = "bottle-lazy:"
const MAX_CACHE_BYTES = 64 * 1024 * 1024

const loaded = new Map<string, unknown>()
const toWrite: Array<{ readonly script: Script; readonly file: string }> = []

/** A cache's file name: the bundle, its hash, this node and this machine. */
const cacheName = (name: string, hash: string) => `${name.replace("/", "-")}-${hash}-${process.version}-${process.arch}.v8`

const cacheDir = (): string | undefined => {
  if (process.env["BOTTLE_COMPILE_CACHE"] === "off") return undefined
  const home = process.env["BOTTLE_HOME"] || join(process.env["HOME"] || homedir(), ".claude-bottle")
  if (!isAbsolute(home)) return undefined
  try {
    if (!statSync(home).isDirectory()) return undefined
  } catch {
    return undefined
  }
  return join(home, "cache")
}

/** A regular file's bytes, never following a symlink nor blocking on a FIFO; undefined when it cannot be had. */
const readCache = (file: string): Buffer | undefined => {
  let fd: number | undefined
  try {
    fd = openSync(file, fs.O_RDONLY | fs.O_NOFOLLOW | fs.O_NONBLOCK)
    const info = fstatSync(fd)
    if (!info.isFile() || info.size === 0 || info.size > MAX_CACHE_BYTES) return undefined
    const bytes = Buffer.alloc(info.size)
    let at = 0
    while (at < bytes.length) {
      const n = readSync(fd, bytes, at, bytes.length - at, at)
      if (n === 0) return undefined
      at += n
    }
    return bytes
  } catch {
    return undefined
  } finally {
    if (fd !== undefined) closeSync(fd)
  }
}

/** The require a bundle sees: node's, plus the parts the build made lazy. */
const requireFor = (file: string, distDir: string): NodeJS.Require => {
  const real = createRequire(file)
  const lazy = (id: string) => (id.startsWith(LAZY_PREFIX) ? load(`lazy/${id.slice(LAZY_PREFIX.length)}`, distDir) : real(id))
  return Object.assign(lazy, real) as NodeJS.Require
}

/** Loads dist/<name>.cjs once, from V8's cache where one fits. */
export const load = (name: string, distDir: string): unknown => {
  const seen = loaded.get(name)
  if (seen !== undefined) return seen
  const file = join(distDir, `${name}.cjs`)
  // The build makes every bundle ASCII (it fails otherwise), and latin1 decodes that at half the cost of UTF-8.
  const source = readFileSync(file, "latin1")
  const recorded = typeof __BOTTLE_BUNDLES__ === "undefined" ? undefined : __BOTTLE_BUNDLES__[name]
  const dir = recorded !== undefined && recorded.length === source.length ? cacheDir() : undefined
  const cacheFile = dir === undefined ? undefined : join(dir, cacheName(name, recorded!.hash))
  const cachedData = cacheFile === undefined ? undefined : readCache(cacheFile)
  // The same wrapper node puts around a CommonJS file; lines keep their numbers in stack traces.
  const script = new Script(`(function (exports, require, module, __filename, __dirname) { ${source}\n})`, { filename: file, ...(cachedData ? { cachedData } : {}) })
  const module = { exports: {} as unknown }
  loaded.set(name, module.exports)
  const fn = script.runInThisContext() as (e: unknown, r: NodeJS.Require, m: { exports: unknown }, f: string, d: string) => void
  fn.call(module.exports, module.exports, requireFor(file, distDir), module, file, dirname(file))
  loaded.set(name, module.exports)
  if (cacheFile !== undefined && (cachedData === undefined || script.cachedDataRejected === true)) toWrite.push({ script, file: cacheFile })
  return module.exports
}

/**
 * Removes the caches of the same bundle made from other builds (an upgrade
 * leaves one of about 2 MB behind each time), for this node and machine
 * only: another node's cache is still good for that node. Only names bottle
 * writes are touched; unlinking a symlink removes the link, not its target.
 */
const CACHE_NAME = /^(.+)-[0-9a-f]{32}-(v[0-9.]+-[a-z0-9]+\.v8)$/
const removeStale = (file: string): void => {
  const current = basename(file)
  const mine = CACHE_NAME.exec(current)
  if (mine === null) return
  for (const f of readdirSync(dirname(file))) {
    const other = CACHE_NAME.exec(f)
    if (f === current || other === null || other[1] !== mine[1] || other[2] !== mine[2]) continue
    try {
      unlinkSync(join(dirname(file), f))
    } catch {
      // Gone already, or not ours to remove: left.
    }
  }
}

/**
 * Writes the caches this start lacked, once the command has run (so the
 * code it compiled on the way is in them), and removes those of earlier
 * builds. Never fails the command.
 */
export const flushCodeCache = (): void => {
  for (const { script, file } of toWrite.splice(0)) {
    try {
      mkdirSync(dirname(file), { recursive: true, mode: 0o700 })
      const tmp = `${file}.${process.pid}.tmp`
      writeFileSync(tmp, script.createCachedData(), { mode: 0o600, flag: "wx" })
      renameSync(tmp, file)
      removeStale(file)
    } catch {
      // A cache is an optimisation: a read-only or full BOTTLE_HOME only makes the next start slower.
    }
  }
}

/**
 * Ends the process once stdout and stderr have drained, without waiting for
 * V8's background optimiser to finish work nobody will use (a quiet 30–40
 * ms at the end of every command otherwise).
 */
export const exitWhenFlushed = (code: number): void => {
  const pending = [process.stdout, process.stderr].filter((s) => s.writableLength > 0)
  if (pending.length === 0) process.exit(code)
  let left = pending.length
  for (const s of pending) s.once("drain", () => { if (--left === 0) process.exit(code) })
  process.exitCode = code
}
