/**
 * The flow every mutating command shares: load → lock → observe → plan →
 * show → confirm → execute → report. Exit codes as in the design.
 */
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { observe } from "../observers/observe.js"
import { loadSpecs } from "../resources/loadSpecs.js"
import type { DesiredBottle } from "../resources/desired.js"
import type { Settings } from "../resources/settings.js"
import { isDestructive, isMutating, type Plan } from "../reconcilers/actions.js"
import { execute } from "../reconcilers/execute.js"
import { withLock } from "../reconcilers/lock.js"
import { DEFAULT_KUBERNETES, plan as makePlan, type PruneScope } from "../reconcilers/plan.js"
import { actionJson, planJson, renderPlan, renderReportSummary, renderResult } from "../reconcilers/render.js"
import { hasFailures } from "../reconcilers/report.js"
import { Confirm } from "./confirm.js"
import { Interruption } from "./interrupt.js"
import { exitWith } from "./exit.js"
import { err, json, out, style } from "./output.js"
import { kubeAccess, kubeNamespaces, withKube } from "./kube.js"
import { SettingsTag } from "./settings.js"
import { VERSION } from "./version.js"

export interface PlanRequest {
  /** The kubeconfig context (`--context`), for bottles on Kubernetes. */
  readonly context?: string | undefined
  readonly files: ReadonlyArray<string>
  readonly set: string
  readonly prune: PruneScope
  readonly output: "table" | "json"
}

export const loadDesired = (settings: Settings, files: ReadonlyArray<string>, set: string) =>
  files.length === 0 ? Effect.succeed<ReadonlyArray<DesiredBottle>>([]) : loadSpecs(files, set, settings.host)

/** What realising a bottle needs from the settings. */
export const realiseContext = (settings: Settings) =>
  ({ names: settings.names, stateRoot: settings.stateRoot, egressImage: settings.egressImage, proxyUser: settings.proxyUser })

/** How the runner reaches what it acts on, from the settings. */
export const runnerOptions = (settings: Settings) => ({
  log: (line: string) => err(line),
  names: settings.names,
  probeImage: settings.probeImage,
  localEngine: settings.docker.socketPath !== undefined,
  readySeconds: settings.readySeconds,
  endpoint: settings.docker
})

/**
 * Observes and plans; an unreachable Docker Engine ends the command with 2 before anything is planned.
 * The spec files are read while the engine is asked (both take about as long, and neither changes
 * anything): a bad spec still ends the command first, as bad input, whatever the engine said.
 */
export const observeAndPlan = <E, R>(settings: Settings, load: Effect.Effect<ReadonlyArray<DesiredBottle>, E, R>, req: PlanRequest) =>
  Effect.gen(function* () {
    const [desired, local] = yield* Effect.all([load, observe(settings)], { concurrency: 2 })
    if (local.docker._tag === "Failed") {
      if (req.output === "json") json({ error: local.docker.error, endpoint: settings.docker.display })
      else err(`error: ${local.docker.error}\nNothing was changed.`)
      return yield* Effect.fail(exitWith(2))
    }
    const kube = yield* kubeAccess(settings, req.context, kubeNamespaces(desired, local))
    // A spec that puts a bottle on Kubernetes with a kubeconfig bottle cannot use is bad input: nothing is done.
    if (kube._tag === "Unusable" && desired.some((b) => b.backend === "kubernetes")) {
      if (req.output === "json") json({ error: kube.error })
      else err(`error: ${kube.error}\nNothing was changed.`)
      return yield* Effect.fail(exitWith(2))
    }
    const observed = yield* withKube(local, kube)
    const p: Plan = makePlan(desired, observed, {
      names: settings.names,
      realise: realiseContext(settings),
      subnetPool: settings.subnetPool,
      set: req.set,
      prune: req.prune,
      kubernetes: { tooling: `bottle/v${VERSION}`, stateSize: DEFAULT_KUBERNETES.stateSize, probeImage: settings.probeImage }
    })
    return { plan: p, kube }
  })

