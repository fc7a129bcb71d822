/**
 * The command tree: each command's options (options.ts) and description.
 * A command's handler is in its own module, loaded only when that command
 * runs: `--help` and a usage error load none of them, nor the Engine
 * client, the spec schema or the planner under them.
 */
import * as Command from "@effect/cli/Command"
import * as Effect from "effect/Effect"
import * as O from "./options.js"
import { VERSION } from "./version.js"

/** The command whose handler ran, if one did (none for help and usage errors): the compile cache learns its code. */
let ran: string | undefined
export const handlerRan = (): string | undefined => ran

/** Runs a handler from its module, imported as the command runs (the build keeps the module in the bundle, evaluated on first use). */
const later = <M, E, R>(command: string, load: () => Promise<M>, run: (m: M) => Effect.Effect<void, E, R>) =>
  Effect.suspend(() => {
    ran = command
    return Effect.flatMap(Effect.promise(load), run)
  })

const apply = Command.make("apply", O.apply, (o) => later("apply", () => import("./apply.js"), (m) => m.apply(o))).pipe(
  Command.withDescription("make the machine match the spec; with --prune also remove bottles of the same set the spec no longer names")
)

const diff = Command.make("diff", O.diff, (o) => later("diff", () => import("./diff.js"), (m) => m.diff(o))).pipe(
  Command.withDescription("print the plan apply would run and change nothing; exit 0 in sync, 1 changes pending, 2 error")
)

const reconcile = Command.make("reconcile", O.reconcile, (o) => later("reconcile", () => import("./reconcile.js"), (m) => m.reconcile(o))).pipe(
  Command.withDescription("remove every bottle resource and leftover the spec does not name (all of them without -f), keeping what is protected")
)

const get = Command.make("get", O.get, (o) => later("get", () => import("./get.js"), (m) => m.get(o))).pipe(
  Command.withDescription("list what is live, across every backend")
)

const verify = Command.make("verify", O.verify, (o) => later("verify", () => import("./verify.js"), (m) => m.verify(o))).pipe(
  Command.withDescription("probe each bottle's fence from inside its network namespace; exit 0 holds, 1 a property failed, 2 error")
)

const exec = Command.make("exec", O.exec, (o) => later("exec", () => import("./exec.js"), (m) => m.exec(o))).pipe(
  Command.withDescription("run a command in a bottle (its agent, or --service egress); exit with the command's code")
)

const logs = Command.make("logs", O.logs, (o) => later("logs", () => import("./logs.js"), (m) => m.logs(o))).pipe(
  Command.withDescription("a bottle's logs; --egress: what its proxy allowed and refused")
)

const requests = Command.make("requests", O.requests, (o) => later("requests", () => import("./requests.js"), (m) => m.requests(o))).pipe(
  Command.withDescription("list what agents asked their supervisors for (pending ones unless --all)")
)

const approve = Command.make("approve", O.approve, (o) => later("approve", () => import("./requests.js"), (m) => m.approve(o))).pipe(
  Command.withDescription("approve a request: an egress one is added to the bottle's spec file (-f) and applied")
)

const deny = Command.make("deny", O.deny, (o) => later("deny", () => import("./requests.js"), (m) => m.deny(o))).pipe(
  Command.withDescription("deny a request; the agent learns it when it checks")
)

export const root = Command.make("bottle").pipe(
  Command.withDescription("run AI coding agents in sandboxes, declaratively"),
  Command.withSubcommands([apply, diff, reconcile, get, verify, exec, logs, requests, approve, deny])
)

export const cli = Command.run(root, { name: "bottle", version: VERSION })
