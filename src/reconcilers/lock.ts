/**
 * The host-wide lock every mutating command holds: one file under
 * BOTTLE_HOME made with an exclusive create. A lock nobody holds any more
 * (its holder is dead, its pid now belongs to another process, or the file
 * is not a lock record at all) is taken over, and the caller is told; a live
 * holder makes us wait a little, then give up naming it.
 */
import { closeSync, linkSync, mkdirSync, openSync, readFileSync, readlinkSync, statSync, unlinkSync, writeFileSync } from "node:fs"
import { hostname } from "node:os"
import { dirname } from "node:path"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"

export interface LockHolder {
  readonly pid: number
  /**
   * When the holder started, in clock ticks since boot (field 22 of
   * /proc/<pid>/stat): with the pid it names one process, so a pid reused
   * after the holder died is not mistaken for it. Undefined off Linux.
   */
  readonly startTime?: number | undefined
  readonly host: string
  readonly command: string
  readonly since: string
}

/** Another bottle command holds the lock. Exit code 2. */
export class LockHeld extends Data.TaggedError("LockHeld")<{ readonly path: string; readonly holder: LockHolder | undefined; readonly waited: number }> {
  override get message(): string {
    const h = this.holder
    return h === undefined
      ? `another bottle command is taking the lock at ${this.path} over from a holder that is gone (waited ${this.waited}s)`
      : `another bottle command holds the lock: pid ${h.pid} on ${h.host} ('${h.command}', since ${h.since}); waited ${this.waited}s. Lock file: ${this.path}`
  }
}

/** BOTTLE_HOME cannot hold the lock (it is a file, read-only, full, …), so nothing was done. Exit code 2. */
export class LockError extends Data.TaggedError("LockError")<{ readonly path: string; readonly detail: string }> {
  override get message(): string {
    return `BOTTLE_HOME ${this.path} ${this.detail}`
  }
}

export const lockPath = (home: string) => `${home}/bottle.lock`

const errno = (e: unknown): string | undefined => e instanceof Error ? (e as NodeJS.ErrnoException).code : undefined

/**
 * What the lock path holds, read once. `raw` is what a takeover compares to
 * make sure the lock is still the one it judged: the file's bytes, or for a
 * symlink that leads nowhere, its target.
 */
type Found =
  | { readonly _tag: "Gone" }
  | { readonly _tag: "Record"; readonly raw: Buffer; readonly holder: LockHolder }
  | { readonly _tag: "Unreadable"; readonly raw: Buffer; readonly why: string }

const isHolder = (v: unknown): v is LockHolder => {
  const h = v as Partial<LockHolder> | null
  return typeof h === "object" && h !== null
    && Number.isSafeInteger(h.pid) && h.pid! > 0
    && typeof h.host === "string" && typeof h.command === "string" && typeof h.since === "string"
    && (h.startTime === undefined || Number.isSafeInteger(h.startTime))
}

/** Why bytes that are not a lock record are not one; pid 0 and negative pids matter because kill() reads them as process groups. */
const notARecord = (raw: Buffer): string => {
  if (raw.length === 0) return "empty"
  let v: unknown
  try {
    v = JSON.parse(raw.toString("utf8"))
  } catch {
    return "not JSON"
  }
  const pid = (v as { pid?: unknown } | null)?.pid
  if (typeof pid === "number" && pid <= 0) return `pid ${pid}`
  return "not a bottle lock record"
}

/** Reads the lock path; a refusal other than "not there" (EISDIR, EACCES) is thrown for the caller to name. */
const readLock = (path: string, tries = 3): Found => {
  let raw: Buffer
  try {
    raw = readFileSync(path)
  } catch (e) {
    const code = errno(e)
    if (code !== "ENOENT" && code !== "ELOOP") throw e
    let target: string
    try {
      target = readlinkSync(path)
    } catch (e2) {
      // Not a symlink, and not there: its holder released it while we looked.
      if (errno(e2) === "ENOENT") return { _tag: "Gone" }
      // Not a symlink, yet there: released and taken again by another command while we looked; read what is there now.
      if (errno(e2) === "EINVAL" && tries > 1) return readLock(path, tries - 1)
      throw e2
    }
    return { _tag: "Unreadable", raw: Buffer.from(`symlink:${target}`), why: `a symlink to ${target}, which leads nowhere` }
  }
  try {
    const v: unknown = JSON.parse(raw.toString("utf8"))
    if (isHolder(v)) return { _tag: "Record", raw, holder: v }
  } catch { /* judged below */ }
  return { _tag: "Unreadable", raw, why: notARecord(raw) }
}

