/**
 * The host-wide lock every mutating command holds: one file under
 * BOTTLE_HOME made with an exclusive create. A dead holder's lock is taken
 * over; a live holder makes us wait a little, then give up naming it.
 */
import { closeSync, linkSync, mkdirSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from "node:fs"
import { hostname } from "node:os"
import { Data, Effect } from "effect"

export interface LockHolder {
  readonly pid: number
  readonly host: string
  readonly command: string
  readonly since: string
}

/** Another bottle command holds the lock. Exit code 2. */
export class LockHeld extends Data.TaggedError("LockHeld")<{ readonly path: string; readonly holder: LockHolder | undefined; readonly waited: number }> {
  override get message(): string {
    const h = this.holder
    return h === undefined
      ? `another bottle command holds ${this.path} (waited ${this.waited}s)`
      : `another bottle command holds the lock: pid ${h.pid} on ${h.host} ('${h.command}', since ${h.since}); waited ${this.waited}s. Lock file: ${this.path}`
  }
}

export const lockPath = (home: string) => `${home}/bottle.lock`

const readHolder = (path: string): LockHolder | undefined => {
  try {
    const v = JSON.parse(readFileSync(path, "utf8")) as LockHolder
    return typeof v.pid === "number" ? v : undefined
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
    return (e as NodeJS.ErrnoException).code === "EPERM"
  }
}

type Attempt = { readonly _tag: "Acquired" } | { readonly _tag: "Held"; readonly holder: LockHolder | undefined }

const tryAcquire = (path: string, me: LockHolder): Attempt => {
  try {
    const fd = openSync(path, "wx", 0o644)
    try { writeSync(fd, JSON.stringify(me)) } finally { closeSync(fd) }
    return { _tag: "Acquired" }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e
  }
  const holder = readHolder(path)
  if (holder !== undefined && holder.host === me.host && !alive(holder.pid)) {
    // A dead holder: move its lock aside (one taker wins the rename), then try again.
    try {
      const aside = `${path}.stale-${me.pid}`
      renameSync(path, aside)
      // Between our read and the rename a live process may have taken the lock: give it back.
      const moved = readHolder(aside)
      if (moved !== undefined && moved.pid !== holder.pid) linkSync(aside, path)
      unlinkSync(aside)
    } catch { /* another process took it over first */ }
    return tryAcquire(path, me)
  }
  return { _tag: "Held", holder }
}

/** Runs `use` holding the lock; waits up to `waitSeconds` for a live holder. */
export const withLock = (home: string, command: string, waitSeconds: number) =>
  <A, E, R>(use: Effect.Effect<A, E, R>): Effect.Effect<A, E | LockHeld, R> => {
    const path = lockPath(home)
    const me: LockHolder = { pid: process.pid, host: hostname(), command, since: new Date().toISOString() }
    const acquire = Effect.gen(function* () {
      yield* Effect.sync(() => mkdirSync(home, { recursive: true }))
      const started = Date.now()
      for (;;) {
        const attempt = yield* Effect.sync(() => tryAcquire(path, me))
        if (attempt._tag === "Acquired") return
        const waited = (Date.now() - started) / 1000
        if (waited >= waitSeconds) return yield* Effect.fail(new LockHeld({ path, holder: attempt.holder, waited: Math.round(waited) }))
        yield* Effect.sleep("200 millis")
      }
    })
    const release = Effect.sync(() => {
      if (readHolder(path)?.pid === me.pid) {
        try { unlinkSync(path) } catch { /* already gone */ }
      }
    })
    return Effect.acquireUseRelease(acquire, () => use, () => release)
  }
