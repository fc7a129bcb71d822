/**
 * The Docker Engine as two backends see it: docker's bottles are made of its
 * containers and networks, and a smolmachines bottle's sidecar bundle is one
 * of its containers on one of its networks. What both plan on it is here,
 * once: networks (with subnets from bottle's pool), containers (rules 1 and
 * 7), image builds, verification, and taking leftovers down (rule 2). Pure.
 */
import type { DesiredBuild } from "../../resources/desired.js"
import { desiredFacts, fenceDrift, networkDrift } from "../../resources/fence.js"
import { changedFields } from "../../resources/hash.js"
import { normaliseImageRef } from "../../resources/imageRef.js"
import { Bottle as BL, Compose, MANAGED_BY } from "../../resources/labels.js"
import type { Names } from "../../resources/names.js"
import type { DockerSnapshot, ObservedContainer, ObservedMachine, ObservedNetwork, ObservedVolume } from "../../resources/observed.js"
import { ownership, type Ownership } from "../../resources/ownership.js"
import type { ContainerSpec, NetworkSpec, VerifySpec } from "../../resources/realise.js"
import { formatCidr, freeSubnets, parseCidr, type Cidr } from "../../resources/subnets.js"
import { Action, type AwaitReady } from "../actions.js"
import { refusal, type Owned, type PlanState, type Refusal } from "../backend.js"
import { byText } from "../../resources/order.js"

export type Item =
  | { readonly kind: "container"; readonly c: ObservedContainer }
  | { readonly kind: "network"; readonly n: ObservedNetwork }
  | { readonly kind: "volume"; readonly v: ObservedVolume }
  | { readonly kind: "machine"; readonly m: ObservedMachine }

/** An engine item (or a machine) as the core sees it, with what it is. */
export interface EngineOwned extends Owned {
  readonly item: Item
}

