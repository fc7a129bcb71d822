/**
 * The host-wide lock: one holder at a time; a lock nobody holds any more
 * (dead holder, reused pid, not a lock record) is taken over and the takeover
 * reported; a live one is named; a BOTTLE_HOME that cannot hold it is a
 * typed error naming it, never a stack trace.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Fiber } from "effect"
import { spawn, spawnSync } from "node:child_process"
import { existsSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from "node:fs"
import { hostname, tmpdir } from "node:os"
import { join } from "node:path"
import { lockPath, removeDeadLock, withLock } from "../src/reconcilers/lock.js"

const home = () => mkdtempSync(join(tmpdir(), "bottle-lock-"))

/** A pid that was a process a moment ago and is none now. */
const deadPid = () => {
  const child = spawn(process.execPath, ["-e", "0"])
  return new Promise<number>((r) => child.on("exit", () => r(child.pid!)))
}

/** Takes the lock with no wait, as a command would, and returns what it ran and every takeover it reported. */
const takeNow = (h: string) =>
  Effect.gen(function* () {
    const reports: Array<string> = []
    const ran = yield* withLock(h, "bottle reconcile --prune", 0, (m) => reports.push(m))(Effect.succeed("ran"))
    return { ran, reports }
  })

/**
 * Runs tests/support/lockOnce.ts for BOTTLE_HOME `h` with `dir` mounted
 * read-only, in a mount namespace of the worker's own (the mount goes with
 * it), and returns what it reported.
 */
const lockOnceReadOnly = (dir: string, h: string) =>
  new Promise<string>((resolve) => {
    const mountThenRun = ["unshare", "-m", "sh", "-c", 'mount -t tmpfs -o ro tmpfs "$1" && shift && exec "$@"', "sh", dir]
    const [cmd, ...args] = [...mountThenRun, process.execPath, "--import", "tsx", "tests/support/lockOnce.ts", h]
    const w = spawn(cmd!, args, { stdio: ["ignore", "pipe", "inherit"] })
    let out = ""
    w.stdout.on("data", (d) => { out += d })
    w.on("close", () => resolve(out.trim()))
  })

/** Whether this machine lets us mount a read-only tmpfs in a private mount namespace (root with CAP_SYS_ADMIN). */
const canMountReadOnly = process.platform === "linux"
  && spawnSync("unshare", ["-m", "sh", "-c", 'mount -t tmpfs -o ro tmpfs "$1"', "sh", home()], { stdio: "ignore" }).status === 0

