/** Builders for desired bottles and observed worlds, for the pure planner's tests. */
import { DEFAULT_MEMORY_BYTES, DEFAULT_PIDS, type DesiredBottle } from "../../src/resources/desired.js"
import { Bottle as BL, MANAGED_BY } from "../../src/resources/labels.js"
import { makeNames } from "../../src/resources/names.js"
import type { Observed, ObservedContainer, ObservedMachine, ObservedNetwork, ObservedStateDir } from "../../src/resources/observed.js"
import { desiredFacts, type ImageDefaults } from "../../src/resources/fence.js"
import { normaliseImageRef } from "../../src/resources/imageRef.js"
import { realiseDocker, type NetworkSpec, type RealiseContext } from "../../src/resources/realise.js"
import { EGRESS_IP_LABEL, realiseSmolmachines } from "../../src/resources/realiseSmolmachines.js"
import type { PlanOptions, PruneScope } from "../../src/reconcilers/plan.js"

export const names = makeNames("claude-bottle")
export const ctx: RealiseContext = { names, stateRoot: "/home/u/.claude-bottle/state", egressImage: undefined, proxyUser: "1000:1000" }
export const options = (prune: PruneScope = "none", set = "default"): PlanOptions => ({ names, realise: ctx, set, prune })

export const bottle = (name: string, over: Partial<DesiredBottle> = {}): DesiredBottle => ({
  name,
  set: "default",
  backend: "docker",
  image: "claude-bottle:latest",
  command: undefined,
  workdir: undefined,
  env: {},
  prompt: undefined,
  skills: [],
  egressAllow: ["api.anthropic.com"],
  egressProxy: "mitmproxy",
  egressTrust: [],
  workspace: undefined,
  user: undefined,
  secrets: [],
  secretProblems: [],
  build: undefined,
  git: undefined,
  supervise: undefined,
  resources: { cpus: undefined, memoryBytes: DEFAULT_MEMORY_BYTES, pids: DEFAULT_PIDS },
  preserve: false,
  egressImage: undefined,
  source: { file: "spec.yaml", line: 1 },
  ...over
})

export interface World {
  containers: Array<ObservedContainer>
  networks: Array<ObservedNetwork>
  volumes: Array<{ name: string; labels: Record<string, string> }>
  machines: Array<ObservedMachine>
  dirs: Array<ObservedStateDir>
  images: Record<string, string>
  /** Containers of other installs (other prefixes): seen only in the any-prefix list. */
  others: Array<ObservedContainer>
}

export const emptyWorld = (): World => ({ containers: [], networks: [], volumes: [], machines: [], dirs: [], images: {}, others: [] })

let counter = 0
const nextId = () => (++counter).toString(16).padStart(64, "0")

/** The world as it is after a successful apply of `bottles`. */
export const worldAfterApply = (bottles: ReadonlyArray<DesiredBottle>, w: World = emptyWorld()): World => {
  for (const b of bottles) {
    if (b.backend === "docker") {
      const r = realiseDocker(b, ctx)
      for (const n of r.networks) w.networks.push(liveNetwork(n))
      for (const c of r.containers) {
        w.images[normaliseImageRef(c.image)] ??= `sha256:${c.image.length}`
        // As the Engine would report it: the facts of what bottle created, the image's defaults beside them.
        w.containers.push({ id: nextId(), name: c.name, labels: c.body.Labels as Record<string, string>, state: "running", image: c.image, imageId: w.images[normaliseImageRef(c.image)]!, ips: {}, facts: desiredFacts(c.body, c.connect, IMAGE), imageDefaults: IMAGE })
      }
      w.dirs.push({ name: b.name, path: r.stateDir.path, metadata: { ...r.stateDir.metadata, createdAt: "2026-01-01T00:00:00Z" }, preserve: b.preserve })
    } else {
      const r = realiseSmolmachines(b, ctx)
      if (r.network !== undefined && r.bundle !== undefined) {
        w.networks.push(liveNetwork(r.network))
        w.images[normaliseImageRef(r.bundle.image)] ??= `sha256:${r.bundle.image.length}`
        w.containers.push({ id: nextId(), name: r.bundle.name, labels: r.bundle.body.Labels as Record<string, string>, state: "running", image: r.bundle.image, imageId: w.images[normaliseImageRef(r.bundle.image)]!, ips: { [r.network.name]: "172.30.0.2" }, facts: desiredFacts(r.bundle.body, r.bundle.connect, IMAGE), imageDefaults: IMAGE })
      }
      w.machines.push({ name: r.machine.name, state: "running", labels: { ...r.machine.labels, ...(r.network !== undefined ? { [EGRESS_IP_LABEL]: "172.30.0.2" } : {}) }, image: b.image, cpus: r.machine.cpus, memoryMiB: r.machine.memMiB, network: r.machine.egress !== undefined, mounts: r.machine.volumes.length, ports: 0 })
      w.dirs.push({ name: b.name, path: r.stateDir.path, metadata: { ...r.stateDir.metadata, createdAt: "2026-01-01T00:00:00Z" }, preserve: b.preserve })
    }
  }
  return w
}

/** An image's defaults, as the fixtures' images all have them. */
export const IMAGE: ImageDefaults = { env: ["PATH=/bin"], cmd: ["sleep", "infinity"], entrypoint: null, user: "", volumes: [] }

/** A network as the Engine lists it after bottle made it from `n`. */
export const liveNetwork = (n: NetworkSpec): ObservedNetwork =>
  ({ id: nextId(), name: n.name, labels: n.body["Labels"] as Record<string, string>, internal: n.facts.internal, driver: n.facts.driver, options: n.facts.options })

export const observed = (w: World, over: Partial<Observed> = {}): Observed => ({
  docker: {
    _tag: "Ok",
    value: {
      endpoint: "unix:///var/run/docker.sock", containers: w.containers, networks: w.networks, volumes: w.volumes, images: w.images,
      // A list of its own, as the observer makes it: copies, not the same objects.
      anyPrefix: [...w.containers, ...w.others].filter((c) => c.labels[BL.managedBy] === MANAGED_BY).map((c) => ({ ...c }))
    }
  },
  smolvm: { _tag: "Ok", value: { version: "1.9.0", machines: w.machines } },
  state: { _tag: "Ok", value: { root: ctx.stateRoot, dirs: w.dirs, ignored: [] } },
  ...over
})

/** A container some other tool left: labels as given, running. */
export const container = (name: string, labels: Record<string, string> = {}, state = "running"): ObservedContainer =>
  ({ id: nextId(), name, labels, state, image: "busybox", imageId: "sha256:bb", ips: {} })

export const network = (name: string, labels: Record<string, string> = {}): ObservedNetwork => ({ id: nextId(), name, labels, internal: false })

export const managed = (bottle: string, set = "default") => ({ [BL.managedBy]: MANAGED_BY, [BL.bottle]: bottle, [BL.set]: set })

/** metadata.json as this install writes it. */
export const ours = (name: string, set = "default") => ({ managedBy: "bottle", prefix: "claude-bottle", name, backend: "docker", set, specHash: "h" })
