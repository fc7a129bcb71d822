/**
 * The command line: every option and argument, each named once, and what
 * each command takes. Read at every start, unlike the handlers (loaded only
 * when their command runs): keep its imports light.
 */
import * as Args from "@effect/cli/Args"
import type * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Schema from "effect/Schema"
import { BottleName } from "../resources/bottleName.js"

/** What a command's handler is given: its options and arguments, parsed. */
export type Parsed<C extends Command.Command.Config> = Command.Command.ParseConfig<C>

export const files = Options.text("filename").pipe(
  Options.withAlias("f"),
  Options.withDescription("spec file or directory of spec files (.yaml, .yml, .toml); repeatable"),
  Options.repeated
)

export const prune = Options.boolean("prune").pipe(
  Options.withDescription("also remove what the spec no longer names (apply: only bottles of this --set)")
)

export const dryRun = Options.boolean("dry-run").pipe(Options.withDescription("print the plan, change nothing"))

export const yes = Options.boolean("yes").pipe(
  Options.withAlias("y"),
  Options.withDescription("do not ask before deleting")
)

export const set = Options.text("set").pipe(
  Options.withSchema(BottleName),
  Options.withDefault("default"),
  Options.withDescription("the set these bottles belong to; prune only touches its own set")
)

export const output = Options.choice("output", ["table", "json"]).pipe(
  Options.withAlias("o"),
  Options.withDefault("table" as const),
  Options.withDescription("table for people, json for programs")
)

export const concurrency = Options.integer("concurrency").pipe(
  Options.withSchema(Schema.Int.pipe(Schema.between(1, 64))),
  Options.withDefault(8),
  Options.withDescription("actions run at once (1-64)")
)

export const context = Options.text("context").pipe(
  Options.withDescription("the kubeconfig context for bottles on Kubernetes (default: its current-context)"),
  Options.optional,
  Options.map((c) => (c._tag === "Some" ? c.value : undefined))
)

export const bottleName = Args.text({ name: "NAME" }).pipe(Args.withSchema(BottleName), Args.withDescription("the bottle"))

export const service = Options.choice("service", ["agent", "egress", "git", "supervise"]).pipe(
  Options.withDefault("agent" as const),
  Options.withDescription("which of the bottle's containers (default: the agent)")
)

export const commandLine = Args.text({ name: "COMMAND" }).pipe(Args.atLeast(1), Args.withDescription("the command and its arguments, after --"))

export const interactive = Options.boolean("interactive").pipe(Options.withAlias("i"), Options.withDescription("keep stdin open"))

export const tty = Options.boolean("tty").pipe(Options.withAlias("t"), Options.withDescription("allocate a terminal"))

export const env = Options.keyValueMap("env").pipe(Options.withAlias("e"), Options.optional, Options.withDescription("set an environment variable (K=V), repeatable"))

export const workdir = Options.text("workdir").pipe(Options.withAlias("w"), Options.optional, Options.withDescription("working directory inside the bottle"))

export const follow = Options.boolean("follow").pipe(Options.withAlias("f"), Options.withDescription("keep printing as the log grows"))

export const since = Options.text("since").pipe(Options.optional, Options.withDescription("only what came after (a Unix time, or a duration such as 10m)"))

export const tail = Options.text("tail").pipe(Options.optional, Options.withDescription("only the last N lines"))

export const egress = Options.boolean("egress").pipe(Options.withDescription("the proxy's decisions, as a table (or -o json)"))

export const all = Options.boolean("all").pipe(Options.withDescription("also the requests already decided"))

export const onlyBottle = Args.optional(bottleName)

export const requestId = Args.text({ name: "ID" }).pipe(Args.withDescription("the request's id (bottle requests lists them)"))

export const specFile = Options.text("filename").pipe(Options.withAlias("f"), Options.optional, Options.withDescription("the YAML spec file that defines the bottle (needed for an egress request)"))

export const note = Options.text("note").pipe(Options.optional, Options.withDescription("a word for the agent, with the decision"))

export const bottles = Args.text({ name: "NAME" }).pipe(Args.withSchema(BottleName), Args.repeated, Args.withDescription("bottles to verify (default: every running bottle)"))

/** What each command takes. */
export const apply = { files, prune, dryRun, yes, set, output, concurrency, context }
export const diff = { files, prune, set, output, context }
export const reconcile = { files, prune, dryRun, yes, set, output, concurrency, context }
export const get = { output, context }
export const verify = { bottles, output, context }
export const exec = { bottle: bottleName, service, interactive, tty, env, workdir, command: commandLine, context }
export const logs = { bottle: bottleName, service, follow, since, tail, egress, output, context }
export const requests = { bottle: onlyBottle, all, output }
export const approve = { id: requestId, file: specFile, yes, output }
export const deny = { id: requestId, note }
