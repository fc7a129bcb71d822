/** `bottle apply -f spec.yaml [--prune] [--dry-run] [--yes] [--set NAME]` */
import * as Effect from "effect/Effect"
import { withEngines } from "./engines.js"
import type * as O from "./options.js"
import { mutate } from "./pipeline.js"
import { exitWith } from "./exit.js"
import { err } from "./output.js"

export const apply = (o: O.Parsed<typeof O.apply>) =>
  withEngines(
    o.files.length === 0
      ? Effect.sync(() => err("error: apply needs at least one -f spec file or directory")).pipe(Effect.zipRight(Effect.fail(exitWith(2))))
      : mutate({ command: "bottle apply", context: o.context, files: o.files, set: o.set, prune: o.prune ? "set" : "none", output: o.output, dryRun: o.dryRun, yes: o.yes, concurrency: o.concurrency })
  )