/** When `pid` started (see LockHolder.startTime), or undefined where that cannot be read. */
const processStartTime = (pid: number): number | undefined => {
  if (process.platform !== "linux") return undefined
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    // The command name (field 2) is in parentheses and may hold spaces and ')'; fields 3 on follow the last ')'.
    const t = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[22 - 3])
    return Number.isSafeInteger(t) ? t : undefined
  } catch {
    return undefined
  }
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    // EPERM: it exists but is not ours to signal; it is alive.
    return errno(e) === "EPERM"
  }
}

const holderText = (h: LockHolder) => `pid ${h.pid} on ${h.host}, '${h.command}', since ${h.since}`

/** Why nobody holds the lock any more, or undefined while its holder may still run. */
const staleBecause = (found: Found, me: LockHolder): string | undefined => {
  if (found._tag === "Gone") return undefined
  if (found._tag === "Unreadable") return `the lock file was unreadable (${found.why})`
  const h = found.holder
  // A process on another host cannot be looked at from here; its lock stands.
  if (h.host !== me.host) return undefined
  if (!alive(h.pid)) return `its holder (${holderText(h)}) is no longer running`
  const now = h.startTime === undefined ? undefined : processStartTime(h.pid)
  if (now !== undefined && now !== h.startTime) return `its holder (${holderText(h)}) is no longer running: pid ${h.pid} now belongs to another process`
  return undefined
}

/**
 * Removes a lock nobody holds, and only that lock: `judged` is the raw
 * content it was judged on (see Found). Takers serialise on a second
 * exclusive file and re-read the lock under it: a lock that changed since it
 * was judged (someone else took over first) is left alone. A takeover guard
 * older than 10 s was left by a taker that died mid-way. Returns whether it
 * removed the lock.
 */
export const removeDeadLock = (path: string, judged: Uint8Array): boolean => {
  const guard = `${path}.takeover`
  try {
    closeSync(openSync(guard, "wx", 0o644))
  } catch (e) {
    if (errno(e) !== "EEXIST") throw e
    try { if (statSync(guard).mtimeMs < Date.now() - 10_000) unlinkSync(guard) } catch { /* gone meanwhile */ }
    return false
  }
  try {
    let now: Found
    try {
      now = readLock(path)
    } catch (e) {
      // Unreadable now in a way it was not when judged: it changed, so it is left alone.
      if (errno(e) !== undefined) return false
      throw e
    }
    if (now._tag === "Gone" || !now.raw.equals(judged)) return false
    unlinkSync(path)
    return true
  } finally {
    try { unlinkSync(guard) } catch { /* gone */ }
  }
}

type Attempt =
  | { readonly _tag: "Acquired"; readonly tookOver: string | undefined }
  | { readonly _tag: "Held"; readonly holder: LockHolder | undefined }

/**
 * mkdir -p one level at a time: Node's recursive mkdir reports ENOENT where
 * the system said EROFS, EACCES or ENOSPC (nodejs/node#47098, #31481), and
 * the person needs the real reason.
 */
const makeDir = (dir: string): void => {
  try {
    mkdirSync(dir)
  } catch (e) {
    if (errno(e) === "EEXIST") return
    if (errno(e) !== "ENOENT" || dirname(dir) === dir) throw e
    makeDir(dirname(dir))
    try { mkdirSync(dir) } catch (e2) { if (errno(e2) !== "EEXIST") throw e2 }
  }
}

/** Makes BOTTLE_HOME if it is missing, saying what is in the way if it cannot be. */
const ensureHome = (home: string): void => {
  try {
    makeDir(home)
  } catch (e) {
    const code = errno(e)
    if (code === "ENOTDIR") throw new LockError({ path: home, detail: "cannot be made: part of its path is a file (ENOTDIR)" })
    if (code === "EACCES" || code === "EPERM" || code === "EROFS") throw new LockError({ path: home, detail: `cannot be made: a directory above it is not writable (${code})` })
    throw e
  }
  let isDir = false
  try {
    isDir = statSync(home).isDirectory()
  } catch (e) {
    // A symlink that leads nowhere: not a directory either.
    if (errno(e) === undefined) throw e
  }
  if (!isDir) throw new LockError({ path: home, detail: "is not a directory" })
}

