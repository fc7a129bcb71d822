/** Options shared by the commands, each named once. */
import * as Options from "@effect/cli/Options"
import * as Schema from "effect/Schema"
import { BottleName } from "../resources/spec.js"

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
