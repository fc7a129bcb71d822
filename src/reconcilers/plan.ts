/**
 * plan(desired, observed, options) → Plan. Pure: no Effect, no I/O, the same
 * answer for the same input. Rules (../shared/DESIGN.md, "Plan"):
 * 1. missing → create; stopped → start; hash or image id differs → replace; else unchanged.
 * 2. up: networks → sidecars → agent; down: agent → sidecars → networks → state dir; machines stop before delete.
 * 3. only names with the prefix are ever touched.
 * 4. a state dir with `.preserve` is never removed.
 * 5. a state dir whose bottle is live anywhere is never removed; with any observer failed, none is.
 * 6. only what bottle made is removed: a state dir needs metadata naming this prefix.
 * 7. what fences a bottle is compared as observed (src/resources/fence.ts): a difference is drift, repaired by replacement.
 *
 * These rules are written once, over what each backend (src/reconcilers/backends/) says it owns and
 * what a bottle means on it (src/reconcilers/backend.ts): no rule here names a backend.
 */
import type { DesiredBottle } from "../resources/desired.js"
import { MANAGED_BY } from "../resources/labels.js"
import type { Names } from "../resources/names.js"
import { failures, type ObservedStateDir, type Observed } from "../resources/observed.js"
import type { RealiseContext, StateDirSpec } from "../resources/realise.js"
import type { Cidr } from "../resources/subnets.js"
import { Action, isDestructive, type Plan, type ResourceKind } from "./actions.js"
import { Builder, type BackendPlanner, type Owned, type PlanState } from "./backend.js"
import { dockerPlanner } from "./backends/docker.js"
import { makeEngine } from "./backends/engine.js"
import { kubePlanner } from "./backends/kubernetes.js"
import { smolPlanner } from "./backends/smolmachines.js"
import { byText } from "../resources/order.js"

export type PruneScope = "none" | "set" | "all"

export interface PlanOptions {
  readonly names: Names
  readonly realise: RealiseContext
  /** Where new networks get their subnets (BOTTLE_SUBNETS); undefined: the Engine's own pools decide. */
  readonly subnetPool?: ReadonlyArray<Cidr> | undefined
  /** The set the desired bottles belong to. */
  readonly set: string
  /** none: plain apply · set: `apply --prune` (this set only) · all: `reconcile --prune` (every set and leftover). */
  readonly prune: PruneScope
  /** Kubernetes: the ApplySet tooling bottle writes (`bottle/<version>`) and each workspace claim's size. */
  readonly kubernetes?: { readonly tooling: string; readonly stateSize: string; readonly probeImage?: string | undefined }
}

export const DEFAULT_KUBERNETES = { tooling: "bottle/v1", stateSize: "10Gi" } as const

/** Every backend over one snapshot, and everything they own (machines, containers, networks, volumes, objects, in that order). */
const planners = (desired: ReadonlyArray<DesiredBottle>, observed: Observed, opts: PlanOptions, shared: PlanState): { backends: ReadonlyArray<BackendPlanner>; all: ReadonlyArray<Owned> } => {
  const docker = observed.docker._tag === "Ok" ? observed.docker.value : undefined
  const machines = observed.smolvm._tag === "Ok" ? observed.smolvm.value.machines : []
  const engine = makeEngine(docker, machines, opts.names, shared)
  const backendOpts = { realise: opts.realise, subnetPool: opts.subnetPool }
  const preserved = new Set(observed.state._tag === "Ok" ? observed.state.value.dirs.filter((d) => d.preserve).map((d) => d.name) : [])
  const kubeOpts = { ...(opts.kubernetes ?? DEFAULT_KUBERNETES), realise: opts.realise, prune: opts.prune, set: opts.set, preserved }
  const kube = kubePlanner(observed.kubernetes, desired, kubeOpts, shared)
  return {
    backends: [dockerPlanner(observed.docker, engine, backendOpts), smolPlanner(observed.smolvm, engine, backendOpts), kube],
    all: [...engine.all, ...kube.items]
  }
}

