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
 */
import type { DesiredBottle, DesiredBuild } from "../resources/desired.js"
import { desiredFacts, fenceDrift, networkDrift } from "../resources/fence.js"
import { changedFields } from "../resources/hash.js"
import { normaliseImageRef } from "../resources/imageRef.js"
import { Bottle as BL, Compose, MANAGED_BY } from "../resources/labels.js"
import type { Names } from "../resources/names.js"
import {
  failures,
  type ObservedContainer,
  type ObservedMachine,
  type ObservedNetwork,
  type ObservedStateDir,
  type ObservedVolume,
  type Observed
} from "../resources/observed.js"
import { realiseDocker, type ContainerSpec, type NetworkSpec, type RealiseContext, type StateDirSpec, type VerifySpec } from "../resources/realise.js"
import { EGRESS_IP_LABEL, realiseSmolmachines, type MachineSpec } from "../resources/realiseSmolmachines.js"
import { ownership } from "../resources/ownership.js"
import { formatCidr, freeSubnets, lastHost, parseCidr, type Cidr } from "../resources/subnets.js"
import { Action, isDestructive, type AwaitReady, type Plan, type ResourceKind } from "./actions.js"

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
}

type Item =
  | { readonly kind: "container"; readonly c: ObservedContainer }
  | { readonly kind: "network"; readonly n: ObservedNetwork }
  | { readonly kind: "volume"; readonly v: ObservedVolume }
  | { readonly kind: "machine"; readonly m: ObservedMachine }

