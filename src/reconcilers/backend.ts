/**
 * What the planner's core asks of a backend (docker, smolmachines,
 * kubernetes): which observed things it owns, whose and of which set they
 * are; what a desired bottle means on it; how its leftovers are taken down.
 * The core rules (src/reconcilers/plan.ts) are written once over these:
 * sets, prune scope, backend moves, `.preserve`, liveness across every
 * backend, partial snapshots. A backend adds no branch to them. Pure.
 */
import type { DesiredBottle } from "../resources/desired.js"
import type { Names } from "../resources/names.js"
import type { StateDirSpec } from "../resources/realise.js"
import type { Action, ResourceKind } from "./actions.js"

export type BackendName = DesiredBottle["backend"]

/** One observed thing a backend owns, as the core rules see it. */
export interface Owned {
  readonly backend: BackendName
  readonly kind: ResourceKind
  readonly name: string
  /** The bottle it belongs to, when that can be told (a leftover without labels may not say). */
  readonly owner: string | undefined
  /** The set it was applied with, when it carries bottle's labels. */
  readonly set: string | undefined
  /** What it is doing (running, exited, ...), for a person reading why a state dir is kept. */
  readonly state: string | undefined
  /** Which live thing is named first when a state dir is kept: machines and workloads before networks. */
  readonly rank: number
}

/** Collects a plan's actions; an id used twice is a bug in the planner. */
export class Builder {
  readonly actions: Array<Action> = []
  private readonly ids = new Set<string>()
  has(id: string): boolean {
    return this.ids.has(id)
  }
  add(a: Action): string {
    if (this.ids.has(a.id)) throw new Error(`plan bug: duplicate action id ${a.id}`)
    this.ids.add(a.id)
    this.actions.push(a)
    return a.id
  }
}

/** Why a backend will not take a bottle now; `rule` is what the report groups by. */
export interface Refusal {
  readonly _tag: "Refusal"
  readonly rule: string
  readonly cause: string
}

export const refusal = (rule: string, cause: string): Refusal => ({ _tag: "Refusal", rule, cause })

/**
 * A bottle a backend will make: its state dir, and how to plan the rest once
 * the core has planned that state dir (`stateDir`: its action id, when it
 * changes) and the removal of what another backend held for it (`after`).
 */
export interface Prepared {
  readonly _tag: "Prepared"
  readonly stateDir: StateDirSpec
  /**
   * Takes down what the bottle leaves behind on this backend (Kubernetes: its objects in a namespace it
   * moved from) and returns the ids: its state dir, which records where things are, changes only after.
   */
  readonly leave?: () => ReadonlyArray<string>
  readonly plan: (stateDir: string | undefined, after: ReadonlyArray<string>) => void
}

/** Shared by the core and every backend for one plan. */
export interface PlanState {
  readonly out: Builder
  readonly names: Names
  /** Items some desired bottle accounts for (kept, replaced or removed by its own planning). */
  readonly claimed: Set<Owned>
  /** Items this plan removes. */
  readonly removed: Set<Owned>
}

/** A bottle of any install (any prefix), for liveness: a state dir is kept while a bottle of its name runs anywhere. */
export interface SeenBottle {
  readonly kind: ResourceKind
  readonly name: string
  readonly bottle: string
  readonly state: string
}

export interface BackendPlanner {
  readonly name: BackendName
  /** What it observed and owns. */
  readonly items: ReadonlyArray<Owned>
  /** Set when it could not be observed: none of its things may go, and none of its bottles may be made. */
  readonly blind: string | undefined
  /** What a thing of it kept because of `blind` may still be serving. */
  readonly blindRisk: string
  /**
   * Set when it is not there at all (not installed, not configured): it has no things, but a state dir
   * of one of its bottles is not removed on that word alone (a PATH or kubeconfig may just be wrong here).
   */
  readonly missing: string | undefined
  /** Bottles labelled by any install that are not among `items`. */
  readonly elsewhere: ReadonlyArray<SeenBottle>
  /** Refuses a bottle its observation cannot support; asked before anything is planned for it. */
  readonly observable: (b: DesiredBottle) => Refusal | undefined
  /** Realises a bottle on this backend, or refuses it (nothing is planned for a refused bottle). */
  readonly prepare: (b: DesiredBottle) => Prepared | Refusal
  /**
   * Takes down what is left of one bottle (or of no known bottle), in its backend's order; returns the action
   * ids. It marks what it removes in `PlanState.removed`: what it keeps (a preserved claim) stays live.
   */
  readonly teardown: (bottle: string | undefined, items: ReadonlyArray<Owned>, cause: string) => ReadonlyArray<string>
  /** Lower goes first when one bottle's leftovers span backends (a machine before the bundle that served it). */
  readonly teardownOrder: number
  /** Runs once everything else is planned (Kubernetes narrows its ApplySet parents here). */
  readonly finish?: () => void
}