describe("withLock", () => {
  it.live("holds the lock while the body runs, recording who holds it, and releases it after", () =>
    Effect.gen(function* () {
      const h = home()
      const seen = yield* withLock(h, "bottle apply", 0)(Effect.sync(() => JSON.parse(readFileSync(lockPath(h), "utf8"))))
      expect(seen).toMatchObject({ pid: process.pid, host: hostname(), command: "bottle apply", since: expect.any(String) })
      if (process.platform === "linux") expect(seen.startTime).toEqual(expect.any(Number))
      expect(existsSync(lockPath(h))).toBe(false)
    }))

  it.live("takes over the lock of a dead holder, and says whose it was", () =>
    Effect.gen(function* () {
      const h = home()
      const pid = yield* Effect.promise(deadPid)
      writeFileSync(lockPath(h), JSON.stringify({ pid, host: hostname(), command: "bottle apply", since: "then" }))
      const { ran, reports } = yield* takeNow(h)
      expect(ran).toBe("ran")
      expect(reports).toEqual([`took over the lock at ${lockPath(h)}: its holder (pid ${pid} on ${hostname()}, 'bottle apply', since then) is no longer running`])
    }))

  it.live.each([
    ["empty", "", "empty"],
    ["not JSON", '{"pid": 12', "not JSON"],
    ["pid 0", JSON.stringify({ pid: 0, host: hostname(), command: "bottle apply", since: "then" }), "pid 0"],
    ["a negative pid", JSON.stringify({ pid: -1, host: hostname(), command: "bottle apply", since: "then" }), "pid -1"],
    ["a live pid and nothing else", JSON.stringify({ pid: process.pid }), "not a bottle lock record"]
  ] as const)("takes over a lock file that is %s, and says it was unreadable", ([, content, why]) =>
    Effect.gen(function* () {
      const h = home()
      writeFileSync(lockPath(h), content)
      const { ran, reports } = yield* takeNow(h)
      expect(ran).toBe("ran")
      expect(reports).toEqual([`took over the lock at ${lockPath(h)}: the lock file was unreadable (${why})`])
      expect(existsSync(lockPath(h))).toBe(false)
    }))

  it.live("takes over a lock file that is a symlink leading nowhere", () =>
    Effect.gen(function* () {
      const h = home()
      symlinkSync(join(h, "nowhere"), lockPath(h))
      const { ran, reports } = yield* takeNow(h)
      expect(ran).toBe("ran")
      expect(reports).toEqual([`took over the lock at ${lockPath(h)}: the lock file was unreadable (a symlink to ${join(h, "nowhere")}, which leads nowhere)`])
    }))

  it.live.runIf(process.platform === "linux")("takes over a lock whose pid now belongs to another process, and leaves that process alone", () =>
    Effect.gen(function* () {
      const h = home()
      const stranger = spawn("sleep", ["30"])
      yield* Effect.addFinalizer(() => Effect.sync(() => stranger.kill()))
      // The holder started at tick 1 after boot: not the `sleep` now holding its pid.
      writeFileSync(lockPath(h), JSON.stringify({ pid: stranger.pid, startTime: 1, host: hostname(), command: "bottle apply", since: "then" }))
      const { ran, reports } = yield* takeNow(h)
      expect(ran).toBe("ran")
      expect(reports).toEqual([
        `took over the lock at ${lockPath(h)}: its holder (pid ${stranger.pid} on ${hostname()}, 'bottle apply', since then) is no longer running: pid ${stranger.pid} now belongs to another process`
      ])
      expect(stranger.exitCode).toBe(null)
      expect(stranger.signalCode).toBe(null)
    }).pipe(Effect.scoped))

  it.live("a command killed while holding the lock keeps it while it lives; once it is gone its lock is taken over", () =>
    Effect.gen(function* () {
      const h = home()
      const holder = spawn(process.execPath, ["--import", "tsx", "tests/support/lockOnce.ts", h, "hold"], { stdio: ["ignore", "pipe", "inherit"] })
      yield* Effect.addFinalizer(() => Effect.sync(() => holder.kill("SIGKILL")))
      yield* Effect.promise(() => new Promise<void>((r) => holder.stdout.on("data", (d) => { if (String(d).includes("HELD")) r() })))
      const held = yield* Effect.flip(takeNow(h))
      expect(held.message).toContain(`pid ${holder.pid} on ${hostname()} ('bottle apply'`)
      holder.kill("SIGKILL")
      yield* Effect.promise(() => new Promise<void>((r) => holder.on("exit", () => r())))
      const { ran, reports } = yield* takeNow(h)
      expect(ran).toBe("ran")
      expect(reports).toHaveLength(1)
      expect(reports[0]).toMatch(new RegExp(`^took over the lock at .*: its holder \\(pid ${holder.pid} on .*'bottle apply'.*\\) is no longer running$`))
    }).pipe(Effect.scoped), 30_000)

  it.live("a wait for a live holder can be cut short (a bad spec found meanwhile, Ctrl-C): at once, the holder's lock untouched", () =>
    Effect.gen(function* () {
      const h = home()
      const held = JSON.stringify({ pid: process.ppid, host: hostname(), command: "bottle apply", since: "2026-11-23T00:00:00Z" })
      writeFileSync(lockPath(h), held)
      let ran = false
      const waiting = yield* Effect.fork(withLock(h, "bottle apply", 60)(Effect.sync(() => { ran = true })))
      yield* Effect.sleep("500 millis")
      const started = Date.now()
      yield* Fiber.interrupt(waiting)
      expect(Date.now() - started).toBeLessThan(1000)
      expect(ran).toBe(false)
      expect(readFileSync(lockPath(h), "utf8")).toBe(held)
    }))

  it.live("waits for a live holder, then gives up naming it", () =>
    Effect.gen(function* () {
      const h = home()
      writeFileSync(lockPath(h), JSON.stringify({ pid: process.ppid, host: hostname(), command: "bottle apply -f x.yaml", since: "2026-11-23T00:00:00Z" }))
      const started = Date.now()
      const result = yield* Effect.either(withLock(h, "bottle apply", 1)(Effect.succeed("ran")))
      expect(Either.isLeft(result)).toBe(true)
      if (Either.isLeft(result)) {
        expect(result.left.message).toContain(`pid ${process.ppid}`)
        expect(result.left.message).toContain("bottle apply -f x.yaml")
      }
      expect(Date.now() - started).toBeGreaterThanOrEqual(900)
      // The holder's lock is left in place.
      expect(JSON.parse(readFileSync(lockPath(h), "utf8")).pid).toBe(process.ppid)
    }))

  it.live("never takes over the lock of a holder on another host, whose processes it cannot see", () =>
    Effect.gen(function* () {
      const h = home()
      const lock = JSON.stringify({ pid: yield* Effect.promise(deadPid), host: "elsewhere.example", command: "bottle apply", since: "then" })
      writeFileSync(lockPath(h), lock)
      const held = yield* Effect.flip(takeNow(h))
      expect(held._tag).toBe("LockHeld")
      expect(held.message).toContain("on elsewhere.example ('bottle apply', since then)")
      expect(readFileSync(lockPath(h), "utf8")).toBe(lock)
    }))

  it.live("lets a waiter in once the holder finishes", () =>
    Effect.gen(function* () {
      const h = home()
      const order: Array<string> = []
      const first = yield* Effect.fork(withLock(h, "first", 5)(Effect.sleep("300 millis").pipe(Effect.tap(() => Effect.sync(() => order.push("first"))))))
      yield* Effect.sleep("50 millis")
      yield* withLock(h, "second", 5)(Effect.sync(() => order.push("second")))
      yield* Fiber.join(first)
      expect(order).toEqual(["first", "second"])
    }))

  it("a takeover leaves alone a lock that changed since it was judged", () => {
    const h = home()
    const dead = JSON.stringify({ pid: 999_999_999, host: hostname(), command: "bottle apply", since: "then" })
    const live = JSON.stringify({ pid: process.pid, host: hostname(), command: "bottle reconcile --prune", since: "now" })
    writeFileSync(lockPath(h), live)
    expect(removeDeadLock(lockPath(h), Buffer.from(dead))).toBe(false)
    expect(removeDeadLock(lockPath(h), Buffer.alloc(0))).toBe(false)
    expect(readFileSync(lockPath(h), "utf8")).toBe(live)
    writeFileSync(lockPath(h), dead)
    expect(removeDeadLock(lockPath(h), Buffer.from(dead))).toBe(true)
    expect(existsSync(lockPath(h))).toBe(false)
  })

  it("six processes racing, over a dead holder's lock: never two holders at once, all get their turns", async () => {
    const h = home()
    writeFileSync(lockPath(h), JSON.stringify({ pid: await deadPid(), host: hostname(), command: "bottle apply", since: "then" }))
    const run = () => new Promise<string>((resolve) => {
      const w = spawn(process.execPath, ["--import", "tsx", "tests/support/lockWorker.ts", h, "15"], { stdio: ["ignore", "pipe", "inherit"] })
      let out = ""
      w.stdout.on("data", (d) => { out += d })
      w.on("close", () => resolve(out.trim()))
    })
    const outs = await Promise.all(Array.from({ length: 6 }, run))
    expect(outs).toEqual(Array(6).fill("DONE"))
    expect(existsSync(lockPath(h))).toBe(false)
  }, 60_000)
})