export const bare = (name: string) => name.replace(/^\//, "")
const itemName = (i: Item) => (i.kind === "container" ? bare(i.c.name) : i.kind === "network" ? i.n.name : i.kind === "volume" ? i.v.name : i.m.name)
const itemLabels = (i: Item) => (i.kind === "container" ? i.c.labels : i.kind === "network" ? i.n.labels : i.kind === "volume" ? i.v.labels : i.m.labels)
const itemState = (i: Item) => (i.kind === "container" ? i.c.state : i.kind === "machine" ? i.m.state : undefined)
const RANK = { machine: 0, container: 1, network: 2, volume: 3 } as const
const isRunning = (state: string) => state === "running" || state === "restarting"

/** What planning on the Engine shares across bottles and both backends. */
export interface Engine {
  readonly snapshot: DockerSnapshot | undefined
  readonly own: Ownership
  /** This install's containers, networks and volumes, and the machines smolvm reported (each once, as Owned). */
  readonly all: ReadonlyArray<EngineOwned>
  readonly containers: ReadonlyArray<ObservedContainer>
  readonly networks: ReadonlyArray<ObservedNetwork>
  readonly images: Readonly<Record<string, string>>
  /** Network name → the subnets to try for it, in order (none: the Engine picks). */
  readonly subnets: Map<string, ReadonlyArray<string>>
  /** Picks the subnets to try for a network (the first is reserved for it); false when the pool has none left. */
  readonly reserveSubnets: (name: string, pool: ReadonlyArray<Cidr>, count: number) => boolean
  readonly state: PlanState
}

export const makeEngine = (snapshot: DockerSnapshot | undefined, machines: ReadonlyArray<ObservedMachine>, names: Names, state: PlanState): Engine => {
  // Rule 3: everything not this install's is invisible from here on (src/resources/ownership.ts).
  const own = ownership(names)
  const containers = (snapshot?.containers ?? []).filter((c) => own.owns(c.name, c.labels))
  const networks = (snapshot?.networks ?? []).filter((n) => own.owns(n.name, n.labels))
  // Volumes only through a project of ours: a volume named with the prefix in someone else's project is theirs.
  const volumes = (snapshot?.volumes ?? []).filter((v) => names.claimsUnlabelled && v.labels[Compose.project] !== undefined && names.owns(v.labels[Compose.project]!))
  const ourMachines = machines.filter((m) => own.owns(m.name, m.labels))
  const items: Array<Item> = [
    ...containers.map((c) => ({ kind: "container", c }) as const),
    ...networks.map((n) => ({ kind: "network", n }) as const),
    ...volumes.map((v) => ({ kind: "volume", v }) as const),
    ...ourMachines.map((m) => ({ kind: "machine", m }) as const)
  ]
  const all = items.map((item): EngineOwned => {
    const labels = itemLabels(item)
    return {
      item,
      kind: item.kind,
      name: itemName(item),
      // Machines and their sidecar bundles are smolmachines', the rest docker's.
      backend: own.isSmolmachines(itemName(item), item.kind === "machine") ? "smolmachines" : "docker",
      owner: own.ownerOf(itemName(item), labels, item.kind === "machine"),
      set: labels[BL.managedBy] === MANAGED_BY ? labels[BL.set] : undefined,
      state: itemState(item),
      rank: RANK[item.kind]
    }
  })
  /** Subnets in use on the engine (every network's, bottle's or not), and those this plan gives out. */
  const taken: Array<Cidr> = (snapshot?.networks ?? []).flatMap((n) => (n.subnets ?? []).flatMap((x) => {
    const c = parseCidr(x.subnet)
    return typeof c === "string" ? [] : [c]
  }))
  const subnets = new Map<string, ReadonlyArray<string>>()
  const reserveSubnets = (name: string, pool: ReadonlyArray<Cidr>, count: number): boolean => {
    const free = freeSubnets(`${names.prefix}/${name}`, pool, taken, count)
    if (free.length === 0) return false
    taken.push(free[0]!)
    subnets.set(name, free.map(formatCidr))
    return true
  }
  return { snapshot, own, all, containers, networks, images: snapshot?.images ?? {}, subnets, reserveSubnets, state }
}

/** Gives each network the bottle must make its subnets, or refuses the bottle (it is never half-made). */
export const reserveNetworks = (e: Engine, specs: ReadonlyArray<NetworkSpec>, pool: ReadonlyArray<Cidr> | undefined, count: number): Refusal | undefined => {
  const toMake = specs.filter((spec) => !e.networks.some((n) => n.name === spec.name && networkMatches(spec, n)))
  const full = pool !== undefined ? toMake.find((spec) => !e.reserveSubnets(spec.name, pool, count)) : undefined
  return full === undefined
    ? undefined
    : refusal("subnet pool full", `no free /28 left in BOTTLE_SUBNETS (${pool!.map(formatCidr).join(", ")}) for network ${full.name}: remove bottles you no longer need, or give bottle a larger pool`)
}

export const claim = (e: Engine, pred: (i: Item) => boolean) => e.all.filter((o) => pred(o.item)).forEach((o) => e.state.claimed.add(o))
export const markRemoved = (e: Engine, pred: (i: Item) => boolean) => e.all.filter((o) => pred(o.item)).forEach((o) => e.state.removed.add(o))

/** A live network as the fence sees it; a network listed without driver or options (an old snapshot) is taken at its word. */
const observedNetworkFacts = (n: ObservedNetwork) => ({
  driver: n.driver ?? "bridge",
  internal: n.internal,
  options: n.options ?? {},
  // Podman lists a network without a gateway as the gateway "<nil>".
  noGateway: (n.subnets ?? []).every((x) => x.gateway === undefined || x.gateway === "" || x.gateway === "<nil>")
})

/** Ours, as the spec has it, and fenced as it should be: labels alone are not trusted (rule 7). */
export const networkMatches = (spec: NetworkSpec, n: ObservedNetwork) =>
  n.labels[BL.specHash] === spec.hash && networkDrift(spec.facts, observedNetworkFacts(n)) === undefined

/** Networks: keep a matching one, replace a changed one, create a missing one. Returns the create id, if any. */
export const planNetwork = (e: Engine, bottle: string, spec: NetworkSpec, after: ReadonlyArray<string>): string | undefined => {
  const out = e.state.out
  const found = e.networks.filter((n) => n.name === spec.name)
  claim(e, (i) => i.kind === "network" && found.includes(i.n))
  const current = found.find((n) => networkMatches(spec, n))
  const extras = found.filter((n) => n !== current)
  const common = { bottle, resource: spec.name }
  const why = (n: ObservedNetwork) => (n.labels[BL.specHash] !== spec.hash ? "spec changed" : networkDrift(spec.facts, observedNetworkFacts(n)) ?? "spec changed")
  const removals = extras.map((n) =>
    out.add(Action.RemoveNetwork({ ...common, id: `RemoveNetwork:${n.name}:${n.id.slice(0, 12)}`, cause: current === undefined ? why(n) : "duplicate network", after, networkId: n.id, replaced: current === undefined }))
  )
  markRemoved(e, (i) => i.kind === "network" && extras.includes(i.n))
  if (current !== undefined) {
    out.add(Action.Unchanged({ ...common, id: `Unchanged:network:${spec.name}`, kind: "network", cause: "up to date", after: [] }))
    return undefined
  }
  return out.add(Action.CreateNetwork({ ...common, id: `CreateNetwork:${spec.name}`, cause: found.length > 0 ? why(found[0]!) : "missing", after: removals, spec, replaces: found.length > 0, subnets: e.subnets.get(spec.name) ?? [] }))
}

export interface ContainerPlan {
  /** The id dependents wait for before they may start: the start action, if any. */
  readonly started: string | undefined
  readonly replacedOrCreated: boolean
  /** Running and left as it is. */
  readonly running: boolean
  /** Set for a proxy left running: what it fences waits until it answers. */
  readonly awaitReady?: AwaitReady
}

export const removeContainerAction = (bottle: string | undefined, c: ObservedContainer, cause: string, after: ReadonlyArray<string>, replaced: boolean) =>
  Action.RemoveContainer({ bottle, resource: bare(c.name), id: `RemoveContainer:${bare(c.name)}`, cause, after, containerId: c.id, replaced })

export const removeNetworkAction = (bottle: string | undefined, n: ObservedNetwork, cause: string, after: ReadonlyArray<string>) =>
  Action.RemoveNetwork({ bottle, resource: n.name, id: `RemoveNetwork:${n.name}:${n.id.slice(0, 12)}`, cause, after, networkId: n.id, replaced: false })

export const planContainer = (
  e: Engine,
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
  const out = e.state.out
  claim(e, (i) => i.kind === "container" && candidates.includes(i.c))
  const current = candidates.find((c) => bare(c.name) === spec.name)
  const extras = candidates.filter((c) => c !== current)
  const common = { bottle, resource: spec.name }
  const removeIds = extras.map((c) => out.add(removeContainerAction(bottle, c, `duplicate of ${spec.name}`, [], false)))
  markRemoved(e, (i) => i.kind === "container" && extras.includes(i.c))

  let drift: string | undefined
  if (current !== undefined) {
    const imageNow = e.images[normaliseImageRef(spec.image)]
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
      out.add(Action.Unchanged({ ...common, id: `Unchanged:container:${spec.name}`, kind: "container", cause: current.state, after: [] }))
      return { started: undefined, replacedOrCreated: false, running: isRunning(current.state) }
    }
    const started = out.add(Action.StartContainer({ ...common, id: `StartContainer:${spec.name}`, cause: `stopped (${current.state})`, after: [...removeIds, ...opts.startAfter], created: false, spec, ...(opts.awaitReady ? { awaitReady: opts.awaitReady } : {}) }))
    return { started, replacedOrCreated: false, running: false }
  }
  if (current !== undefined) {
    removeIds.push(out.add(Action.RemoveContainer({ ...common, id: `RemoveContainer:${spec.name}`, cause: drift!, after: [], containerId: current.id, replaced: true, ...(current.state === "created" ? { neverRan: true as const } : {}) })))
    markRemoved(e, (i) => i.kind === "container" && i.c === current)
  }
  const created = out.add(Action.CreateContainer({ ...common, id: `CreateContainer:${spec.name}`, cause: drift ?? opts.removedFor ?? "missing", after: [...opts.createAfter, ...removeIds], spec, replaces: current !== undefined || opts.removedFor !== undefined }))
  const started = out.add(Action.StartContainer({ ...common, id: `StartContainer:${spec.name}`, cause: "created", after: [created, ...opts.startAfter], created: true, spec, ...(opts.awaitReady ? { awaitReady: opts.awaitReady } : {}) }))
  return { started, replacedOrCreated: true, running: false }
}

