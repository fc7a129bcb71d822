/** The docker backend: a bottle is a compose-like project of containers on its own networks (Docker or Podman). Pure. */
import type { DesiredBottle } from "../../resources/desired.js"
import { Bottle as BL, Compose, MANAGED_BY } from "../../resources/labels.js"
import type { Source, DockerSnapshot } from "../../resources/observed.js"
import { realiseDocker, type ContainerSpec, type DockerBottle, type RealiseContext } from "../../resources/realise.js"
import { lastHost, parseCidr, type Cidr } from "../../resources/subnets.js"
import type { AwaitReady } from "../actions.js"
import { refusal, type BackendPlanner, type Owned, type Prepared, type Refusal } from "../backend.js"
import {
  bare,
  claim,
  engineTeardown,
  markRemoved,
  networkMatches,
  planBuild,
  planContainer,
  planNetwork,
  planVerify,
  removeContainerAction,
  removeNetworkAction,
  reserveNetworks,
  type Engine
} from "./engine.js"

export interface DockerOptions {
  readonly realise: RealiseContext
  /** Where new networks get their subnets (BOTTLE_SUBNETS); undefined: the Engine's own pools decide. */
  readonly subnetPool: ReadonlyArray<Cidr> | undefined
}

export const dockerPlanner = (source: Source<DockerSnapshot>, e: Engine, opts: DockerOptions): BackendPlanner => {
  const docker = e.snapshot
  const items = e.all.filter((o) => o.backend === "docker")
  const ours = new Set(e.containers.map((c) => c.id))

  const prepare = (b: DesiredBottle): Prepared | Refusal => {
    const engine = docker?.engine
    const onPodman = engine?.kind === "podman"
    if (onPodman && (engine?.networkBackend !== "netavark" || engine.rootless === true)) {
      return refusal("engine not supported", `Podman ${engine?.version ?? ""} with the ${engine?.networkBackend ?? "unknown"} network backend${engine?.rootless === true ? ", rootless" : ""}: bottle proves its fence only on rootful Podman with netavark (elsewhere its internal networks keep a way to the host)`)
    }
    // On Podman the proxy's address is pinned in the agent's hosts file, so it is placed once the subnet is known.
    const sketch = realiseDocker(b, opts.realise, onPodman ? { egressIp: "0.0.0.0", gitIp: "0.0.0.0", superviseIp: "0.0.0.0" } : undefined)
    // Every network the bottle must make gets its subnet now, or the bottle is not started at all (never half-made).
    const full = reserveNetworks(e, sketch.networks, opts.subnetPool, onPodman ? 1 : 4)
    if (full !== undefined) return full
    let r = sketch
    if (onPodman) {
      const internal = sketch.networks[0]!
      const kept = e.networks.find((n) => n.name === internal.name && networkMatches(internal, n))?.subnets?.[0]?.subnet
      const subnet = kept ?? e.subnets.get(internal.name)?.[0]
      const parsed = subnet !== undefined ? parseCidr(subnet) : undefined
      if (parsed === undefined || typeof parsed === "string") {
        return refusal("engine not supported", "on Podman bottle pins its proxy's address, so it needs its own subnets: unset BOTTLE_SUBNETS=engine")
      }
      // The proxy at the subnet's last address, the git gate and the supervisor just below it.
      r = realiseDocker(b, opts.realise, { egressIp: lastHost(parsed), gitIp: lastHost(parsed, 1), superviseIp: lastHost(parsed, 2) })
    }
    return { _tag: "Prepared", stateDir: r.stateDir, plan: (sdId, after) => planDockerBottle(e, b, r, sdId, after) }
  }

  return {
    name: "docker",
    items,
    blind: source._tag === "Failed" ? `the Docker Engine could not be observed (${source.error})` : undefined,
    blindRisk: "its containers may still be running",
    missing: undefined,
    elsewhere: (docker?.anyPrefix ?? []).filter((c) => !ours.has(c.id)).flatMap((c) => seen("container", c.name, c.labels, c.state)),
    observable: (_b) => (docker === undefined ? refusal("observation incomplete", "the Docker Engine could not be observed") : undefined),
    prepare,
    teardownOrder: 1,
    teardown: (bottle, owned, cause) => engineTeardown(e, bottle, owned, cause)
  }
}

