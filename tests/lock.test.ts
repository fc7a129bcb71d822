/** The host-wide lock: one holder at a time; a dead holder's lock is taken over; a live one is named. */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Fiber } from "effect"
import { spawn } from "node:child_process"
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { hostname, tmpdir } from "node:os"
import { join } from "node:path"
import { lockPath, removeDeadLock, withLock } from "../src/reconcilers/lock.js"

const home = () => mkdtempSync(join(tmpdir(), "bottle-lock-"))

describe("withLock", () => {
  it.live("holds the lock while the body runs and releases it after", () =>
    Effect.gen(function* () {
      const h = home()
      const seen = yield* withLock(h, "bottle apply", 0)(Effect.sync(() => JSON.parse(readFileSync(lockPath(h), "utf8"))))
      expect(seen).toMatchObject({ pid: process.pid, command: "bottle apply" })
      expect(existsSync(lockPath(h))).toBe(false)
    }))

  it.live("takes over the lock of a dead holder", () =>
    Effect.gen(function* () {
      const h = home()
      const child = spawn(process.execPath, ["-e", "0"])
      const deadPid = yield* Effect.promise(() => new Promise<number>((r) => child.on("exit", () => r(child.pid!))))
      writeFileSync(lockPath(h), JSON.stringify({ pid: deadPid, host: hostname(), command: "bottle apply", since: "then" }))
      const ran = yield* withLock(h, "bottle reconcile --prune", 0)(Effect.succeed("ran"))
      expect(ran).toBe("ran")
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

  it("a takeover leaves alone a lock that changed since its holder was found dead", () => {
    const h = home()
    const dead = { pid: 999_999_999, host: hostname(), command: "bottle apply", since: "then" }
    const live = { pid: process.pid, host: hostname(), command: "bottle reconcile --prune", since: "now" }
    writeFileSync(lockPath(h), JSON.stringify(live))
    removeDeadLock(lockPath(h), dead)
    expect(JSON.parse(readFileSync(lockPath(h), "utf8"))).toEqual(live)
    writeFileSync(lockPath(h), JSON.stringify(dead))
    removeDeadLock(lockPath(h), dead)
    expect(existsSync(lockPath(h))).toBe(false)
  })

  it("six processes racing, over a dead holder's lock: never two holders at once, all get their turns", async () => {
    const h = home()
    const child = spawn(process.execPath, ["-e", "0"])
    const deadPid = await new Promise<number>((r) => child.on("exit", () => r(child.pid!)))
    writeFileSync(lockPath(h), JSON.stringify({ pid: deadPid, host: hostname(), command: "bottle apply", since: "then" }))
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
