/** The command tree. */
import * as Command from "@effect/cli/Command"
import { apply } from "./apply.js"
import { diff } from "./diff.js"
import { exec } from "./exec.js"
import { get } from "./get.js"
import { logs } from "./logs.js"
import { reconcile } from "./reconcile.js"
import { approve, deny, requests } from "./requests.js"
import { verify } from "./verify.js"
import { VERSION } from "./version.js"

export const root = Command.make("bottle").pipe(
  Command.withDescription("run AI coding agents in sandboxes, declaratively"),
  Command.withSubcommands([apply, diff, reconcile, get, verify, exec, logs, requests, approve, deny])
)

export const cli = Command.run(root, { name: "bottle", version: VERSION })
