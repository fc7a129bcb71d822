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
 * V8 compiles a function when it first runs, and a cache holds what was
 * compiled when it was made: one made by `--help` lacks most of what `diff`
 * runs (11 ms of every diff, measured). So a cache starts with a line naming
 * the commands whose code it holds, and a command not named there writes it
 * again once it has run: V8 then writes what the cache held and what this
 * command compiled. Each command does so once per build.
 *
 * In a run from the sources (tests), nothing here is used.
 */
import { closeSync, fstatSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, statSync, unlinkSync, writeFileSync, constants as fs } from "node:fs"
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
/** Each bundle loaded from a file in the cache dir, with the commands its cache held (none when it had none V8 took). */
const toWrite: Array<{ readonly script: Script; readonly file: string; readonly held: ReadonlyArray<string> }> = []

/**
 * The line a cache starts with: `bottle-code-cache <command>,<command>…`,
 * then V8's bytes. A cache without it is not one bottle wrote.
 */
const HEADER = /^bottle-code-cache ([a-z0-9-]{1,24}(?:,[a-z0-9-]{1,24}){0,31})\n/
const MAX_HEADER = 1024
/** Enough for every command and the help; a cache naming this many is not written again. */
const MAX_COMMANDS = 32

/** A cache's commands and V8's bytes; undefined when it does not start with the header. */
const parseCache = (bytes: Buffer): { readonly commands: ReadonlyArray<string>; readonly data: Buffer } | undefined => {
  const end = bytes.subarray(0, MAX_HEADER).indexOf(0x0a)
  const header = end < 0 ? null : HEADER.exec(bytes.toString("latin1", 0, end + 1))
  return header === null ? undefined : { commands: header[1]!.split(","), data: bytes.subarray(end + 1) }
}

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
  const bytes = cacheFile === undefined ? undefined : readCache(cacheFile)
  const cache = bytes === undefined ? undefined : parseCache(bytes)
  const cachedData = cache?.data
  // The same wrapper node puts around a CommonJS file; lines keep their numbers in stack traces.
  const script = new Script(`(function (exports, require, module, __filename, __dirname) { ${source}\n})`, { filename: file, ...(cachedData ? { cachedData } : {}) })
  const module = { exports: {} as unknown }
  loaded.set(name, module.exports)
  const fn = script.runInThisContext() as (e: unknown, r: NodeJS.Require, m: { exports: unknown }, f: string, d: string) => void
  fn.call(module.exports, module.exports, requireFor(file, distDir), module, file, dirname(file))
  loaded.set(name, module.exports)
  if (cacheFile !== undefined) toWrite.push({ script, file: cacheFile, held: cache === undefined || script.cachedDataRejected === true ? [] : cache.commands })
  return module.exports
}

/** Caches of a bundle from other builds kept beside the current one: two builds sharing a BOTTLE_HOME (an install and a checkout) keep theirs. */
const KEEP_OTHER_BUILDS = 2

/**
 * Removes the caches of the same bundle made from other builds (an upgrade
 * leaves one of about 2 MB behind each time), all but the newest
 * KEEP_OTHER_BUILDS, for this node and machine only: another node's cache
 * is still good for that node. Also removes what a write killed half-way
 * left (`….v8.<pid>.tmp` of a process no longer running). Only names
 * bottle writes are touched; unlinking a symlink removes the link, not its
 * target.
 */
const CACHE_NAME = /^(.+)-[0-9a-f]{32}-(v[0-9.]+-[a-z0-9]+\.v8)$/
const LEFT_TMP = /\.v8\.([0-9]+)\.tmp$/
const running = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== "ESRCH"
  }
}
const removeStale = (file: string): void => {
  const dir = dirname(file)
  const mine = CACHE_NAME.exec(basename(file))
  if (mine === null) return
  const remove = (f: string) => {
    try {
      unlinkSync(join(dir, f))
    } catch {
      // Gone already, or not ours to remove: left.
    }
  }
  const others: Array<{ readonly f: string; readonly at: number }> = []
  for (const f of readdirSync(dir)) {
    const tmp = LEFT_TMP.exec(f)
    if (tmp !== null) {
      if (!running(Number(tmp[1]))) remove(f)
      continue
    }
    const other = CACHE_NAME.exec(f)
    if (f === basename(file) || other === null || other[1] !== mine[1] || other[2] !== mine[2]) continue
    let at = 0
    try {
      at = lstatSync(join(dir, f)).mtimeMs
    } catch {
      continue
    }
    others.push({ f, at })
  }
  for (const { f } of others.sort((a, b) => b.at - a.at).slice(KEEP_OTHER_BUILDS)) remove(f)
}

/**
 * A cache that holds code already learns a command only from a run this
 * short: V8 drops the compiled code of functions a long run (an apply that
 * waits, `logs -f`) stopped using, and a cache written then would lose it.
 */
const LEARN_WITHIN_SECONDS = 10

/**
 * Writes the caches this start lacked, or that lacked the code of the
 * command that ran (`ran`: the handler that ran, none for help and usage
 * errors), once it has run (so the code it compiled on the way is in
 * them), after removing those of earlier builds. Never fails the command.
 */
export const flushCodeCache = (ran: string | undefined): void => {
  const command = ran ?? "help"
  for (const { script, file, held } of toWrite.splice(0)) {
    if (held.includes(command) || held.length >= MAX_COMMANDS) continue
    if (held.length > 0 && process.uptime() > LEARN_WITHIN_SECONDS) continue
    const commands = [...held, command]
    try {
      mkdirSync(dirname(file), { recursive: true, mode: 0o700 })
      // First: on a full disk, what earlier builds left is what makes room.
      removeStale(file)
      const tmp = `${file}.${process.pid}.tmp`
      writeFileSync(tmp, Buffer.concat([Buffer.from(`bottle-code-cache ${commands.join(",")}\n`, "latin1"), script.createCachedData()]), { mode: 0o600, flag: "wx" })
      renameSync(tmp, file)
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