describe("a BOTTLE_HOME that cannot hold the lock", () => {
  it.live.each([
    ["is a regular file", (d: string) => { writeFileSync(join(d, "home"), "x"); return join(d, "home") }, "is not a directory"],
    ["lies under a regular file", (d: string) => { writeFileSync(join(d, "file"), "x"); return join(d, "file", "home") }, "cannot be made: part of its path is a file (ENOTDIR)"],
    ["holds a directory where the lock file belongs", (d: string) => { mkdirSync(lockPath(d)); return d }, "holds a directory where its lock file belongs"]
  ] as const)("that %s fails with a LockError naming it, and nothing runs", ([, make, detail]) =>
    Effect.gen(function* () {
      const h = make(home())
      let ran = false
      const error = yield* Effect.flip(withLock(h, "bottle apply", 0)(Effect.sync(() => { ran = true })))
      expect(error._tag).toBe("LockError")
      expect(error.message).toContain(`BOTTLE_HOME ${h} ${detail}`)
      expect(ran).toBe(false)
    }))

  // Root writes through chmod 0500, so read-only here means a read-only mount.
  it.runIf(canMountReadOnly).each([
    ["that is read-only", (d: string) => d, "is not writable (EROFS)"],
    ["to be made inside a read-only directory", (d: string) => join(d, "sub", "home"), "cannot be made: a directory above it is not writable (EROFS)"]
  ] as const)("%s fails with a LockError naming it", async (_case, at, detail) => {
    const d = home()
    expect(await lockOnceReadOnly(d, at(d))).toBe(`LockError: BOTTLE_HOME ${at(d)} ${detail}`)
  }, 60_000)
})
