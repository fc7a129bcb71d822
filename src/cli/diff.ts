/** `bottle diff -f spec.yaml [--prune]`: the plan apply would run. Exit 0 in sync, 1 changes pending, 2 error. */
import * as Effect from "effect/Effect"
import { isMutating } from "../reconcilers/actions.js"
import { planJson, renderPlan } from "../reconcilers/render.js"
import { exitWith } from "./exit.js"
import { withEngines } from "./engines.js"
import type * as O from "./options.js"
import { err, json, out, style } from "./output.js"
import { loadDesired, needsAttention, observeAndPlan } from "./pipeline.js"
import { SettingsTag } from "./settings.js"

export const diff = (o: O.Parsed<typeof O.diff>) =>
  Effect.gen(function* () {
    if (o.files.length === 0 && !o.prune) {
      err("error: diff needs at least one -f spec file or directory; diff --prune alone previews a full cleanup")
      return yield* Effect.fail(exitWith(2))
    }
    const settings = yield* SettingsTag
    // Without a spec, --prune is the preview of `reconcile --prune`: the desired set is empty, every set is in scope.
    const prune = o.files.length === 0 ? "all" : o.prune ? "set" : "none"
    const { plan: p } = yield* observeAndPlan(settings, loadDesired(settings, o.files, o.set), { context: o.context, files: o.files, set: o.set, prune, output: o.output })
    if (o.output === "json") json(planJson(p))
    else out(renderPlan(p, style()))
    if (needsAttention(p)) return yield* Effect.fail(exitWith(2))
    if (p.actions.some(isMutating)) return yield* Effect.fail(exitWith(1))
  }).pipe(withEngines)