export const plan = (desired: ReadonlyArray<DesiredBottle>, observed: Observed, opts: PlanOptions): Plan => {
  const { names } = opts
  const prefix = names.prefix
  const out = new Builder()
  const notes: Array<string> = []
  const partial = failures(observed)
  const state = observed.state._tag === "Ok" ? observed.state.value : undefined
  for (const i of state?.ignored ?? []) notes.push(`state/${i.name}: ${i.reason}; left alone`)

  const shared: PlanState = { out, names, claimed: new Set<Owned>(), removed: new Set<Owned>() }
  const { claimed, removed } = shared
  const { backends, all } = planners(desired, observed, opts, shared)
  const backendOf = (name: string) => backends.find((p) => p.name === name)!
  /** Rule 6: a state dir is this install's only when its metadata.json says so (or the older tool's names this prefix). */
  const stateOwner = (d: ObservedStateDir): "ours" | string => {
    const m = d.metadata
    if (m?.managedBy === MANAGED_BY) return m.prefix === prefix ? "ours" : `written by a bottle install with prefix '${m.prefix ?? "unknown"}'`
    if (m?.legacyProject !== undefined) {
      return names.claimsUnlabelled && names.owns(m.legacyProject) ? "ours" : `written by the older tool for project '${m.legacyProject}'`
    }
    return m === undefined ? "no metadata.json bottle wrote" : "metadata.json names no prefix"
  }
  const stateDirs = state?.dirs ?? []
  /** Takes down one group of things, each backend's in its own order. */
  const teardown = (bottle: string | undefined, items: ReadonlyArray<Owned>, cause: string): ReadonlyArray<string> =>
    [...backends].sort((a, b) => a.teardownOrder - b.teardownOrder).flatMap((p) => {
      const its = items.filter((i) => i.backend === p.name)
      return its.length > 0 ? p.teardown(bottle, its, cause) : []
    })

  const blockBottle = (b: DesiredBottle, rule: string, cause: string) =>
    out.add(Action.Blocked({ id: `Blocked:bottle:${b.name}`, bottle: b.name, resource: b.name, kind: "bottle", rule, cause, after: [], error: true }))

  // ---- the way up: every desired bottle --------------------------------------------------------
  for (const b of desired) {
    const mine = all.filter((i) => i.owner === b.name)
    const refuse = (rule: string, cause: string) => {
      mine.forEach((i) => claimed.add(i))
      blockBottle(b, rule, cause)
    }
    const foreignSet = mine.map((i) => i.set).find((s) => s !== undefined && s !== b.set) ??
      stateDirs.find((d) => d.name === b.name && d.metadata?.set !== undefined && d.metadata.set !== b.set)?.metadata?.set
    if (foreignSet !== undefined) {
      refuse("owned by another set", `bottle '${b.name}' belongs to set '${foreignSet}'; apply it with --set ${foreignSet}, or remove it there first`)
      continue
    }
    const existing = stateDirs.find((d) => d.name === b.name)
    const existingOwner = existing?.metadata !== undefined ? stateOwner(existing) : "ours"
    if (existingOwner !== "ours") {
      refuse("state dir not ours", `state/${b.name} was ${existingOwner}; bottle will not take it over (its workspace may be in use): name the bottle differently, or move that directory away`)
      continue
    }
    const backend = backendOf(b.backend)
    const unseen = backend.observable(b)
    if (unseen !== undefined) {
      refuse(unseen.rule, unseen.cause)
      continue
    }
    const odd = state?.ignored.find((i) => i.name === b.name)
    if (odd !== undefined) {
      refuse("state dir unusable", `state/${b.name} is ${odd.reason}: bottle will not write through it or mount it; move it away`)
      continue
    }
    if (b.secretProblems.length > 0) {
      refuse("secret missing", `${b.secretProblems.join("; ")}: bottle will not start it without`)
      continue
    }
    const prepared = backend.prepare(b)
    if (prepared._tag === "Refusal") {
      refuse(prepared.rule, prepared.cause)
      continue
    }

    // A bottle that changed backend: what the other backend holds goes first, so two agents never share a workspace.
    const moved = mine.filter((i) => !claimed.has(i) && i.backend !== b.backend)
    // Where it was cannot be seen: what runs there may still be running (and its state dir says where it is).
    const blindElsewhere = backends.find((p) => p.name !== b.backend && p.blind !== undefined &&
      (moved.some((i) => i.backend === p.name) || existing?.metadata?.backend === p.name))
    if (blindElsewhere !== undefined) {
      refuse("observation incomplete", `bottle moved to backend ${b.backend}, but ${blindElsewhere.blind}: ${blindElsewhere.blindRisk}`)
      continue
    }
    moved.forEach((i) => claimed.add(i))
    const movedIds = [...(moved.length > 0 ? teardown(b.name, moved, `bottle moved to backend ${b.backend}`) : []), ...(prepared.leave?.() ?? [])]

    // The state dir says where the bottle is: it changes once what it left elsewhere is gone (a crash in between leaves it findable).
    const sdId = planStateDir(out, b.name, prepared.stateDir, stateDirs, state !== undefined, movedIds)
    prepared.plan(sdId, movedIds)
  }

  // ---- the way down: prune -------------------------------------------------------------------
  const desiredNames = new Set(desired.map((b) => b.name))
  if (opts.prune !== "none") {
    const inScope = all.filter((i) => !claimed.has(i) && !desiredNames.has(i.owner ?? "\u0000"))
      .filter((i) => opts.prune === "all" || i.set === opts.set)
    // What a backend nobody could ask may still serve stays (a bundle may serve a machine nobody can see), and so does its bottle's state.
    const blindOf = (i: Owned) => backendOf(i.backend).blind
    for (const i of inScope.filter((x) => blindOf(x) !== undefined).sort((a, b) => byText(a.name, b.name))) {
      out.add(Action.Blocked({
        id: `Blocked:${i.kind}:${i.name}`, bottle: i.owner, resource: i.name, kind: i.kind, after: [], error: true,
        rule: "observation incomplete", cause: `${blindOf(i)}: ${backendOf(i.backend).blindRisk}`
      }))
    }
    const groups = new Map<string, Array<Owned>>()
    for (const i of inScope.filter((x) => blindOf(x) === undefined)) {
      const key = i.owner ?? ""
      groups.set(key, [...(groups.get(key) ?? []), i])
    }
    for (const key of [...groups.keys()].sort()) teardown(key === "" ? undefined : key, groups.get(key)!, key === "" ? "leftover" : "not in spec")
  }

  // ---- state dirs (rules 4 and 5) ------------------------------------------------------------
  if (opts.prune !== "none") {
    // Machines and workloads first: they are what "live" means to a person.
    const surviving = all.filter((i) => !removed.has(i)).sort((a, b) => a.rank - b.rank)
    const elsewhere = backends.flatMap((p) => p.elsewhere)
    const sorted = [...stateDirs].sort((a, b) => byText(a.name, b.name))
    for (const d of sorted) {
      if (desiredNames.has(d.name)) continue
      const owner = stateOwner(d)
      if (owner !== "ours") { notes.push(`state/${d.name}: unknown (${owner}); left alone`); continue }
      if (opts.prune === "set" && d.metadata?.set !== opts.set) continue
      const common = { id: `RemoveStateDir:${d.name}`, bottle: d.name, resource: d.path }
      const block = (rule: string, cause: string, error: boolean) =>
        out.add(Action.Blocked({ ...common, id: `Blocked:state:${d.name}`, kind: "state dir", rule, cause, after: [], error }))
      if (d.preserve) { block("preserve", ".preserve marker: only a person removes this state dir", false); continue }
      if (partial.length > 0) {
        block("observation incomplete", `liveness unknown: ${partial.map((f) => `${f.source} failed (${f.error})`).join("; ")}`, true)
        continue
      }
      const missing = backends.find((p) => p.missing !== undefined && d.metadata?.backend === p.name)
      if (missing !== undefined) {
        block("observation incomplete", `liveness unknown: ${missing.missing}; ${missing.blindRisk} (remove it by hand if it is not)`, true)
        continue
      }
      const live = surviving.find((i) => i.owner === d.name || (i.owner === undefined && strayMatches(i.name, prefix, d.name)))
      if (live !== undefined) {
        block("live", `bottle is live: ${live.kind} ${live.name}${live.state !== undefined ? ` (${live.state})` : ""}`, false)
        continue
      }
      // Liveness counts bottles of every prefix: a bottle of this name run by another install keeps the dir too.
      const other = elsewhere.find((x) => x.bottle === d.name)
      if (other !== undefined) {
        block("live", `a bottle named '${d.name}' is live under another prefix: ${other.kind} ${other.name} (${other.state})`, false)
        continue
      }
      // After every removal of what was (or, by its name, may have been) this bottle's.
      const after = out.actions.filter((a) => isDestructive(a) &&
        (a.bottle === d.name || (a.bottle === undefined && strayMatches(a.resource, prefix, d.name)))).map((a) => a.id)
      out.add(Action.RemoveStateDir({ ...common, cause: "not in spec", after, root: state!.root, name: d.name }))
    }
  }
  for (const p of backends) p.finish?.()
  return { actions: out.actions, partial, notes }
}

