/**
 * What a desired bottle means on the Docker backend: the exact networks,
 * containers and state dir bottle will create, with their hashes. Pure.
 */
import { stringify } from "yaml"
import type { DesiredBottle } from "./desired.js"
import { fieldHashes, hashOf } from "./hash.js"
import { Bottle as BL, COMPOSE_VERSION_LABEL, Compose, MANAGED_BY } from "./labels.js"
import type { DockerService, Names, NetworkRole } from "./names.js"

/** pipelock's published image: the egress proxy when nothing overrides it. */
export const DEFAULT_EGRESS_IMAGE = "ghcr.io/luckypipewrench/pipelock:3.5.0"
export const EGRESS_PORT = 8888
export const EGRESS_ALIAS = "egress"

export interface RealiseContext {
  readonly names: Names
  /** Absolute path of `<BOTTLE_HOME>/state`. */
  readonly stateRoot: string
  /** Host-wide egress image (`BOTTLE_EGRESS_IMAGE`), if set. */
  readonly egressImage: string | undefined
}

export interface NetworkSpec {
  readonly bottle: string
  readonly name: string
  readonly role: NetworkRole
  readonly hash: string
  /** Engine API `POST /networks/create` body. */
  readonly body: Readonly<Record<string, unknown>>
}

export interface ContainerSpec {
  readonly bottle: string
  readonly name: string
  readonly service: DockerService
  readonly image: string
  readonly hash: string
  readonly fields: string
  /** Engine API `POST /containers/create` body. */
  readonly body: Readonly<Record<string, unknown>>
  /** Networks to connect after create (API 1.41 attaches only one at create time). */
  readonly connect: ReadonlyArray<{ readonly network: string; readonly aliases: ReadonlyArray<string> }>
}

export interface StateDirSpec {
  readonly bottle: string
  readonly path: string
  readonly specHash: string
  readonly preserve: boolean
  readonly metadata: { readonly name: string; readonly backend: string; readonly set: string; readonly specHash: string }
  /** Files under the state dir, relative path → content. */
  readonly files: Readonly<Record<string, string>>
  readonly dirs: ReadonlyArray<string>
}

export interface DockerBottle {
  readonly bottle: DesiredBottle
  readonly networks: ReadonlyArray<NetworkSpec>
  /** In start order: sidecars first, agent last. */
  readonly containers: ReadonlyArray<ContainerSpec>
  readonly stateDir: StateDirSpec
}

export const bottleLabels = (b: DesiredBottle): Record<string, string> => ({
  [BL.managedBy]: MANAGED_BY,
  [BL.bottle]: b.name,
  [BL.set]: b.set,
  [BL.backend]: b.backend
})

/** pipelock's config for one bottle: strict mode, only the allowed domains. */
export const renderEgressConfig = (b: DesiredBottle): string =>
  `# Rendered by bottle for '${b.name}' from spec.egress.allow; rewritten on every apply.\n` +
  stringify({
    version: 1,
    mode: "strict",
    api_allowlist: [...b.egressAllow],
    fetch_proxy: { listen: `0.0.0.0:${EGRESS_PORT}` },
    forward_proxy: { enabled: true }
  })

export const stateDirPath = (ctx: RealiseContext, bottle: string) => `${ctx.stateRoot}/${bottle}`

/** Everything but what depends on the backend: the state dir. */
export const realiseStateDir = (b: DesiredBottle, ctx: RealiseContext, extraFiles: Record<string, string> = {}): StateDirSpec => {
  const files: Record<string, string> = { "egress/pipelock.yaml": renderEgressConfig(b), ...extraFiles }
  if (b.prompt !== undefined) files["prompt.md"] = b.prompt
  const specHash = hashOf({ ...b, source: undefined, set: undefined })
  return {
    bottle: b.name,
    path: stateDirPath(ctx, b.name),
    specHash,
    preserve: b.preserve,
    metadata: { name: b.name, backend: b.backend, set: b.set, specHash },
    files,
    dirs: ["workspace", "egress"]
  }
}

export const proxyEnv = (host: string): ReadonlyArray<string> => {
  const url = `http://${host}:${EGRESS_PORT}`
  return [`HTTPS_PROXY=${url}`, `HTTP_PROXY=${url}`, `https_proxy=${url}`, `http_proxy=${url}`, "NO_PROXY=localhost,127.0.0.1", "no_proxy=localhost,127.0.0.1"]
}

export const egressImageFor = (b: DesiredBottle, ctx: RealiseContext) => b.egressImage ?? ctx.egressImage ?? DEFAULT_EGRESS_IMAGE

const HARDENING = { CapDrop: ["ALL"], SecurityOpt: ["no-new-privileges:true"] } as const

