/**
 * Walks a plan's DAG with bounded concurrency. It makes no decisions: each
 * action runs once its dependencies succeeded; a failure does not stop its
 * siblings, and its dependents are skipped with the reason.
 */
import { Deferred, Effect } from "effect"
import { isMutating, type Action, type Plan } from "./actions.js"
import { Outcome, type ActionResult, type Report } from "./report.js"

/** Runs one action; the error's message is what the report shows. */
export type RunAction = (action: Action) => Effect.Effect<string | void, { readonly message: string }>

export interface ExecuteOptions {
  readonly concurrency: number
  /** Called as each action ends, for live progress. */
  readonly onResult?: (result: ActionResult) => void
}

export const execute = (plan: Plan, run: RunAction, opts: ExecuteOptions): Effect.Effect<Report> =>
  Effect.gen(function* () {
    const actions = plan.actions.filter(isMutating)
    const unchanged = new Set(plan.actions.filter((a) => a._tag === "Unchanged").map((a) => a.id))
    const blocked = new Set(plan.actions.filter((a) => a._tag === "Blocked").map((a) => a.id))
    const done = new Map<string, Deferred.Deferred<Outcome>>()
    for (const a of actions) done.set(a.id, yield* Deferred.make<Outcome>())
    const semaphore = yield* Effect.makeSemaphore(Math.max(1, opts.concurrency))
    const results = new Map<string, ActionResult>()

    const runOne = (a: Action) =>
      Effect.gen(function* () {
        let outcome: Outcome | undefined
        for (const dep of a.after) {
          const d = done.get(dep)
          if (d === undefined) {
            // Waiting on something already as it should be is waiting on nothing; on anything else, not safe to go on.
            if (unchanged.has(dep)) continue
            if (outcome === undefined) outcome = Outcome.Skipped({ reason: `${dep} ${blocked.has(dep) ? "is blocked" : "is not in the plan"}` })
            continue
          }
          const o = yield* Deferred.await(d)
          if (o._tag !== "Done" && outcome === undefined) {
            outcome = Outcome.Skipped({ reason: `${dep} ${o._tag === "Failed" ? "failed" : "was skipped"}` })
          }
        }
        if (outcome === undefined) {
          outcome = yield* semaphore.withPermits(1)(
            run(a).pipe(
              Effect.map((note) => Outcome.Done(note ? { note } : {})),
              Effect.catchAll((e) => Effect.succeed(Outcome.Failed({ error: e.message }))),
              // A defect fails that action only: the others go on and the report is kept.
              Effect.catchAllDefect((d) => Effect.succeed(Outcome.Failed({ error: `unexpected failure: ${d instanceof Error ? d.message : String(d)}` })))
            )
          )
        }
        const result = { action: a, outcome }
        results.set(a.id, result)
        opts.onResult?.(result)
        yield* Deferred.succeed(done.get(a.id)!, outcome)
      })

    yield* Effect.forEach(actions, runOne, { concurrency: "unbounded", discard: true })
    return { results: actions.map((a) => results.get(a.id)!) }
  })