const tryAcquire = (home: string, path: string, me: LockHolder, takeOver = true): Attempt => {
  // Written whole, then linked into place: the lock file is never seen empty, and link fails if it exists.
  const mine = `${path}.${me.pid}`
  try {
    writeFileSync(mine, JSON.stringify(me), { mode: 0o644 })
  } catch (e) {
    const code = errno(e)
    if (code === "EACCES" || code === "EPERM" || code === "EROFS") throw new LockError({ path: home, detail: `is not writable (${code})` })
    if (code === "ENOSPC" || code === "EDQUOT") throw new LockError({ path: home, detail: `is full (${code})` })
    throw e
  }
  try {
    linkSync(mine, path)
    return { _tag: "Acquired", tookOver: undefined }
  } catch (e) {
    const code = errno(e)
    if (code === "EPERM") throw new LockError({ path: home, detail: "is on a file system without hard links, which the lock needs (EPERM)" })
    if (code !== "EEXIST") throw e
  } finally {
    unlinkSync(mine)
  }
  let found: Found
  try {
    found = readLock(path)
  } catch (e) {
    const code = errno(e)
    if (code === "EISDIR") throw new LockError({ path: home, detail: `holds a directory where its lock file belongs (${path}); remove it` })
    // EACCES and the like: a file bottle did not write, perhaps another user's; judging it is not ours to do.
    if (code !== undefined) throw new LockError({ path: home, detail: `holds a lock file bottle cannot read (${path}: ${code})` })
    throw e
  }
  // Released between our link and our read: try again at once.
  if (found._tag === "Gone") return takeOver ? tryAcquire(home, path, me, false) : { _tag: "Held", holder: undefined }
  const why = takeOver ? staleBecause(found, me) : undefined
  if (why !== undefined) {
    if (!removeDeadLock(path, found.raw)) return { _tag: "Held", holder: undefined }
    const next = tryAcquire(home, path, me, false)
    return next._tag === "Acquired" ? { _tag: "Acquired", tookOver: `took over the lock at ${path}: ${why}` } : next
  }
  return { _tag: "Held", holder: found._tag === "Record" ? found.holder : undefined }
}

/** Runs one step of taking the lock; any other refusal by the file system becomes a LockError too, and a bug stays a defect. */
const step = <A>(home: string, f: () => A): Effect.Effect<A, LockError> =>
  Effect.suspend(() => {
    try {
      return Effect.succeed(f())
    } catch (e) {
      if (e instanceof LockError) return Effect.fail(e)
      const code = errno(e)
      if (code !== undefined) return Effect.fail(new LockError({ path: home, detail: `cannot hold the lock (${(e as Error).message})` }))
      return Effect.die(e)
    }
  })

/**
 * Runs `use` holding the lock; waits up to `waitSeconds` for a live holder.
 * `onTakeover` hears, once, why a lock nobody held any more was taken over.
 */
export const withLock = (home: string, command: string, waitSeconds: number, onTakeover: (message: string) => void = () => {}) =>
  <A, E, R>(use: Effect.Effect<A, E, R>): Effect.Effect<A, E | LockHeld | LockError, R> => {
    const path = lockPath(home)
    const me: LockHolder = { pid: process.pid, startTime: processStartTime(process.pid), host: hostname(), command, since: new Date().toISOString() }
    const record = Buffer.from(JSON.stringify(me))
    const acquire = Effect.gen(function* () {
      yield* step(home, () => ensureHome(home))
      const started = Date.now()
      for (;;) {
        const attempt = yield* step(home, () => tryAcquire(home, path, me))
        if (attempt._tag === "Acquired") {
          const { tookOver } = attempt
          if (tookOver !== undefined) yield* Effect.sync(() => onTakeover(tookOver))
          return
        }
        const waited = (Date.now() - started) / 1000
        if (waited >= waitSeconds) return yield* Effect.fail(new LockHeld({ path, holder: attempt.holder, waited: Math.round(waited) }))
        // Waiting may be interrupted (a spec found bad meanwhile, Ctrl-C): the lock is not held here. The step that
        // takes it stays uninterruptible, so a lock taken is always released.
        yield* Effect.interruptible(Effect.sleep("200 millis"))
      }
    })
    const release = Effect.sync(() => {
      // Only our own record is removed; one we cannot read or remove is left for the next command to take over.
      try {
        if (readFileSync(path).equals(record)) unlinkSync(path)
      } catch { /* already gone, or BOTTLE_HOME turned unwritable */ }
    })
    return Effect.acquireUseRelease(acquire, () => use, () => release)
  }
