/**
 * What a desired bottle means on the smolmachines backend: a sidecar bundle
 * container on a bundle network of its own, and a smolvm machine whose only
 * way out is the bundle's address. Pure.
 */
import type { DesiredBottle } from "./desired.js"
import type { NetworkFacts } from "./fence.js"
import { fieldHashes, hashOf } from "./hash.js"
import { Bottle as BL } from "./labels.js"
import {
  AGENT_MOUNT,
  agentEnv,
  bottleLabels,
  EGRESS_PORT,
  egressContainer,
  readyCheck,
  realiseStateDir,
  secretDigests,
  type ContainerSpec,
  type NetworkSpec,
  type RealiseContext,
  type StateDirSpec
} from "./realise.js"

/** Label on a machine recording the bundle address its egress was limited to. */
export const EGRESS_IP_LABEL = "dev.bottle.egress-ip"

export interface MachineSpec {
  readonly bottle: string
  readonly name: string
  readonly image: string
  readonly cpus: number
  readonly memMiB: number
  /** Environment without the proxy variables, which need the bundle's address (known only once it runs). */
  readonly env: ReadonlyArray<string>
  readonly volumes: ReadonlyArray<string>
  readonly workdir: string
  readonly labels: Readonly<Record<string, string>>
  readonly hash: string
  /** The bundle whose address on its network becomes the machine's only allowed CIDR; undefined: no network at all. */
  readonly egress: { readonly bundleContainer: string; readonly bundleNetwork: string } | undefined
}

export interface SmolBottle {
  readonly bottle: DesiredBottle
  /** The bundle and its network; both absent when the allow list is empty (the machine gets no network). */
  readonly network: NetworkSpec | undefined
  readonly bundle: ContainerSpec | undefined
  readonly machine: MachineSpec
  readonly stateDir: StateDirSpec
}

export const realiseSmolmachines = (b: DesiredBottle, ctx: RealiseContext): SmolBottle => {
  const n = ctx.names
  const stateDir = realiseStateDir(b, ctx)
  const common = bottleLabels(b)
  const fenced = b.egressAllow.length > 0
  const netName = n.bundleNetwork(b.name)
  const facts: NetworkFacts = { driver: "bridge", internal: false, options: {} }
  const netConfig = { Name: netName, Driver: facts.driver, Internal: facts.internal, Options: facts.options }
  const netHash = hashOf(netConfig)
  const network: NetworkSpec = {
    bottle: b.name,
    name: netName,
    role: "egress",
    hash: netHash,
    facts,
    body: { ...netConfig, CheckDuplicate: true, Labels: { ...common, [BL.specHash]: netHash } }
  }

  const e = egressContainer(b, ctx, stateDir)
  const bundleBody = { ...e, Hostname: "sidecars", HostConfig: { ...e.HostConfig, NetworkMode: netName } }
  const bundleHash = hashOf({ body: bundleBody, connect: [] })
  const bundleFields = fieldHashes({ image: e.Image, proxy: b.egressProxy, "egress.allow": b.egressAllow })
  const bundle: ContainerSpec = {
    bottle: b.name,
    name: n.bundleContainer(b.name),
    service: "egress",
    image: e.Image,
    hash: bundleHash,
    fields: bundleFields,
    connect: [],
    // The machine starts only once its proxy answers.
    ready: readyCheck(b.egressProxy, EGRESS_PORT),
    body: { ...bundleBody, Labels: { ...common, [BL.specHash]: bundleHash, [BL.specFields]: bundleFields } }
  }

  const workdir = b.workdir ?? "/workspace"
  // The proxy's address is known only once its bundle runs: the runner adds the proxy variables then.
  const env = agentEnv(b, undefined)
  const volumes = [`${b.workspace ?? `${stateDir.path}/workspace`}:${workdir}`, `${stateDir.path}/agent:${AGENT_MOUNT}:ro`]
  const cpus = Math.max(1, Math.ceil(b.resources.cpus ?? 2))
  const memMiB = Math.max(128, Math.floor(b.resources.memoryBytes / 1024 ** 2))
  const skills = b.skills.map((s) => s.hash)
  const secrets = secretDigests(b)
  const fields = { image: b.image, env: b.env, prompt: b.prompt ?? null, skills, resources: b.resources, workdir: b.workdir ?? null, command: b.command ?? null, network: fenced, workspace: b.workspace ?? null, secrets }
  // Secret values are in env: the hash sees their keyed digests instead.
  const machineHash = hashOf({ image: b.image, cpus, memMiB, env: env.filter((e) => !b.secrets.some((x) => e.startsWith(`${x.name}=`))), secrets, volumes, workdir, command: b.command ?? null, skills, network: fenced })
  const machine: MachineSpec = {
    bottle: b.name,
    name: n.machine(b.name),
    image: b.image,
    cpus,
    memMiB,
    env,
    volumes,
    workdir,
    labels: { ...common, [BL.specHash]: machineHash, [BL.specFields]: fieldHashes(fields) },
    hash: machineHash,
    egress: fenced ? { bundleContainer: bundle.name, bundleNetwork: netName } : undefined
  }
  return { bottle: b, network: fenced ? network : undefined, bundle: fenced ? bundle : undefined, machine, stateDir }
}