/** A thing labelled as some install's bottle, for liveness across installs. */
export const seen = (kind: Owned["kind"], name: string, labels: Readonly<Record<string, string>>, state: string) =>
  labels[BL.managedBy] === MANAGED_BY && labels[BL.bottle] !== undefined ? [{ kind, name, bottle: labels[BL.bottle]!, state }] : []

const planDockerBottle = (e: Engine, b: DesiredBottle, r: DockerBottle, sdId: string | undefined, moved: ReadonlyArray<string>) => {
  const out = e.state.out
  const project = e.state.names.project(b.name)
  const inProject = (labels: Readonly<Record<string, string>>) => labels[Compose.project] === project
  const projectContainers = e.containers.filter((c) => inProject(c.labels))
  const wantedServices = new Set<string>(r.containers.map((c) => c.service))
  const wantedNetworks = new Set(r.networks.map((n) => n.name))

  // Containers of this project that the spec no longer has: removed first, they may hold networks.
  // A container named like a wanted one is that one (whatever its service label says).
  const wantedNames = new Set(r.containers.map((c) => c.name))
  const strayServices = projectContainers.filter((c) => !wantedServices.has(c.labels[Compose.service] ?? "") && !wantedNames.has(bare(c.name)))
  claim(e, (i) => i.kind === "container" && strayServices.includes(i.c))
  markRemoved(e, (i) => i.kind === "container" && strayServices.includes(i.c))
  const strayServiceRemovals = strayServices.map((c) => out.add(removeContainerAction(b.name, c, `service '${c.labels[Compose.service] ?? "?"}' not in spec`, [], false)))

  // A network that must be made anew takes its containers with it: they are removed first and recreated on the new one.
  const networkChanges = r.networks.filter((spec) => !e.networks.some((n) => n.name === spec.name && networkMatches(spec, n)))
  const candidatesFor = (spec: ContainerSpec) =>
    e.containers.filter((c) => bare(c.name) === spec.name ||
      (inProject(c.labels) && c.labels[Compose.service] === spec.service && !wantedNames.has(bare(c.name))))
  const forceReplace = networkChanges.length > 0 ? `network ${networkChanges.map((n) => n.name).join(", ")} is made anew` : undefined
  const preRemovals: Array<string> = []
  const removedNames = new Set<string>()
  if (forceReplace !== undefined) {
    for (const spec of [...r.containers].reverse()) {
      const candidates = candidatesFor(spec)
      for (const c of candidates) {
        preRemovals.push(out.add(removeContainerAction(b.name, c, forceReplace, [], bare(c.name) === spec.name)))
        if (bare(c.name) === spec.name) removedNames.add(spec.name)
      }
      claim(e, (i) => i.kind === "container" && candidates.includes(i.c))
      markRemoved(e, (i) => i.kind === "container" && candidates.includes(i.c))
    }
  }
  const networkIds = r.networks.flatMap((spec) => planNetwork(e, b.name, spec, [...preRemovals, ...strayServiceRemovals]) ?? [])
  // Networks of the project that the spec does not have.
  const extraNetworks = e.networks.filter((n) => inProject(n.labels) && !wantedNetworks.has(n.name))
  claim(e, (i) => i.kind === "network" && extraNetworks.includes(i.n))
  markRemoved(e, (i) => i.kind === "network" && extraNetworks.includes(i.n))
  for (const n of extraNetworks) out.add(removeNetworkAction(b.name, n, "not in spec", [...strayServiceRemovals, ...preRemovals]))

  // An image bottle builds is made before the agent that runs it, and so are the images of sidecars bottle builds from its own recipes.
  const built = planBuild(e, b.name, b.image, b.build, "its context changed (or was never built)")
  const sidecarBuilds: Partial<Record<string, string>> = {}
  for (const [service, side] of [["git", b.git], ["supervise", b.supervise]] as const) {
    const id = side !== undefined ? planBuild(e, b.name, side.image, side.build, `bottle's ${service} image (from its recipe) is not built yet`) : undefined
    if (id !== undefined) sidecarBuilds[service] = id
  }
  let previousStart: string | undefined
  let awaitReady: AwaitReady | undefined
  const starts: Array<string> = []
  let agentRuns = false
  for (const spec of r.containers) {
    const p = planContainer(e, b.name, spec, forceReplace !== undefined ? [] : candidatesFor(spec), {
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
  if (starts.length > 0 && agentRuns) planVerify(e, b.name, r.verify, starts)
}