/** Blocked entries that need the user (not safety rules doing their job) and partial snapshots are errors. */
export const needsAttention = (p: Plan) => p.partial.length > 0 || p.actions.some((a) => a._tag === "Blocked" && a.error)

export interface MutateRequest extends PlanRequest {
  readonly command: string
  readonly dryRun: boolean
  readonly yes: boolean
  readonly concurrency: number
}

export const mutate = (req: MutateRequest) =>
  Effect.gen(function* () {
    const settings = yield* SettingsTag
    const confirm = yield* Confirm
    const interruption = yield* Interruption
    // Read at once, not under the lock: a bad spec is reported without waiting on another command.
    const loading = yield* Effect.fork(loadDesired(settings, req.files, req.set))
    const s = style()

    const body = Effect.gen(function* () {
      const { plan: p, kube } = yield* observeAndPlan(settings, Fiber.join(loading), req)
      const mutating = p.actions.filter(isMutating)
      if (req.output === "table") out(renderPlan(p, s))
      const attention = needsAttention(p)
      if (mutating.length === 0) {
        if (req.output === "json") json({ plan: planJson(p), report: null })
        if (attention) return yield* Effect.fail(exitWith(1))
        return
      }
      if (req.dryRun) {
        if (req.output === "json") json({ plan: planJson(p), report: null, dryRun: true })
        else out("Dry run: nothing was changed.")
        // As without --dry-run: a partial snapshot or a blocked bottle is not a clean result.
        if (attention) return yield* Effect.fail(exitWith(1))
        return
      }
      if (mutating.some(isDestructive) && !req.yes) {
        if (!confirm.interactive) {
          const msg = "refusing to delete without a terminal to ask on: pass --yes to confirm the plan above"
          if (req.output === "json") json({ plan: planJson(p), report: null, error: msg })
          else err(`error: ${msg}\nNothing was changed.`)
          return yield* Effect.fail(exitWith(2))
        }
        if (req.output === "json") err(renderPlan(p, style(process.stderr)))
        const ok = yield* confirm.ask("Do you want to perform these actions? Only 'y' or 'yes' is accepted [y/N]: ")
        if (!ok) {
          if (req.output === "json") json({ plan: planJson(p), report: null, cancelled: true })
          else out("Cancelled. Nothing was changed.")
          return
        }
      }
      // Loaded only when there is something to do: a no-op apply, a dry run and diff never initialise it.
      const { makeRunner } = yield* Effect.promise(() => import("../reconcilers/runAction.js"))
      const run = yield* (kube._tag === "Ready" ? makeRunner(runnerOptions(settings)).pipe(Effect.provide(kube.layer)) : makeRunner(runnerOptions(settings)))
      yield* interruption.executing
      const report = yield* execute(p, run, {
        concurrency: req.concurrency,
        stop: interruption.stop,
        onResult: (r) => {
          if (req.output === "table") out(renderResult(r, s))
        }
      })
      if (req.output === "json") {
        json({
          plan: planJson(p),
          report: report.results.map((r) => ({ action: actionJson(r.action), outcome: r.outcome._tag, ms: r.ms, ...(r.outcome._tag === "Failed" ? { error: r.outcome.error } : r.outcome._tag === "Skipped" ? { reason: r.outcome.reason } : {}) }))
        })
      } else {
        out("")
        out(renderReportSummary(report))
      }
      const signal = interruption.requested()
      if (signal !== undefined) {
        err(`${signal}: interrupted; the report above says what was done and what was not started. Run the command again to finish.`)
        return yield* Effect.fail(exitWith(130))
      }
      if (hasFailures(report) || attention) return yield* Effect.fail(exitWith(1))
    })
    const locked = withLock(settings.home, req.command, settings.lockWaitSeconds, (m) => err(`warning: ${m}`))(body)
    // Whichever ends first: the command, or the spec's failure (then the lock is given up, or never taken).
    return yield* Effect.raceFirst(locked, Fiber.join(loading).pipe(Effect.zipRight(Effect.never)))
  })

