/**
 * Walks a plan's DAG with bounded concurrency. It makes no decisions: each
 * action runs once its dependencies succeeded; a failure does not stop its
 * siblings, and its dependents are skipped with the reason.
 */
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { isMutating, type Action, type Plan } from "./actions.js"
import { Outcome, type ActionResult, type Report } from "./report.js"

/** Runs one action; the error's message is what the report shows. */
export type RunAction = (action: Action) => Effect.Effect<string | void, { readonly message: string }>

/** A request to stop (Ctrl-C, SIGTERM): nothing new starts; what runs gets `grace` to end. */
export interface StopRequest {
  /** Whether a stop was asked for (checked before each action starts). */
  readonly requested: () => boolean
  /** Completes when a stop is asked for. */
  readonly signalled: Effect.Effect<void>
  readonly grace: Duration.DurationInput
}

export interface ExecuteOptions {
  readonly concurrency: number
  /** Called as each action ends, for live progress. */
  readonly onResult?: (result: ActionResult) => void
  readonly stop?: StopRequest
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
        let ms = 0
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
            Effect.suspend((): Effect.Effect<Outcome> => {
              // Nothing new starts once a stop is asked for, even an action that was waiting for a permit.
              if (opts.stop?.requested() === true) return Effect.succeed(Outcome.Skipped({ reason: "interrupted before it started" }))
              const started = performance.now()
              const ran = run(a).pipe(
                Effect.ensuring(Effect.sync(() => { ms = Math.round(performance.now() - started) })),
                Effect.map((note): Outcome => Outcome.Done(note ? { note } : {})),
                Effect.catchAll((e) => Effect.succeed(Outcome.Failed({ error: e.message }))),
                // A defect fails that action only: the others go on and the report is kept.
                Effect.catchAllDefect((d) => Effect.succeed(Outcome.Failed({ error: `unexpected failure: ${d instanceof Error ? d.message : String(d)}` })))
              )
              if (opts.stop === undefined) return ran
              const { signalled, grace } = opts.stop
              // Running when the stop comes: it may end within the grace; past that it is cut off and reported so.
              return ran.pipe(Effect.raceFirst(signalled.pipe(
                Effect.zipRight(Effect.sleep(grace)),
                Effect.as(Outcome.Failed({ error: `interrupted: still running ${Duration.format(Duration.decode(grace))} after the stop; no longer waited for` }))
              )))
            })
          )
        }
        const result = { action: a, outcome, ms }
        results.set(a.id, result)
        opts.onResult?.(result)
        yield* Deferred.succeed(done.get(a.id)!, outcome)
      })

    yield* Effect.forEach(actions, runOne, { concurrency: "unbounded", discard: true })
    return { results: actions.map((a) => results.get(a.id)!) }
  })
