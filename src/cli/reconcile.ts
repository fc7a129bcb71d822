/** `bottle reconcile --prune [-f spec.yaml] [--yes]`: cleanup is reconciling to the desired set, empty without -f. */
import * as Command from "@effect/cli/Command"
import * as Effect from "effect/Effect"
import { concurrency, context, dryRun, files, output, prune, set, yes } from "./options.js"
import { mutate } from "./pipeline.js"
import { exitWith } from "./exit.js"
import { err } from "./output.js"

export const reconcile = Command.make("reconcile", { files, prune, dryRun, yes, set, output, concurrency, context }, (o) =>
  !o.prune
    ? Effect.sync(() => err("error: reconcile removes leftovers and needs --prune to say so (use apply to only create)")).pipe(Effect.zipRight(Effect.fail(exitWith(2))))
    : mutate({ command: "bottle reconcile --prune", context: o.context, files: o.files, set: o.set, prune: "all", output: o.output, dryRun: o.dryRun, yes: o.yes, concurrency: o.concurrency })
).pipe(Command.withDescription("remove every bottle resource and leftover the spec does not name (all of them without -f), keeping what is protected"))