/** A leftover without labels may still belong to a bottle by its name: assume it does (the safe side). */
const strayMatches = (name: string, prefix: string, bottle: string) => {
  const base = `${prefix}-${bottle}`
  return name === base || name.startsWith(`${base}-`) || name.startsWith(`${base}_`)
}

const planStateDir = (out: Builder, bottle: string, spec: StateDirSpec, dirs: ReadonlyArray<ObservedStateDir>, observedState: boolean, after: ReadonlyArray<string>): string | undefined => {
  const d = dirs.find((x) => x.name === bottle)
  const common = { bottle, resource: spec.path, after }
  const ensure = (cause: string, exists: boolean) => out.add(Action.EnsureStateDir({ ...common, id: `EnsureStateDir:${bottle}`, cause, spec, exists }))
  if (!observedState) return ensure("state dirs could not be listed; writing it is safe", true)
  if (d === undefined) return ensure("missing", false)
  if (d.metadata === undefined) return ensure("metadata.json missing", true)
  if (d.metadata.specHash !== spec.specHash) return ensure("spec changed", true)
  if (spec.preserve && !d.preserve) return ensure("preserve: true but no .preserve marker", true)
  out.add(Action.Unchanged({ ...common, after: [], id: `Unchanged:state:${bottle}`, kind: "state dir", cause: "up to date" }))
  return undefined
}

export type { ResourceKind }
