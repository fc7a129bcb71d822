/** The smolmachines backend: a bottle is a smolvm machine, fenced by a sidecar bundle (its proxy) on the Docker Engine. Pure. */
import type { DesiredBottle } from "../../resources/desired.js"
import { changedFields } from "../../resources/hash.js"
import { normaliseImageRef } from "../../resources/imageRef.js"
import { Bottle as BL } from "../../resources/labels.js"
import type { ObservedMachine, Source, SmolvmSnapshot } from "../../resources/observed.js"
import type { RealiseContext } from "../../resources/realise.js"
import { EGRESS_IP_LABEL, realiseSmolmachines, type MachineSpec, type SmolBottle } from "../../resources/realiseSmolmachines.js"
import { Action } from "../actions.js"
import { refusal, type BackendPlanner, type Owned, type Prepared, type Refusal } from "../backend.js"
import { seen } from "./docker.js"
import {
  bare,
  claim,
  engineTeardown,
  markRemoved,
  networkMatches,
  planContainer,
  planNetwork,
  removeContainerAction,
  removeNetworkAction,
  reserveNetworks,
  type ContainerPlan,
  type Engine
} from "./engine.js"
import type { Cidr } from "../../resources/subnets.js"
import { byText } from "../../resources/order.js"

export interface SmolOptions {
  readonly realise: RealiseContext
  readonly subnetPool: ReadonlyArray<Cidr> | undefined
}

export const smolPlanner = (source: Source<SmolvmSnapshot>, e: Engine, opts: SmolOptions): BackendPlanner => {
  const smol = source._tag === "Ok" ? source.value : source._tag === "Unavailable" ? { version: "", machines: [] } : undefined
  const items = e.all.filter((o) => o.backend === "smolmachines")
  const machines = e.all.flatMap((o) => (o.item.kind === "machine" ? [o.item.m] : []))

  const prepare = (b: DesiredBottle): Prepared | Refusal => {
    const r = realiseSmolmachines(b, opts.realise)
    const full = reserveNetworks(e, r.network !== undefined ? [r.network] : [], opts.subnetPool, 4)
    if (full !== undefined) return full
    return { _tag: "Prepared", stateDir: r.stateDir, plan: (sdId, after) => planSmolBottle(e, b, r, machines, sdId, after) }
  }

  return {
    name: "smolmachines",
    items,
    blind: source._tag === "Failed" ? `smolvm could not be observed (${source.error})` : undefined,
    blindRisk: "its machine may still be running",
    missing: source._tag === "Unavailable" ? `smolvm is not available (${source.reason})` : undefined,
    elsewhere: (smol?.machines ?? []).filter((m) => !machines.includes(m)).flatMap((m) => seen("machine", m.name, m.labels, m.state)),
    observable: (_b) => {
      if (e.snapshot === undefined) return refusal("observation incomplete", "the Docker Engine could not be observed")
      if (source._tag === "Failed") return refusal("observation incomplete", `smolvm could not be observed: ${source.error}`)
      if (source._tag === "Unavailable") return refusal("backend unavailable", `backend smolmachines needs smolvm ≥ 1.8: ${source.reason}`)
      return undefined
    },
    prepare,
    teardownOrder: 0,
    // Machines first (stopped, then deleted), then the bundles that served them.
    teardown: (bottle, owned, cause) => engineTeardown(e, bottle, owned, cause, machineTeardown(e, bottle, owned, cause))
  }
}

const machineTeardown = (e: Engine, bottle: string | undefined, owned: ReadonlyArray<Owned>, cause: string): Array<string> => {
  const ms = e.all.filter((o) => owned.includes(o)).flatMap((o) => (o.item.kind === "machine" ? [o.item.m] : [])).sort((a, b) => byText(a.name, b.name))
  return ms.map((m) => {
    const common = { bottle, resource: m.name, cause }
    const needsStop = !["stopped", "created", "failed"].includes(m.state)
    const stop = needsStop ? [e.state.out.add(Action.StopMachine({ ...common, id: `StopMachine:${m.name}`, after: [], replaced: false }))] : []
    return e.state.out.add(Action.DeleteMachine({ ...common, id: `DeleteMachine:${m.name}`, after: stop, replaced: false }))
  })
}

