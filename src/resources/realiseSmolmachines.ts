/**
 * What a desired bottle means on the smolmachines backend: a sidecar bundle
 * container on a bundle network of its own, and a smolvm machine whose only
 * way out is the bundle's address. Pure.
 */
import type { DesiredBottle } from "./desired.js"
import { fieldHashes, hashOf } from "./hash.js"
import { Bottle as BL } from "./labels.js"
import {
  bottleLabels,
  EGRESS_PORT,
  egressImageFor,
  realiseStateDir,
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
  /** The bundle container whose address on `bundleNetwork` becomes the machine's only allowed CIDR. */
  readonly bundleContainer: string
  readonly bundleNetwork: string
}

export interface SmolBottle {
  readonly bottle: DesiredBottle
  readonly network: NetworkSpec
  readonly bundle: ContainerSpec
  readonly machine: MachineSpec
  readonly stateDir: StateDirSpec
}

export const realiseSmolmachines = (b: DesiredBottle, ctx: RealiseContext): SmolBottle => {
  const n = ctx.names
  const stateDir = realiseStateDir(b, ctx)
  const common = bottleLabels(b)
  const netName = n.bundleNetwork(b.name)
  const netConfig = { Name: netName, Driver: "bridge", Internal: false, Options: {} }
  const netHash = hashOf(netConfig)
  const network: NetworkSpec = {
    bottle: b.name,
    name: netName,
    role: "egress",
    hash: netHash,
    body: { ...netConfig, CheckDuplicate: true, Labels: { ...common, [BL.specHash]: netHash } }
  }

  const egressImage = egressImageFor(b, ctx)
  const egressConfig = stateDir.files["egress/pipelock.yaml"]
  const bundleBody = {
    Image: egressImage,
    Cmd: ["run", "--listen", `0.0.0.0:${EGRESS_PORT}`, "--config", "/config/pipelock.yaml"],
    Hostname: "sidecars",
    Env: [`BOTTLE_EGRESS_CONFIG_HASH=${hashOf(egressConfig).slice(0, 16)}`],
    HostConfig: {
      CapDrop: ["ALL"],
      SecurityOpt: ["no-new-privileges:true"],
      PidsLimit: 256,
      Memory: 256 * 1024 ** 2,
      Binds: [`${stateDir.path}/egress:/config:ro`],
      NetworkMode: netName,
      RestartPolicy: { Name: "unless-stopped" }
    }
  }
  const bundleHash = hashOf({ body: bundleBody, connect: [] })
  const bundleFields = fieldHashes({ image: egressImage, "egress.allow": egressConfig })
  const bundle: ContainerSpec = {
    bottle: b.name,
    name: n.bundleContainer(b.name),
    service: "egress",
    image: egressImage,
    hash: bundleHash,
    fields: bundleFields,
    connect: [],
    body: { ...bundleBody, Labels: { ...common, [BL.specHash]: bundleHash, [BL.specFields]: bundleFields } }
  }

  const env = [
    ...Object.keys(b.env).sort().map((k) => `${k}=${b.env[k]}`),
    `BOTTLE_NAME=${b.name}`,
    ...(b.prompt !== undefined ? ["BOTTLE_PROMPT_FILE=/bottle/prompt.md"] : [])
  ]
  const volumes = [`${stateDir.path}/workspace:/workspace`, ...(b.prompt !== undefined ? [`${stateDir.path}/prompt.md:/bottle/prompt.md:ro`] : [])]
  b.skills.forEach((s, i) => volumes.push(`${s}:/bottle/skills/${i}-${s.replace(/\/+$/, "").split("/").pop()}:ro`))
  const cpus = Math.max(1, Math.ceil(b.resources.cpus ?? 2))
  const memMiB = Math.max(128, Math.floor(b.resources.memoryBytes / 1024 ** 2))
  const fields = { image: b.image, env: b.env, prompt: b.prompt ?? null, skills: b.skills, resources: b.resources, workdir: b.workdir ?? null, command: b.command ?? null }
  const machineHash = hashOf({ image: b.image, cpus, memMiB, env, volumes, workdir: b.workdir ?? "/workspace", command: b.command ?? null })
  const machine: MachineSpec = {
    bottle: b.name,
    name: n.machine(b.name),
    image: b.image,
    cpus,
    memMiB,
    env,
    volumes,
    workdir: b.workdir ?? "/workspace",
    labels: { ...common, [BL.specHash]: machineHash, [BL.specFields]: fieldHashes(fields) },
    hash: machineHash,
    bundleContainer: bundle.name,
    bundleNetwork: netName
  }
  return { bottle: b, network, bundle, machine, stateDir }
}
