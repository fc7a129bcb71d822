/** `bottle apply -f spec.yaml [--prune] [--dry-run] [--yes] [--set NAME]` */
import * as Command from "@effect/cli/Command"
import * as Effect from "effect/Effect"
import { concurrency, context, dryRun, files, output, prune, set, yes } from "./options.js"
import { mutate } from "./pipeline.js"
import { exitWith } from "./exit.js"
import { err } from "./output.js"

export const apply = Command.make("apply", { files, prune, dryRun, yes, set, output, concurrency, context }, (o) =>
  o.files.length === 0
    ? Effect.sync(() => err("error: apply needs at least one -f spec file or directory")).pipe(Effect.zipRight(Effect.fail(exitWith(2))))
    : mutate({ command: "bottle apply", context: o.context, files: o.files, set: o.set, prune: o.prune ? "set" : "none", output: o.output, dryRun: o.dryRun, yes: o.yes, concurrency: o.concurrency })
).pipe(Command.withDescription("make the machine match the spec; with --prune also remove bottles of the same set the spec no longer names"))