const planSmolBottle = (e: Engine, b: DesiredBottle, r: SmolBottle, machines: ReadonlyArray<ObservedMachine>, sdId: string | undefined, moved: ReadonlyArray<string>) => {
  const out = e.state.out
  const names = e.state.names
  if (r.network === undefined || r.bundle === undefined) {
    // No allow list: no proxy and no network. A bundle left from before goes (its machine is replaced: it had a network).
    const bundleName = names.bundleContainer(b.name)
    const netName = names.bundleNetwork(b.name)
    const gone = e.containers.filter((c) => bare(c.name) === bundleName)
    claim(e, (i) => i.kind === "container" && gone.includes(i.c))
    markRemoved(e, (i) => i.kind === "container" && gone.includes(i.c))
    const ids = gone.map((c) => out.add(removeContainerAction(b.name, c, "egress.allow is empty: no proxy", [], false)))
    const nets = e.networks.filter((n) => n.name === netName)
    claim(e, (i) => i.kind === "network" && nets.includes(i.n))
    markRemoved(e, (i) => i.kind === "network" && nets.includes(i.n))
    for (const n of nets) out.add(removeNetworkAction(b.name, n, "egress.allow is empty: no network", ids))
    planMachine(e, b, r.machine, machines, { started: undefined, replacedOrCreated: false, running: false }, [...(sdId ? [sdId] : []), ...moved])
    return
  }
  const network = r.network
  const netChanged = !e.networks.some((n) => n.name === network.name && networkMatches(network, n))
  const candidates = e.containers.filter((c) => bare(c.name) === r.bundle!.name)
  const why = `network ${network.name} is made anew`
  // The bundle holds the network: it goes first when the network is made anew.
  const pre = netChanged ? candidates.map((c) => out.add(removeContainerAction(b.name, c, why, [], true))) : []
  if (netChanged) {
    claim(e, (i) => i.kind === "container" && candidates.includes(i.c))
    markRemoved(e, (i) => i.kind === "container" && candidates.includes(i.c))
  }
  const netId = planNetwork(e, b.name, network, pre)
  const planned = planContainer(e, b.name, r.bundle, netChanged ? [] : candidates, {
    ...(netChanged && candidates.length > 0 ? { removedFor: why } : {}),
    createAfter: [...(netId ? [netId] : []), ...(sdId ? [sdId] : []), ...pre],
    startAfter: []
  })
  const ready = r.bundle.ready
  const bundle = ready !== undefined && planned.started === undefined && planned.running
    ? { ...planned, awaitReady: { target: r.bundle.name, ready } }
    : planned
  planMachine(e, b, r.machine, machines, bundle, [...(sdId ? [sdId] : []), ...moved])
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

const planMachine = (e: Engine, b: DesiredBottle, spec: MachineSpec, machines: ReadonlyArray<ObservedMachine>, bundle: ContainerPlan, createAfter: ReadonlyArray<string>) => {
  const out = e.state.out
  const m = machines.find((x) => x.name === spec.name)
  claim(e, (i) => i.kind === "machine" && i.m === m)
  const common = { bottle: b.name, resource: spec.name }
  const bundleNow = spec.egress !== undefined ? e.containers.find((c) => bare(c.name) === spec.egress!.bundleContainer) : undefined
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
      out.add(Action.Unchanged({ ...common, id: `Unchanged:machine:${spec.name}`, kind: "machine", cause: m.state, after: [] }))
      return
    }
    const stop = m.state === "unreachable"
      ? [out.add(Action.StopMachine({ ...common, id: `StopMachine:${spec.name}`, cause: "unreachable: restarting it", after: [], replaced: false }))]
      : []
    out.add(Action.StartMachine({ ...common, id: `StartMachine:${spec.name}`, cause: `stopped (${m.state})`, after: [...stop, ...waitBundle], created: false, ...(bundle.awaitReady ? { awaitReady: bundle.awaitReady } : {}) }))
    return
  }
  const removal: Array<string> = []
  if (m !== undefined) {
    const stop = out.add(Action.StopMachine({ ...common, id: `StopMachine:${spec.name}`, cause: drift!, after: [], replaced: true }))
    removal.push(out.add(Action.DeleteMachine({ ...common, id: `DeleteMachine:${spec.name}`, cause: drift!, after: [stop], replaced: true })))
    markRemoved(e, (i) => i.kind === "machine" && i.m === m)
  }
  const created = out.add(Action.CreateMachine({ ...common, id: `CreateMachine:${spec.name}`, cause: drift ?? "missing", after: [...removal, ...waitBundle, ...createAfter], spec, replaces: m !== undefined }))
  out.add(Action.StartMachine({ ...common, id: `StartMachine:${spec.name}`, cause: "created", after: [created], created: true, ...(bundle.awaitReady ? { awaitReady: bundle.awaitReady } : {}) }))
}