const bare = (name: string) => name.replace(/^\//, "")
const itemName = (i: Item) => (i.kind === "container" ? bare(i.c.name) : i.kind === "network" ? i.n.name : i.kind === "volume" ? i.v.name : i.m.name)
const itemLabels = (i: Item) => (i.kind === "container" ? i.c.labels : i.kind === "network" ? i.n.labels : i.kind === "volume" ? i.v.labels : i.m.labels)
const isRunning = (state: string) => state === "running" || state === "restarting"

class Builder {
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

export const plan = (desired: ReadonlyArray<DesiredBottle>, observed: Observed, opts: PlanOptions): Plan => {
  const { names } = opts
  const prefix = names.prefix
  const out = new Builder()
  const notes: Array<string> = []
  const partial = failures(observed)
  const docker = observed.docker._tag === "Ok" ? observed.docker.value : undefined
  const smol = observed.smolvm._tag === "Ok" ? observed.smolvm.value : observed.smolvm._tag === "Unavailable" ? { version: "", machines: [] } : undefined
  const state = observed.state._tag === "Ok" ? observed.state.value : undefined
  for (const i of state?.ignored ?? []) notes.push(`state/${i.name}: ${i.reason}; left alone`)

  // Rule 3: everything not this install's is invisible from here on (src/resources/ownership.ts).
  const own = ownership(names)
  const ownsByLabels = own.owns
  const containers = (docker?.containers ?? []).filter((c) => ownsByLabels(c.name, c.labels))
  const networks = (docker?.networks ?? []).filter((n) => ownsByLabels(n.name, n.labels))
  // Volumes only through a project of ours: a volume named with the prefix in someone else's project is theirs.
  const volumes = (docker?.volumes ?? []).filter((v) => names.claimsUnlabelled && v.labels[Compose.project] !== undefined && names.owns(v.labels[Compose.project]!))
  const machines = (smol?.machines ?? []).filter((m) => ownsByLabels(m.name, m.labels))
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
  const images = docker?.images ?? {}

  const ownerOf = (i: Item): string | undefined => own.ownerOf(itemName(i), itemLabels(i), i.kind === "machine")
  /** Which backend an item serves: machines and their sidecar bundles are smolmachines', the rest docker's. */
  const backendOf = (i: Item): "docker" | "smolmachines" => (own.isSmolmachines(itemName(i), i.kind === "machine") ? "smolmachines" : "docker")
  const setOf = (i: Item) => {
    const l = itemLabels(i)
    return l[BL.managedBy] === MANAGED_BY ? l[BL.set] : undefined
  }

  const all: Array<Item> = [
    ...containers.map((c) => ({ kind: "container", c }) as const),
    ...networks.map((n) => ({ kind: "network", n }) as const),
    ...volumes.map((v) => ({ kind: "volume", v }) as const),
    ...machines.map((m) => ({ kind: "machine", m }) as const)
  ]
  /** Set when smolvm could not be asked: then no bundle may go, it may serve a running machine. */
  const smolvmBlind = observed.smolvm._tag === "Failed" ? `smolvm could not be observed (${observed.smolvm.error})` : undefined
  /**
   * Set when smolvm is not installed: that means no machines (their bundles are leftovers), but a
   * smolmachines bottle's state is not removed on that word alone: a PATH without smolvm (cron,
   * sudo) or a mistyped BOTTLE_SMOLVM looks the same, and its machine may still be running.
   */
  const smolvmMissing = observed.smolvm._tag === "Unavailable" ? `smolvm is not available (${observed.smolvm.reason})` : undefined
  /** Subnets in use on the engine (every network's, bottle's or not), and those this plan gives out. */
  const taken: Array<Cidr> = (docker?.networks ?? []).flatMap((n) => (n.subnets ?? []).flatMap((x) => {
    const c = parseCidr(x.subnet)
    return typeof c === "string" ? [] : [c]
  }))
  const subnets = new Map<string, ReadonlyArray<string>>()
  /** Picks the subnets to try for a network (the first is reserved for it); false when the pool has none left. */
  const reserveSubnets = (name: string, pool: ReadonlyArray<Cidr>, count: number): boolean => {
    const free = freeSubnets(`${prefix}/${name}`, pool, taken, count)
    if (free.length === 0) return false
    taken.push(free[0]!)
    subnets.set(name, free.map(formatCidr))
    return true
  }
  /** Items a desired bottle accounts for (kept, replaced or removed by its own planning). */
  const claimed = new Set<Item>()
  /** Items this plan removes. */
  const removed = new Set<Item>()

  const blockBottle = (b: DesiredBottle, rule: string, cause: string) =>
    out.add(Action.Blocked({ id: `Blocked:bottle:${b.name}`, bottle: b.name, resource: b.name, kind: "bottle", rule, cause, after: [], error: true }))

  // ---- the way up: every desired bottle --------------------------------------------------------
  for (const b of desired) {
    const mine = all.filter((i) => ownerOf(i) === b.name)
    const foreignSet = mine.map(setOf).find((s) => s !== undefined && s !== b.set) ??
      stateDirs.find((d) => d.name === b.name && d.metadata?.set !== undefined && d.metadata.set !== b.set)?.metadata?.set
    if (foreignSet !== undefined) {
      mine.forEach((i) => claimed.add(i))
      blockBottle(b, "owned by another set", `bottle '${b.name}' belongs to set '${foreignSet}'; apply it with --set ${foreignSet}, or remove it there first`)
      continue
    }
    const existing = stateDirs.find((d) => d.name === b.name)
    const existingOwner = existing?.metadata !== undefined ? stateOwner(existing) : "ours"
    if (existingOwner !== "ours") {
      mine.forEach((i) => claimed.add(i))
      blockBottle(b, "state dir not ours", `state/${b.name} was ${existingOwner}; bottle will not take it over (its workspace may be in use): name the bottle differently, or move that directory away`)
      continue
    }
    if (docker === undefined) {
      mine.forEach((i) => claimed.add(i))
      blockBottle(b, "observation incomplete", "the Docker Engine could not be observed")
      continue
    }
    if (b.backend === "smolmachines" && smol === undefined) {
      mine.forEach((i) => claimed.add(i))
      blockBottle(b, "observation incomplete", `smolvm could not be observed: ${observed.smolvm._tag === "Failed" ? observed.smolvm.error : ""}`)
      continue
    }
    if (b.backend === "smolmachines" && observed.smolvm._tag === "Unavailable") {
      mine.forEach((i) => claimed.add(i))
      blockBottle(b, "backend unavailable", `backend smolmachines needs smolvm ≥ 1.8: ${observed.smolvm.reason}`)
      continue
    }

    const odd = state?.ignored.find((i) => i.name === b.name)
    if (odd !== undefined) {
      mine.forEach((i) => claimed.add(i))
      blockBottle(b, "state dir unusable", `state/${b.name} is ${odd.reason}: bottle will not write through it or mount it; move it away`)
      continue
    }

    if (b.secretProblems.length > 0) {
      mine.forEach((i) => claimed.add(i))
      blockBottle(b, "secret missing", `${b.secretProblems.join("; ")}: bottle will not start it without`)
      continue
    }
    const onPodman = b.backend === "docker" && docker.engine?.kind === "podman"
    if (onPodman && (docker.engine?.networkBackend !== "netavark" || docker.engine.rootless === true)) {
      mine.forEach((i) => claimed.add(i))
      blockBottle(b, "engine not supported", `Podman ${docker.engine?.version ?? ""} with the ${docker.engine?.networkBackend ?? "unknown"} network backend${docker.engine?.rootless === true ? ", rootless" : ""}: bottle proves its fence only on rootful Podman with netavark (elsewhere its internal networks keep a way to the host)`)
      continue
    }
    // On Podman the proxy's address is pinned in the agent's hosts file, so it is placed once the subnet is known.
    const sketch = b.backend === "docker"
      ? { kind: "docker" as const, r: realiseDocker(b, opts.realise, onPodman ? { egressIp: "0.0.0.0", gitIp: "0.0.0.0", superviseIp: "0.0.0.0" } : undefined) }
      : { kind: "smolmachines" as const, r: realiseSmolmachines(b, opts.realise) }
    // Every network the bottle must make gets its subnet now, or the bottle is not started at all (never half-made).
    const toMake = (sketch.kind === "docker" ? sketch.r.networks : sketch.r.network !== undefined ? [sketch.r.network] : [])
      .filter((spec) => !networks.some((n) => n.name === spec.name && networkMatches(spec, n)))
    const full = opts.subnetPool !== undefined ? toMake.find((spec) => !reserveSubnets(spec.name, opts.subnetPool!, onPodman ? 1 : 4)) : undefined
    if (full !== undefined) {
      mine.forEach((i) => claimed.add(i))
      blockBottle(b, "subnet pool full", `no free /28 left in BOTTLE_SUBNETS (${opts.subnetPool!.map(formatCidr).join(", ")}) for network ${full.name}: remove bottles you no longer need, or give bottle a larger pool`)
      continue
    }
    let realised = sketch
    if (onPodman && sketch.kind === "docker") {
      const internal = sketch.r.networks[0]!
      const kept = networks.find((n) => n.name === internal.name && networkMatches(internal, n))?.subnets?.[0]?.subnet
      const subnet = kept ?? subnets.get(internal.name)?.[0]
      const parsed = subnet !== undefined ? parseCidr(subnet) : undefined
      if (parsed === undefined || typeof parsed === "string") {
        mine.forEach((i) => claimed.add(i))
        blockBottle(b, "engine not supported", "on Podman bottle pins its proxy's address, so it needs its own subnets: unset BOTTLE_SUBNETS=engine")
        continue
      }
      // The proxy at the subnet's last address, the git gate and the supervisor just below it.
      realised = { kind: "docker", r: realiseDocker(b, opts.realise, { egressIp: lastHost(parsed), gitIp: lastHost(parsed, 1), superviseIp: lastHost(parsed, 2) }) }
    }

    // A bottle that changed backend: what the other backend holds goes first, so two agents never share a workspace.
    const moved = mine.filter((i) => !claimed.has(i) && backendOf(i) !== b.backend)
    if (smolvmBlind !== undefined && moved.length > 0) {
      mine.forEach((i) => claimed.add(i))
      blockBottle(b, "observation incomplete", `bottle moved to backend ${b.backend}, but ${smolvmBlind}: its machine may still be running`)
      continue
    }
    moved.forEach((i) => { claimed.add(i); removed.add(i) })
    const movedIds = moved.length > 0 ? planTeardown(out, b.name, moved, `bottle moved to backend ${b.backend}`) : []

    const sdId = planStateDir(out, b.name, realised.r.stateDir, stateDirs, state !== undefined)
    const up = { out, containers, networks, images, claimed, removed, all, subnets }
    if (realised.kind === "docker") planDockerBottle(up, b, realised.r, names, sdId, movedIds)
    else planSmolBottle(up, b, realised.r, machines, names, sdId, movedIds)
  }

  // ---- the way down: prune -------------------------------------------------------------------
  const desiredNames = new Set(desired.map((b) => b.name))
  if (opts.prune !== "none") {
    const inScope = all.filter((i) => !claimed.has(i) && !desiredNames.has(ownerOf(i) ?? "\u0000"))
      .filter((i) => opts.prune === "all" || setOf(i) === opts.set)
    // A sidecar bundle may still serve a running machine nobody can see: it stays, and so does its bottle's state.
    const candidates = inScope.filter((i) => smolvmBlind === undefined || backendOf(i) !== "smolmachines")
    for (const i of inScope.filter((x) => !candidates.includes(x)).sort((a, b) => itemName(a).localeCompare(itemName(b)))) {
      out.add(Action.Blocked({
        id: `Blocked:${i.kind}:${itemName(i)}`, bottle: ownerOf(i), resource: itemName(i), kind: i.kind, after: [], error: true,
        rule: "observation incomplete", cause: `${smolvmBlind}: its machine may still be running`
      }))
    }
    const groups = new Map<string, Array<Item>>()
    for (const i of candidates) {
      const key = ownerOf(i) ?? ""
      groups.set(key, [...(groups.get(key) ?? []), i])
    }
    for (const key of [...groups.keys()].sort()) {
      planTeardown(out, key === "" ? undefined : key, groups.get(key)!, key === "" ? "leftover" : "not in spec")
      groups.get(key)!.forEach((i) => removed.add(i))
    }
  }

  // ---- state dirs (rules 4 and 5) ------------------------------------------------------------
  if (opts.prune !== "none") {
    // Machines and containers first: they are what "live" means to a person.
    const rank = { machine: 0, container: 1, network: 2, volume: 3 } as const
    const surviving = all.filter((i) => !removed.has(i)).sort((a, b) => rank[a.kind] - rank[b.kind])
    const sorted = [...stateDirs].sort((a, b) => a.name.localeCompare(b.name))
    const ourIds = new Set(containers.map((c) => c.id))
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
      if (smolvmMissing !== undefined && d.metadata?.backend === "smolmachines") {
        block("observation incomplete", `liveness unknown: ${smolvmMissing}; its machine may still be running (remove it by hand if it is not)`, true)
        continue
      }
      const live = surviving.find((i) => ownerOf(i) === d.name || (ownerOf(i) === undefined && strayMatches(itemName(i), prefix, d.name)))
      if (live !== undefined) {
        block("live", `bottle is live: ${live.kind} ${itemName(live)}${live.kind === "container" ? ` (${live.c.state})` : live.kind === "machine" ? ` (${live.m.state})` : ""}`, false)
        continue
      }
      // Liveness counts bottles of every prefix: a bottle of this name run by another install keeps the dir too.
      const elsewhere = [
        ...(docker?.anyPrefix ?? []).filter((c) => !ourIds.has(c.id)).map((c) => ({ kind: "container", name: c.name, labels: c.labels, state: c.state })),
        ...(smol?.machines ?? []).filter((m) => !machines.includes(m)).map((m) => ({ kind: "machine", name: m.name, labels: m.labels, state: m.state }))
      ].find((x) => x.labels[BL.managedBy] === MANAGED_BY && x.labels[BL.bottle] === d.name)
      if (elsewhere !== undefined) {
        block("live", `a bottle named '${d.name}' is live under another prefix: ${elsewhere.kind} ${elsewhere.name} (${elsewhere.state})`, false)
        continue
      }
      // After every removal of what was (or, by its name, may have been) this bottle's.
      const after = out.actions.filter((a) => isDestructive(a) &&
        (a.bottle === d.name || (a.bottle === undefined && strayMatches(a.resource, prefix, d.name)))).map((a) => a.id)
      out.add(Action.RemoveStateDir({ ...common, cause: "not in spec", after, root: state!.root, name: d.name }))
    }
  }
  return { actions: out.actions, partial, notes }
}

/** A leftover without labels may still belong to a bottle by its name: assume it does (the safe side). */
const strayMatches = (name: string, prefix: string, bottle: string) => {
  const base = `${prefix}-${bottle}`
  return name === base || name.startsWith(`${base}-`) || name.startsWith(`${base}_`)
}

const planStateDir = (out: Builder, bottle: string, spec: StateDirSpec, dirs: ReadonlyArray<ObservedStateDir>, observedState: boolean): string | undefined => {
  const d = dirs.find((x) => x.name === bottle)
  const common = { bottle, resource: spec.path, after: [] }
  const ensure = (cause: string, exists: boolean) => out.add(Action.EnsureStateDir({ ...common, id: `EnsureStateDir:${bottle}`, cause, spec, exists }))
  if (!observedState) return ensure("state dirs could not be listed; writing it is safe", true)
  if (d === undefined) return ensure("missing", false)
  if (d.metadata === undefined) return ensure("metadata.json missing", true)
  if (d.metadata.specHash !== spec.specHash) return ensure("spec changed", true)
  if (spec.preserve && !d.preserve) return ensure("preserve: true but no .preserve marker", true)
  out.add(Action.Unchanged({ ...common, id: `Unchanged:state:${bottle}`, kind: "state dir", cause: "up to date" }))
  return undefined
}

interface UpContext {
  readonly out: Builder
  /** Network name → the subnets to try for it, in order (none: the Engine picks). */
  readonly subnets: ReadonlyMap<string, ReadonlyArray<string>>
  readonly containers: ReadonlyArray<ObservedContainer>
  readonly networks: ReadonlyArray<ObservedNetwork>
  readonly images: Readonly<Record<string, string>>
  readonly claimed: Set<Item>
  readonly removed: Set<Item>
  readonly all: ReadonlyArray<Item>
}

const claim = (ctx: UpContext, pred: (i: Item) => boolean) => ctx.all.filter(pred).forEach((i) => ctx.claimed.add(i))
const markRemoved = (ctx: UpContext, pred: (i: Item) => boolean) => ctx.all.filter(pred).forEach((i) => ctx.removed.add(i))

/** Networks: keep a matching one, replace a changed one, create a missing one. Returns the create id, if any. */
const planNetwork = (ctx: UpContext, bottle: string, spec: NetworkSpec, after: ReadonlyArray<string>): string | undefined => {
  const found = ctx.networks.filter((n) => n.name === spec.name)
  claim(ctx, (i) => i.kind === "network" && found.includes(i.n))
  const current = found.find((n) => networkMatches(spec, n))
  const extras = found.filter((n) => n !== current)
  const common = { bottle, resource: spec.name }
  const why = (n: ObservedNetwork) => (n.labels[BL.specHash] !== spec.hash ? "spec changed" : networkDrift(spec.facts, observedNetworkFacts(n)) ?? "spec changed")
  const removals = extras.map((n) =>
    ctx.out.add(Action.RemoveNetwork({ ...common, id: `RemoveNetwork:${n.name}:${n.id.slice(0, 12)}`, cause: current === undefined ? why(n) : "duplicate network", after, networkId: n.id, replaced: current === undefined }))
  )
  markRemoved(ctx, (i) => i.kind === "network" && extras.includes(i.n))
  if (current !== undefined) {
    ctx.out.add(Action.Unchanged({ ...common, id: `Unchanged:network:${spec.name}`, kind: "network", cause: "up to date", after: [] }))
    return undefined
  }
  return ctx.out.add(Action.CreateNetwork({ ...common, id: `CreateNetwork:${spec.name}`, cause: found.length > 0 ? why(found[0]!) : "missing", after: removals, spec, replaces: found.length > 0, subnets: ctx.subnets.get(spec.name) ?? [] }))
}

/** A live network as the fence sees it; a network listed without driver or options (an old snapshot) is taken at its word. */
const observedNetworkFacts = (n: ObservedNetwork) => ({
  driver: n.driver ?? "bridge",
  internal: n.internal,
  options: n.options ?? {},
  // Podman lists a network without a gateway as the gateway "<nil>".
  noGateway: (n.subnets ?? []).every((x) => x.gateway === undefined || x.gateway === "" || x.gateway === "<nil>")
})

/** Ours, as the spec has it, and fenced as it should be: labels alone are not trusted (rule 7). */
const networkMatches = (spec: NetworkSpec, n: ObservedNetwork) =>
  n.labels[BL.specHash] === spec.hash && networkDrift(spec.facts, observedNetworkFacts(n)) === undefined

interface ContainerPlan {
  /** The id dependents wait for before they may start: the start action, if any. */
  readonly started: string | undefined
  readonly replacedOrCreated: boolean
  /** Running and left as it is. */
  readonly running: boolean
  /** Set for a proxy left running: what it fences waits until it answers. */
  readonly awaitReady?: AwaitReady
}

const planContainer = (
  ctx: UpContext,
  bottle: string,
  spec: ContainerSpec,
  candidates: ReadonlyArray<ObservedContainer>,
  opts: {
    /** The caller already removed the current container, for this reason. */
    readonly removedFor?: string
    readonly createAfter: ReadonlyArray<string>
    readonly startAfter: ReadonlyArray<string>
    /** A proxy left running that must answer before this container starts. */
    readonly awaitReady?: AwaitReady
  }
): ContainerPlan => {
  claim(ctx, (i) => i.kind === "container" && candidates.includes(i.c))
  const current = candidates.find((c) => bare(c.name) === spec.name)
  const extras = candidates.filter((c) => c !== current)
  const common = { bottle, resource: spec.name }
  const removeIds = extras.map((c) =>
    ctx.out.add(Action.RemoveContainer({ bottle, resource: bare(c.name), id: `RemoveContainer:${bare(c.name)}`, cause: `duplicate of ${spec.name}`, after: [], containerId: c.id, replaced: false }))
  )
  markRemoved(ctx, (i) => i.kind === "container" && extras.includes(i.c))

  let drift: string | undefined
  if (current !== undefined) {
    const imageNow = ctx.images[normaliseImageRef(spec.image)]
    if (current.labels[BL.specHash] !== spec.hash) {
      const fields = changedFields(current.labels[BL.specFields], spec.fields)
      drift = current.labels[BL.specHash] === undefined ? "not made by bottle" : fields.length > 0 ? `spec changed: ${fields.join(", ")}` : "spec hash changed"
    } else if (imageNow !== undefined && imageNow !== current.imageId) drift = `image ${spec.image} changed (now ${imageNow.replace(/^sha256:/, "").slice(0, 12)})`
    else if (current.state === "dead" || current.state === "removing") drift = `container is ${current.state}`
    // Rule 7: labels can be copied; what fences the container is compared as the Engine reports it.
    else if (current.facts !== undefined) drift = fenceDrift(desiredFacts(spec.body, spec.connect, current.imageDefaults), current.facts)
  }
  if (current !== undefined && drift === undefined) {
    if (isRunning(current.state) || current.state === "paused") {
      ctx.out.add(Action.Unchanged({ ...common, id: `Unchanged:container:${spec.name}`, kind: "container", cause: current.state, after: [] }))
      return { started: undefined, replacedOrCreated: false, running: isRunning(current.state) }
    }
    const started = ctx.out.add(Action.StartContainer({ ...common, id: `StartContainer:${spec.name}`, cause: `stopped (${current.state})`, after: [...removeIds, ...opts.startAfter], created: false, spec, ...(opts.awaitReady ? { awaitReady: opts.awaitReady } : {}) }))
    return { started, replacedOrCreated: false, running: false }
  }
  if (current !== undefined) {
    removeIds.push(ctx.out.add(Action.RemoveContainer({ ...common, id: `RemoveContainer:${spec.name}`, cause: drift!, after: [], containerId: current.id, replaced: true, ...(current.state === "created" ? { neverRan: true as const } : {}) })))
    markRemoved(ctx, (i) => i.kind === "container" && i.c === current)
  }
  const created = ctx.out.add(Action.CreateContainer({ ...common, id: `CreateContainer:${spec.name}`, cause: drift ?? opts.removedFor ?? "missing", after: [...opts.createAfter, ...removeIds], spec, replaces: current !== undefined || opts.removedFor !== undefined }))
  const started = ctx.out.add(Action.StartContainer({ ...common, id: `StartContainer:${spec.name}`, cause: "created", after: [created, ...opts.startAfter], created: true, spec, ...(opts.awaitReady ? { awaitReady: opts.awaitReady } : {}) }))
  return { started, replacedOrCreated: true, running: false }
}

const planDockerBottle = (ctx: UpContext, b: DesiredBottle, r: ReturnType<typeof realiseDocker>, names: Names, sdId: string | undefined, moved: ReadonlyArray<string>) => {
  const project = names.project(b.name)
  const inProject = (labels: Readonly<Record<string, string>>) => labels[Compose.project] === project
  const projectContainers = ctx.containers.filter((c) => inProject(c.labels))
  const wantedServices = new Set<string>(r.containers.map((c) => c.service))
  const wantedNetworks = new Set(r.networks.map((n) => n.name))

  // Containers of this project that the spec no longer has: removed first, they may hold networks.
  // A container named like a wanted one is that one (whatever its service label says).
  const wantedNames = new Set(r.containers.map((c) => c.name))
  const strayServices = projectContainers.filter((c) => !wantedServices.has(c.labels[Compose.service] ?? "") && !wantedNames.has(bare(c.name)))
  claim(ctx, (i) => i.kind === "container" && strayServices.includes(i.c))
  markRemoved(ctx, (i) => i.kind === "container" && strayServices.includes(i.c))
  const strayServiceRemovals = strayServices.map((c) =>
    ctx.out.add(Action.RemoveContainer({ bottle: b.name, resource: bare(c.name), id: `RemoveContainer:${bare(c.name)}`, cause: `service '${c.labels[Compose.service] ?? "?"}' not in spec`, after: [], containerId: c.id, replaced: false }))
  )

  // A network that must be made anew takes its containers with it: they are removed first and recreated on the new one.
  const networkChanges = r.networks.filter((spec) => !ctx.networks.some((n) => n.name === spec.name && networkMatches(spec, n)))
  const candidatesFor = (spec: ContainerSpec) =>
    ctx.containers.filter((c) => bare(c.name) === spec.name ||
      (inProject(c.labels) && c.labels[Compose.service] === spec.service && !wantedNames.has(bare(c.name))))
  const forceReplace = networkChanges.length > 0 ? `network ${networkChanges.map((n) => n.name).join(", ")} is made anew` : undefined
  const preRemovals: Array<string> = []
  const removedNames = new Set<string>()
  if (forceReplace !== undefined) {
    for (const spec of [...r.containers].reverse()) {
      const candidates = candidatesFor(spec)
      for (const c of candidates) {
        preRemovals.push(ctx.out.add(Action.RemoveContainer({ bottle: b.name, resource: bare(c.name), id: `RemoveContainer:${bare(c.name)}`, cause: forceReplace, after: [], containerId: c.id, replaced: bare(c.name) === spec.name })))
        if (bare(c.name) === spec.name) removedNames.add(spec.name)
      }
      claim(ctx, (i) => i.kind === "container" && candidates.includes(i.c))
      markRemoved(ctx, (i) => i.kind === "container" && candidates.includes(i.c))
    }
  }
  const networkIds = r.networks.flatMap((spec) => planNetwork(ctx, b.name, spec, [...preRemovals, ...strayServiceRemovals]) ?? [])
  // Networks of the project that the spec does not have.
  const extraNetworks = ctx.networks.filter((n) => inProject(n.labels) && !wantedNetworks.has(n.name))
  claim(ctx, (i) => i.kind === "network" && extraNetworks.includes(i.n))
  markRemoved(ctx, (i) => i.kind === "network" && extraNetworks.includes(i.n))
  for (const n of extraNetworks) {
    ctx.out.add(Action.RemoveNetwork({ bottle: b.name, resource: n.name, id: `RemoveNetwork:${n.name}:${n.id.slice(0, 12)}`, cause: "not in spec", after: [...strayServiceRemovals, ...preRemovals], networkId: n.id, replaced: false }))
  }

  // An image bottle builds is made before the agent that runs it, and so are the images of sidecars bottle builds from its own recipes.
  const built = planBuild(ctx, b.name, b.image, b.build, "its context changed (or was never built)")
  const sidecarBuilds: Partial<Record<string, string>> = {}
  for (const [service, side] of [["git", b.git], ["supervise", b.supervise]] as const) {
    const id = side !== undefined ? planBuild(ctx, b.name, side.image, side.build, `bottle's ${service} image (from its recipe) is not built yet`) : undefined
    if (id !== undefined) sidecarBuilds[service] = id
  }
  let previousStart: string | undefined
  let awaitReady: AwaitReady | undefined
  const starts: Array<string> = []
  let agentRuns = false
  for (const spec of r.containers) {
    const p = planContainer(ctx, b.name, spec, forceReplace !== undefined ? [] : candidatesFor(spec), {
      ...(removedNames.has(spec.name) ? { removedFor: forceReplace! } : {}),
      createAfter: [...networkIds, ...(sdId ? [sdId] : []), ...preRemovals, ...moved, ...(built !== undefined && spec.service === "agent" ? [built] : []), ...(sidecarBuilds[spec.service] !== undefined ? [sidecarBuilds[spec.service]!] : [])],
      // The agent starts once its proxy has (and answers): sidecars → agent.
      startAfter: previousStart ? [previousStart] : [],
      ...(awaitReady !== undefined ? { awaitReady } : {})
    })
    if (p.started) { previousStart = p.started; starts.push(p.started) }
    // A proxy left running is asked to answer before the agent starts (a killed run may have started it moments ago).
    awaitReady = spec.ready !== undefined && p.started === undefined && p.running ? { target: spec.name, ready: spec.ready } : undefined
    if (spec.service === "agent") agentRuns = p.started !== undefined || p.running
  }
  // Whatever was started is proven before apply calls it done; a bottle not touched is verified on demand (bottle verify).
  if (starts.length > 0 && agentRuns) planVerify(ctx, b.name, r.verify, starts)
}

/**
 * An image bottle builds, unless the Engine has it already (its tag is the hash of what the build sees: same tag,
 * same image). Once per plan, whichever bottles use it. Returns the id what runs it waits for.
 */
const planBuild = (ctx: UpContext, bottle: string, image: string, build: DesiredBuild | undefined, cause: string): string | undefined => {
  if (build === undefined || ctx.images[normaliseImageRef(image)] !== undefined) return undefined
  const id = `BuildImage:${image}`
  if (!ctx.out.has(id)) ctx.out.add(Action.BuildImage({ bottle, resource: image, id, cause, after: [], build }))
  return id
}

const planVerify = (ctx: UpContext, bottle: string, spec: VerifySpec, after: ReadonlyArray<string>) =>
  ctx.out.add(Action.VerifyBottle({ bottle, resource: spec.target, id: `VerifyBottle:${bottle}`, cause: "fence changed: prove it holds", after, spec }))

const planSmolBottle = (ctx: UpContext, b: DesiredBottle, r: ReturnType<typeof realiseSmolmachines>, machines: ReadonlyArray<ObservedMachine>, names: Names, sdId: string | undefined, moved: ReadonlyArray<string>) => {
  if (r.network === undefined || r.bundle === undefined) {
    // No allow list: no proxy and no network. A bundle left from before goes (its machine is replaced: it had a network).
    const bundleName = names.bundleContainer(b.name)
    const netName = names.bundleNetwork(b.name)
    const gone = ctx.containers.filter((c) => bare(c.name) === bundleName)
    claim(ctx, (i) => i.kind === "container" && gone.includes(i.c))
    markRemoved(ctx, (i) => i.kind === "container" && gone.includes(i.c))
    const ids = gone.map((c) => ctx.out.add(Action.RemoveContainer({ bottle: b.name, resource: bare(c.name), id: `RemoveContainer:${bare(c.name)}`, cause: "egress.allow is empty: no proxy", after: [], containerId: c.id, replaced: false })))
    const nets = ctx.networks.filter((n) => n.name === netName)
    claim(ctx, (i) => i.kind === "network" && nets.includes(i.n))
    markRemoved(ctx, (i) => i.kind === "network" && nets.includes(i.n))
    for (const n of nets) ctx.out.add(Action.RemoveNetwork({ bottle: b.name, resource: n.name, id: `RemoveNetwork:${n.name}:${n.id.slice(0, 12)}`, cause: "egress.allow is empty: no network", after: ids, networkId: n.id, replaced: false }))
    planMachine(ctx, b, r.machine, machines, { started: undefined, replacedOrCreated: false, running: false }, [...(sdId ? [sdId] : []), ...moved])
    return
  }
  const network = r.network
  const netChanged = !ctx.networks.some((n) => n.name === network.name && networkMatches(network, n))
  const candidates = ctx.containers.filter((c) => bare(c.name) === r.bundle!.name)
  const why = `network ${network.name} is made anew`
  // The bundle holds the network: it goes first when the network is made anew.
  const pre = netChanged
    ? candidates.map((c) => ctx.out.add(Action.RemoveContainer({ bottle: b.name, resource: bare(c.name), id: `RemoveContainer:${bare(c.name)}`, cause: why, after: [], containerId: c.id, replaced: true })))
    : []
  if (netChanged) {
    claim(ctx, (i) => i.kind === "container" && candidates.includes(i.c))
    markRemoved(ctx, (i) => i.kind === "container" && candidates.includes(i.c))
  }
  const netId = planNetwork(ctx, b.name, network, pre)
  const planned = planContainer(ctx, b.name, r.bundle, netChanged ? [] : candidates, {
    ...(netChanged && candidates.length > 0 ? { removedFor: why } : {}),
    createAfter: [...(netId ? [netId] : []), ...(sdId ? [sdId] : []), ...pre],
    startAfter: []
  })
  const ready = r.bundle.ready
  const bundle = ready !== undefined && planned.started === undefined && planned.running
    ? { ...planned, awaitReady: { target: r.bundle.name, ready } }
    : planned
  planMachine(ctx, b, r.machine, machines, bundle, [...(sdId ? [sdId] : []), ...moved])
}

/** What fences a machine, as `smolvm machine ls --json` reports it, against the spec (rule 7). */
const machineDrift = (spec: MachineSpec, m: ObservedMachine): string | undefined => {
  if (m.image !== null && m.image !== undefined && normaliseImageRef(m.image) !== normaliseImageRef(spec.image)) return `drift: image is ${m.image} (want ${spec.image})`
  if (m.cpus !== undefined && m.cpus !== spec.cpus) return `drift: cpus is ${m.cpus} (want ${spec.cpus})`
  if (m.memoryMiB !== undefined && m.memoryMiB !== spec.memMiB) return `drift: memory is ${m.memoryMiB} MiB (want ${spec.memMiB})`
  if (m.network !== undefined && m.network !== (spec.egress !== undefined)) return `drift: network is ${m.network ? "on" : "off"} (want ${spec.egress !== undefined ? "on, limited to its proxy" : "off"})`
  if (m.mounts !== undefined && m.mounts !== spec.volumes.length) return `drift: ${m.mounts} mounts (want ${spec.volumes.length})`
  if (m.ports !== undefined && m.ports !== 0) return `drift: ${m.ports} published ports (want none)`
  return undefined
}

const planMachine = (ctx: UpContext, b: DesiredBottle, spec: MachineSpec, machines: ReadonlyArray<ObservedMachine>, bundle: ContainerPlan, createAfter: ReadonlyArray<string>) => {
  const m = machines.find((x) => x.name === spec.name)
  claim(ctx, (i) => i.kind === "machine" && i.m === m)
  const common = { bottle: b.name, resource: spec.name }
  const bundleNow = spec.egress !== undefined ? ctx.containers.find((c) => bare(c.name) === spec.egress!.bundleContainer) : undefined
  const ipNow = spec.egress !== undefined ? bundleNow?.ips[spec.egress.bundleNetwork] : undefined
  let drift: string | undefined
  if (m !== undefined) {
    if (m.labels[BL.specHash] !== spec.hash) {
      const fields = changedFields(m.labels[BL.specFields], spec.labels[BL.specFields]!)
      drift = m.labels[BL.specHash] === undefined ? "not made by bottle" : fields.length > 0 ? `spec changed: ${fields.join(", ")}` : "spec hash changed"
    } else if (bundle.replacedOrCreated) drift = "its sidecar bundle is made anew (new address)"
    else if (ipNow !== undefined && m.labels[EGRESS_IP_LABEL] !== ipNow) drift = `bundle address changed (${m.labels[EGRESS_IP_LABEL] ?? "none"} → ${ipNow})`
    else drift = machineDrift(spec, m)
  }
  const waitBundle = bundle.started ? [bundle.started] : []
  if (m !== undefined && drift === undefined) {
    if (m.state === "running" || m.state === "frozen") {
      ctx.out.add(Action.Unchanged({ ...common, id: `Unchanged:machine:${spec.name}`, kind: "machine", cause: m.state, after: [] }))
      return
    }
    const stop = m.state === "unreachable"
      ? [ctx.out.add(Action.StopMachine({ ...common, id: `StopMachine:${spec.name}`, cause: "unreachable: restarting it", after: [], replaced: false }))]
      : []
    ctx.out.add(Action.StartMachine({ ...common, id: `StartMachine:${spec.name}`, cause: `stopped (${m.state})`, after: [...stop, ...waitBundle], created: false, ...(bundle.awaitReady ? { awaitReady: bundle.awaitReady } : {}) }))
    return
  }
  const removal: Array<string> = []
  if (m !== undefined) {
    const stop = ctx.out.add(Action.StopMachine({ ...common, id: `StopMachine:${spec.name}`, cause: drift!, after: [], replaced: true }))
    removal.push(ctx.out.add(Action.DeleteMachine({ ...common, id: `DeleteMachine:${spec.name}`, cause: drift!, after: [stop], replaced: true })))
    ctx.removed.add(ctx.all.find((i) => i.kind === "machine" && i.m === m)!)
  }
  const created = ctx.out.add(Action.CreateMachine({ ...common, id: `CreateMachine:${spec.name}`, cause: drift ?? "missing", after: [...removal, ...waitBundle, ...createAfter], spec, replaces: m !== undefined }))
  ctx.out.add(Action.StartMachine({ ...common, id: `StartMachine:${spec.name}`, cause: "created", after: [created], created: true, ...(bundle.awaitReady ? { awaitReady: bundle.awaitReady } : {}) }))
}

/** Removes one group of leftovers in the order of rule 2: machines and agents, then sidecars, then networks and volumes. */
const planTeardown = (out: Builder, bottle: string | undefined, items: ReadonlyArray<Item>, cause: string): Array<string> => {
  const byName = (a: Item, b: Item) => itemName(a).localeCompare(itemName(b))
  const ids: Array<string> = []
  const first: Array<string> = []
  for (const i of items.filter((x) => x.kind === "machine").sort(byName)) {
    if (i.kind !== "machine") continue
    const common = { bottle, resource: i.m.name, cause }
    const needsStop = !["stopped", "created", "failed"].includes(i.m.state)
    const stop = needsStop ? [out.add(Action.StopMachine({ ...common, id: `StopMachine:${i.m.name}`, after: [], replaced: false }))] : []
    first.push(out.add(Action.DeleteMachine({ ...common, id: `DeleteMachine:${i.m.name}`, after: stop, replaced: false })))
  }
  const isAgent = (c: ObservedContainer) => c.labels[Compose.service] === "agent"
  const cs = items.flatMap((i) => (i.kind === "container" ? [i.c] : [])).sort((a, b) => bare(a.name).localeCompare(bare(b.name)))
  const removeContainer = (c: ObservedContainer, after: ReadonlyArray<string>) =>
    out.add(Action.RemoveContainer({ bottle, resource: bare(c.name), id: `RemoveContainer:${bare(c.name)}`, cause, after, containerId: c.id, replaced: false }))
  for (const c of cs.filter(isAgent)) first.push(removeContainer(c, []))
  const containerIds = [...first]
  for (const c of cs.filter((c) => !isAgent(c))) containerIds.push(removeContainer(c, first))
  ids.push(...containerIds)
  for (const i of items.filter((x) => x.kind === "network").sort(byName)) {
    if (i.kind !== "network") continue
    ids.push(out.add(Action.RemoveNetwork({ bottle, resource: i.n.name, id: `RemoveNetwork:${i.n.name}:${i.n.id.slice(0, 12)}`, cause, after: containerIds, networkId: i.n.id, replaced: false })))
  }
  for (const i of items.filter((x) => x.kind === "volume").sort(byName)) {
    if (i.kind !== "volume") continue
    ids.push(out.add(Action.RemoveVolume({ bottle, resource: i.v.name, id: `RemoveVolume:${i.v.name}`, cause, after: containerIds })))
  }
  return ids
}

export type { ResourceKind }
