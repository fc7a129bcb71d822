/** `bottle reconcile --prune [-f spec.yaml] [--yes]`: cleanup is reconciling to the desired set, empty without -f. */
import * as Effect from "effect/Effect"
import { withEngines } from "./engines.js"
import type * as O from "./options.js"
import { mutate } from "./pipeline.js"
import { exitWith } from "./exit.js"
import { err } from "./output.js"

export const reconcile = (o: O.Parsed<typeof O.reconcile>) =>
  withEngines(
    !o.prune
      ? Effect.sync(() => err("error: reconcile removes leftovers and needs --prune to say so (use apply to only create)")).pipe(Effect.zipRight(Effect.fail(exitWith(2))))
      : mutate({ command: "bottle reconcile --prune", context: o.context, files: o.files, set: o.set, prune: "all", output: o.output, dryRun: o.dryRun, yes: o.yes, concurrency: o.concurrency })
  )
