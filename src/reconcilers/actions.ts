/** The typed steps of a plan. Each names its resource, a cause a person can read, and what it waits for. */
import * as Data from "effect/Data"
import type { DesiredBuild } from "../resources/desired.js"
import type { ContainerSpec, NetworkSpec, ReadySpec, StateDirSpec, VerifySpec } from "../resources/realise.js"
import type { Manifest } from "../resources/realiseKubernetes.js"
import type { MachineSpec } from "../resources/realiseSmolmachines.js"

/**
 * A proxy already running (left as it was) that must answer before what it fences starts: it may
 * have been started by a run that was killed before it was ready.
 */
export interface AwaitReady {
  readonly target: string
  readonly ready: ReadySpec
}

export type ResourceKind = "bottle" | "network" | "container" | "volume" | "machine" | "state dir" | "image" | "object"

interface Common {
  /** Unique within a plan; what `after` refers to. */
  readonly id: string
  /** The bottle this action belongs to, or undefined for a leftover no bottle claims. */
  readonly bottle: string | undefined
  /** The resource's name (a path for state dirs). */
  readonly resource: string
  readonly cause: string
  /** Ids of actions that must succeed before this one runs. */
  readonly after: ReadonlyArray<string>
}

export type Action = Data.TaggedEnum<{
  /** `subnets`: the ones to try, in order (the next when the Engine finds one taken); empty: the Engine picks. */
  CreateNetwork: Common & { readonly spec: NetworkSpec; readonly replaces: boolean; readonly subnets: ReadonlyArray<string> }
  RemoveNetwork: Common & { readonly networkId: string; readonly replaced: boolean }
  CreateContainer: Common & { readonly spec: ContainerSpec; readonly replaces: boolean }
  /**
   * Start a container; `created` when it follows this plan's CreateContainer. With a readiness check
   * in `spec.ready`, it is done once the container answers. `spec` also lets the runner repair a
   * container the Engine can no longer start (its own leftover state after a crash).
   */
  StartContainer: Common & { readonly created: boolean; readonly spec: ContainerSpec; readonly awaitReady?: AwaitReady }
  /** neverRan: the container was created and never started (a run cut off between create and start): replacing it loses nothing. */
  RemoveContainer: Common & { readonly containerId: string; readonly replaced: boolean; readonly neverRan?: true }
  RemoveVolume: Common
  CreateMachine: Common & { readonly spec: MachineSpec; readonly replaces: boolean }
  StartMachine: Common & { readonly created: boolean; readonly awaitReady?: AwaitReady }
  StopMachine: Common & { readonly replaced: boolean }
  DeleteMachine: Common & { readonly replaced: boolean }
  EnsureStateDir: Common & { readonly spec: StateDirSpec; readonly exists: boolean }
  RemoveStateDir: Common & { readonly root: string; readonly name: string }
  /**
   * Server-side apply of one Kubernetes object (fieldManager bottle, never forced). `create`: it was not
   * there when observed, so the runner first makes sure nothing of someone else's took the name since.
   */
  ApplyObject: Common & { readonly manifest: Manifest; readonly create: boolean }
  /** Deletes exactly the object observed (a UID precondition): one made anew under its name is left alone. */
  DeleteObject: Common & { readonly apiVersion: string; readonly objectKind: string; readonly namespace: string; readonly name: string; readonly uid: string }
  /** Build the agent's image from its context through the Engine, tagged by what the build sees. */
  BuildImage: Common & { readonly build: DesiredBuild }
  /** Probe a bottle's fence from inside its agent's network namespace; on failure the agent is stopped. */
  VerifyBottle: Common & { readonly spec: VerifySpec }
  Unchanged: Common & { readonly kind: ResourceKind }
  /**
   * Something the plan will not do. `error` is false when a safety rule is doing its job
   * (a `.preserve` dir kept, a live bottle's state kept) and true when the user must act
   * (an observer failed, a backend is missing, a bottle belongs to another set).
   */
  Blocked: Common & { readonly kind: ResourceKind; readonly rule: string; readonly error: boolean }
}>

export const Action = Data.taggedEnum<Action>()

export type ActionTag = Action["_tag"]

/** Actions that change nothing: shown in the diff, never executed. */
export const isMutating = (a: Action): boolean => a._tag !== "Unchanged" && a._tag !== "Blocked"

export const kindOf = (a: Action): ResourceKind => {
  switch (a._tag) {
    case "CreateNetwork":
    case "RemoveNetwork":
      return "network"
    case "CreateContainer":
    case "StartContainer":
    case "RemoveContainer":
      return "container"
    case "RemoveVolume":
      return "volume"
    case "CreateMachine":
    case "StartMachine":
    case "StopMachine":
    case "DeleteMachine":
      return "machine"
    case "EnsureStateDir":
    case "RemoveStateDir":
      return "state dir"
    case "VerifyBottle":
      return "bottle"
    case "ApplyObject":
    case "DeleteObject":
      return "object"
    case "BuildImage":
      return "image"
    case "Unchanged":
    case "Blocked":
      return a.kind
  }
}

/** Whether the action deletes something (the y/N question is asked for these). */
export const isDestructive = (a: Action): boolean =>
  a._tag === "RemoveNetwork" || (a._tag === "RemoveContainer" && !(a.replaced && a.neverRan === true)) || a._tag === "RemoveVolume" ||
  a._tag === "DeleteMachine" || a._tag === "StopMachine" || a._tag === "RemoveStateDir" || a._tag === "DeleteObject"

export interface Plan {
  readonly actions: ReadonlyArray<Action>
  /** Observers that failed: the plan was made from a partial snapshot. */
  readonly partial: ReadonlyArray<{ readonly source: string; readonly error: string }>
  /** Things seen and deliberately left alone (odd entries under state/, unavailable backends). */
  readonly notes: ReadonlyArray<string>
}
