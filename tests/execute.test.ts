/** The executor: best-effort, dependency order, bounded concurrency. */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { Action, type Plan } from "../src/reconcilers/actions.js"
import { execute } from "../src/reconcilers/execute.js"

const volume = (id: string, after: ReadonlyArray<string> = []) =>
  Action.RemoveVolume({ id, bottle: undefined, resource: id, cause: "test", after })

const planOf = (...actions: ReadonlyArray<Action>): Plan => ({ actions, partial: [], notes: [] })

describe("execute", () => {
  it.live("runs every action it can; a failure skips only its dependents, naming the reason", () =>
    Effect.gen(function* () {
      const ran: Array<string> = []
      const p = planOf(volume("a"), volume("b", ["a"]), volume("c", ["b"]), volume("d"), volume("e", ["d"]))
      const report = yield* execute(p, (a) =>
        a.id === "a" ? Effect.fail({ message: "engine said no" }) : Effect.sync(() => void ran.push(a.id)), { concurrency: 8 })
      expect(report.results.map((r) => [r.action.id, r.outcome._tag])).toEqual([
        ["a", "Failed"], ["b", "Skipped"], ["c", "Skipped"], ["d", "Done"], ["e", "Done"]
      ])
      expect(report.results[1]!.outcome).toMatchObject({ reason: "a failed" })
      expect(report.results[2]!.outcome).toMatchObject({ reason: "b was skipped" })
      expect(ran.sort()).toEqual(["d", "e"])
    }))

  it.live("never starts an action before what it waits for has finished", () =>
    Effect.gen(function* () {
      const finished = new Set<string>()
      const violations: Array<string> = []
      const actions = Array.from({ length: 30 }, (_, i) => volume(`v${i}`, i >= 10 ? [`v${i - 10}`] : []))
      yield* execute(planOf(...actions), (a) =>
        Effect.gen(function* () {
          for (const dep of a.after) if (!finished.has(dep)) violations.push(`${a.id} before ${dep}`)
          yield* Effect.sleep(`${(Number(a.id.slice(1)) * 7) % 13} millis`)
          finished.add(a.id)
        }), { concurrency: 4 })
      expect(violations).toEqual([])
      expect(finished.size).toBe(30)
    }))

  it.live("runs at most `concurrency` actions at once, and does run that many", () =>
    Effect.gen(function* () {
      let running = 0
      let peak = 0
      const actions = Array.from({ length: 20 }, (_, i) => volume(`v${i}`))
      yield* execute(planOf(...actions), () =>
        Effect.acquireUseRelease(
          Effect.sync(() => { running++; peak = Math.max(peak, running) }),
          () => Effect.sleep("15 millis"),
          () => Effect.sync(() => { running-- })
        ), { concurrency: 3 })
      expect(peak).toBe(3)
    }))

  it.live("does not run Unchanged or Blocked entries", () =>
    Effect.gen(function* () {
      const p = planOf(
        Action.Unchanged({ id: "u", bottle: "a", resource: "x", cause: "running", after: [], kind: "container" }),
        Action.Blocked({ id: "b", bottle: "a", resource: "y", cause: "kept", after: [], kind: "state dir", rule: "preserve", error: false })
      )
      const report = yield* execute(p, () => Effect.die("must not run"), { concurrency: 1 })
      expect(report.results).toEqual([])
    }))

  it.live("an action waiting on a blocked or unknown entry is skipped; on an unchanged one it runs", () =>
    Effect.gen(function* () {
      const p = planOf(
        Action.Unchanged({ id: "u", bottle: "a", resource: "x", cause: "running", after: [], kind: "container" }),
        Action.Blocked({ id: "b", bottle: "a", resource: "y", cause: "kept", after: [], kind: "state dir", rule: "preserve", error: false }),
        volume("afterUnchanged", ["u"]), volume("afterBlocked", ["b"]), volume("afterNothing", ["nope"])
      )
      const report = yield* execute(p, () => Effect.void, { concurrency: 2 })
      expect(report.results.map((r) => [r.action.id, r.outcome._tag === "Skipped" ? r.outcome.reason : r.outcome._tag])).toEqual([
        ["afterUnchanged", "Done"], ["afterBlocked", "b is blocked"], ["afterNothing", "nope is not in the plan"]
      ])
    }))

  it.live("a defect in one action fails that action only: the rest run and the report is whole", () =>
    Effect.gen(function* () {
      const p = planOf(volume("boom"), volume("after", ["boom"]), volume("other"))
      const report = yield* execute(p, (a) => (a.id === "boom" ? Effect.die(new Error("kaput")) : Effect.sleep("20 millis")), { concurrency: 8 })
      expect(report.results.map((r) => [r.action.id, r.outcome._tag])).toEqual([["boom", "Failed"], ["after", "Skipped"], ["other", "Done"]])
      expect(report.results[0]!.outcome).toMatchObject({ error: "unexpected failure: kaput" })
    }))
})