/**
 * An image bottle builds, unless the Engine has it already (its tag is the hash of what the build sees: same tag,
 * same image). Once per plan, whichever bottles use it. Returns the id what runs it waits for.
 */
export const planBuild = (e: Engine, bottle: string, image: string, build: DesiredBuild | undefined, cause: string): string | undefined => {
  if (build === undefined || e.images[normaliseImageRef(image)] !== undefined) return undefined
  const id = `BuildImage:${image}`
  if (!e.state.out.has(id)) e.state.out.add(Action.BuildImage({ bottle, resource: image, id, cause, after: [], build }))
  return id
}

export const planVerify = (e: Engine, bottle: string, spec: VerifySpec, after: ReadonlyArray<string>) =>
  e.state.out.add(Action.VerifyBottle({ bottle, resource: spec.target, id: `VerifyBottle:${bottle}`, cause: "fence changed: prove it holds", after, spec }))

/**
 * Removes one group of leftovers on the Engine in the order of rule 2: agents (after `first`, what must go
 * before anything: a machine its bundle serves), then sidecars, then networks and volumes.
 */
export const engineTeardown = (e: Engine, bottle: string | undefined, items: ReadonlyArray<Owned>, cause: string, first: ReadonlyArray<string> = []): Array<string> => {
  const out = e.state.out
  const owned = e.all.filter((o) => items.includes(o))
  owned.forEach((o) => e.state.removed.add(o))
  const mine = owned.map((o) => o.item)
  const byName = (a: Item, b: Item) => byText(itemName(a), itemName(b))
  const isAgent = (c: ObservedContainer) => c.labels[Compose.service] === "agent"
  const cs = mine.flatMap((i) => (i.kind === "container" ? [i.c] : [])).sort((a, b) => byText(bare(a.name), bare(b.name)))
  const before = [...first]
  for (const c of cs.filter(isAgent)) before.push(out.add(removeContainerAction(bottle, c, cause, [], false)))
  const containerIds = [...before]
  for (const c of cs.filter((c) => !isAgent(c))) containerIds.push(out.add(removeContainerAction(bottle, c, cause, before, false)))
  const ids = [...containerIds]
  for (const i of mine.filter((x) => x.kind === "network").sort(byName)) {
    if (i.kind === "network") ids.push(out.add(removeNetworkAction(bottle, i.n, cause, containerIds)))
  }
  for (const i of mine.filter((x) => x.kind === "volume").sort(byName)) {
    if (i.kind === "volume") ids.push(out.add(Action.RemoveVolume({ bottle, resource: i.v.name, id: `RemoveVolume:${i.v.name}`, cause, after: containerIds })))
  }
  return ids
}