export const realiseDocker = (b: DesiredBottle, ctx: RealiseContext): DockerBottle => {
  const n = ctx.names
  const project = n.project(b.name)
  const stateDir = realiseStateDir(b, ctx)
  const common = bottleLabels(b)

  const network = (role: NetworkRole): NetworkSpec => {
    const name = n.network(b.name, role)
    const config = {
      Name: name,
      Driver: "bridge",
      Internal: role === "internal",
      // The host keeps no address on the internal bridge, so the agent cannot reach host services through the gateway.
      Options: role === "internal" ? { "com.docker.network.bridge.inhibit_ipv4": "true" } : {}
    }
    const hash = hashOf(config)
    return {
      bottle: b.name,
      name,
      role,
      hash,
      body: {
        ...config,
        CheckDuplicate: true,
        Labels: { [Compose.project]: project, [Compose.network]: role, [Compose.version]: COMPOSE_VERSION_LABEL, ...common, [BL.specHash]: hash }
      }
    }
  }
  const internal = network("internal")
  const egressNet = network("egress")

  const container = (
    service: DockerService,
    fields: Record<string, unknown>,
    body: Record<string, unknown>,
    connect: ContainerSpec["connect"]
  ): ContainerSpec => {
    const hash = hashOf({ body, connect })
    const fieldsLabel = fieldHashes(fields)
    return {
      bottle: b.name,
      name: n.container(b.name, service),
      service,
      image: body["Image"] as string,
      hash,
      fields: fieldsLabel,
      connect,
      body: {
        ...body,
        Labels: {
          [Compose.project]: project,
          [Compose.service]: service,
          [Compose.containerNumber]: "1",
          [Compose.oneoff]: "False",
          [Compose.configHash]: hash,
          [Compose.version]: COMPOSE_VERSION_LABEL,
          ...common,
          [BL.specHash]: hash,
          [BL.specFields]: fieldsLabel
        }
      }
    }
  }

  const egressImage = egressImageFor(b, ctx)
  const egressConfig = stateDir.files["egress/pipelock.yaml"]
  const egress = container(
    "egress",
    { image: egressImage, "egress.allow": egressConfig },
    {
      Image: egressImage,
      Cmd: ["run", "--listen", `0.0.0.0:${EGRESS_PORT}`, "--config", "/config/pipelock.yaml"],
      Hostname: EGRESS_ALIAS,
      // The config text is part of the hash, so a changed allow list replaces the proxy.
      Env: [`BOTTLE_EGRESS_CONFIG_HASH=${hashOf(egressConfig).slice(0, 16)}`],
      HostConfig: {
        ...HARDENING,
        PidsLimit: 256,
        Memory: 256 * 1024 ** 2,
        Binds: [`${stateDir.path}/egress:/config:ro`],
        NetworkMode: internal.name,
        RestartPolicy: { Name: "unless-stopped" }
      },
      NetworkingConfig: { EndpointsConfig: { [internal.name]: { Aliases: [EGRESS_ALIAS] } } }
    },
    [{ network: egressNet.name, aliases: [EGRESS_ALIAS] }]
  )

  const binds = [`${stateDir.path}/workspace:/workspace`]
  if (b.prompt !== undefined) binds.push(`${stateDir.path}/prompt.md:/bottle/prompt.md:ro`)
  b.skills.forEach((s, i) => binds.push(`${s}:/bottle/skills/${i}-${basename(s)}:ro`))
  const env = [
    ...Object.keys(b.env).sort().map((k) => `${k}=${b.env[k]}`),
    `BOTTLE_NAME=${b.name}`,
    ...(b.prompt !== undefined ? ["BOTTLE_PROMPT_FILE=/bottle/prompt.md"] : []),
    // Last, so the spec cannot point the agent around its proxy.
    ...proxyEnv(EGRESS_ALIAS)
  ]
  const agent = container(
    "agent",
    {
      image: b.image,
      command: b.command ?? null,
      workdir: b.workdir ?? null,
      env: b.env,
      prompt: b.prompt ?? null,
      skills: b.skills,
      resources: b.resources
    },
    {
      Image: b.image,
      ...(b.command !== undefined ? { Cmd: [...b.command] } : {}),
      WorkingDir: b.workdir ?? "/workspace",
      Hostname: b.name,
      Env: env,
      HostConfig: {
        ...HARDENING,
        PidsLimit: b.resources.pids,
        Memory: b.resources.memoryBytes,
        MemorySwap: b.resources.memoryBytes,
        ...(b.resources.cpus !== undefined ? { NanoCpus: Math.round(b.resources.cpus * 1e9) } : {}),
        Binds: binds,
        NetworkMode: internal.name,
        RestartPolicy: { Name: "no" }
      },
      NetworkingConfig: { EndpointsConfig: { [internal.name]: { Aliases: ["agent"] } } }
    },
    []
  )
  return { bottle: b, networks: [internal, egressNet], containers: [egress, agent], stateDir }
}

const basename = (p: string) => p.replace(/\/+$/, "").split("/").pop() ?? "skill"
