/** What executing a plan did, action by action. */
import * as Data from "effect/Data"
import type { Action } from "./actions.js"

export type Outcome = Data.TaggedEnum<{
  Done: { readonly note?: string }
  Failed: { readonly error: string }
  Skipped: { readonly reason: string }
}>
export const Outcome = Data.taggedEnum<Outcome>()

export interface ActionResult {
  readonly action: Action
  readonly outcome: Outcome
  /** How long it ran, in milliseconds (0 for what never started). */
  readonly ms: number
}

export interface Report {
  readonly results: ReadonlyArray<ActionResult>
}

export const hasFailures = (r: Report): boolean => r.results.some((x) => x.outcome._tag !== "Done")
