/**
 * The host-wide lock every mutating command holds: one file under
 * BOTTLE_HOME made with an exclusive create. A dead holder's lock is taken
 * over; a live holder makes us wait a little, then give up naming it.
 */
import { closeSync, linkSync, mkdirSync, openSync, readFileSync, statSync, unlinkSync, writeFileSync } from "node:fs"
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

const sameHolder = (a: LockHolder | undefined, b: LockHolder) => a !== undefined && a.pid === b.pid && a.host === b.host && a.since === b.since

/**
 * Removes a dead holder's lock, and only that lock. Takers serialise on a
 * second exclusive file and re-read the lock under it: a lock that changed
 * since it was found dead (someone else took over first) is left alone. A
 * takeover guard older than 10 s was left by a taker that died mid-way.
 */
export const removeDeadLock = (path: string, dead: LockHolder): void => {
  const guard = `${path}.takeover`
  try {
    closeSync(openSync(guard, "wx", 0o644))
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e
    try { if (statSync(guard).mtimeMs < Date.now() - 10_000) unlinkSync(guard) } catch { /* gone meanwhile */ }
    return
  }
  try {
    if (sameHolder(readHolder(path), dead)) unlinkSync(path)
  } finally {
    try { unlinkSync(guard) } catch { /* gone */ }
  }
}

const tryAcquire = (path: string, me: LockHolder, takeOver = true): Attempt => {
  // Written whole, then linked into place: the lock file is never seen empty, and link fails if it exists.
  const mine = `${path}.${me.pid}`
  writeFileSync(mine, JSON.stringify(me), { mode: 0o644 })
  try {
    linkSync(mine, path)
    return { _tag: "Acquired" }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e
  } finally {
    unlinkSync(mine)
  }
  const holder = readHolder(path)
  if (takeOver && holder !== undefined && holder.host === me.host && !alive(holder.pid)) {
    removeDeadLock(path, holder)
    return tryAcquire(path, me, false)
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
