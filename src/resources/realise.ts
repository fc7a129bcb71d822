/**
 * What a desired bottle means on the Docker backend: the exact networks,
 * containers and state dir bottle will create, with their hashes, and how
 * its fence is verified. Pure.
 */
import type { DesiredBottle } from "./desired.js"
import { EGRESS_ADDON, EGRESS_ADDON_FILE, EGRESS_POLICY_FILE, type EgressPolicy } from "./egressAddon.js"
import { EGRESS_LAUNCH, EGRESS_LAUNCH_COMMAND, EGRESS_LAUNCH_FILE } from "./egressLaunch.js"
import { parseAllowList, type AllowRule } from "./egressRules.js"
import { PROBE_SCRIPT } from "./probeScript.js"
import type { NetworkFacts } from "./fence.js"
import { fieldHashes, hashOf } from "./hash.js"
import { Bottle as BL, COMPOSE_VERSION_LABEL, Compose, MANAGED_BY } from "./labels.js"
import type { DockerService, Names, NetworkRole } from "./names.js"
import { ACCESS_HOOK, agentGitEnv, GATE_READY_CHECK, GATE_SCRIPT, GIT_ALIAS, GIT_PORT, MIRRORS, PRE_RECEIVE, renderRemotes, SECRET_PATTERNS } from "./gitGate.js"
import { SUPERVISE_ALIAS, SUPERVISE_PORT, SUPERVISE_READY_CHECK, SUPERVISE_SERVER_FILE } from "./supervise.js"
import { DEFAULT_MITMPROXY_IMAGE, DEFAULT_PIPELOCK_IMAGE } from "./proxyImages.js"
import { byEnvName } from "./order.js"

export const EGRESS_PORT = 8888
export const EGRESS_ALIAS = "egress"
/** Where the agent finds its prompt and skills: the state dir's `agent/`, read-only. */
export const AGENT_MOUNT = "/bottle"

export interface RealiseContext {
  readonly names: Names
  /** Absolute path of `<BOTTLE_HOME>/state`. */
  readonly stateRoot: string
  /** Host-wide egress image (`BOTTLE_EGRESS_IMAGE`), if set. */
  readonly egressImage: string | undefined
  /** `uid:gid` the mitmproxy proxy runs as: the user running bottle, who owns the files it reads (its CA key among them). */
  readonly proxyUser: string
}

export interface NetworkSpec {
  readonly bottle: string
  readonly name: string
  readonly role: NetworkRole
  readonly hash: string
  /** What the live network must look like, whatever its labels say. */
  readonly facts: NetworkFacts
  /** Engine API `POST /networks/create` body. */
  readonly body: Readonly<Record<string, unknown>>
  /** On Podman, the body of its own `libpod/networks/create`, used instead of `body`. */
  readonly podman?: Readonly<Record<string, unknown>>
}

/**
 * A readiness check before what depends on a proxy starts: the line the proxy
 * prints once it answers, read from its log since it started; or, where there
 * is no such line or its log cannot be read, a check run in the container
 * itself (an exec: no container of its own).
 */
export interface ReadySpec {
  /** The port that must accept a connection (and answer HTTP). */
  readonly port: number
  /** The command that succeeds once it does, in the proxy's own image. */
  readonly check: ReadonlyArray<string>
  /** Run the check again until it succeeds (pipelock's one-shot healthcheck); otherwise it waits itself. */
  readonly repeat: boolean
  /** The `event` of the JSON line the proxy prints once it listens (bottle's mitmproxy addon: `ready`, from mitmproxy's running hook). */
  readonly event?: string
}

/**
 * How to tell a proxy answers. mitmproxy: bottle's addon says so in its log once mitmproxy runs its servers
 * (nothing to start in the container: at ten bottles starting at once, an exec of python each was a tenth of
 * the machine's work besides the proxies'), and where the log cannot be read, the probe script, run inside it,
 * waits itself (the image has python3). pipelock: its own healthcheck, again and again.
 */
export const readyCheck = (proxy: DesiredBottle["egressProxy"], port = EGRESS_PORT): ReadySpec =>
  proxy === "pipelock"
    ? { port, check: ["/pipelock", "healthcheck", "--addr", `127.0.0.1:${port}`], repeat: true }
    : { port, check: ["python3", "-c", PROBE_SCRIPT, JSON.stringify({ mode: "ready", port, deadline: 60 })], repeat: false, event: "ready" }

/** Engine API `POST /containers/create` body, as far as bottle sets it. */
export interface ContainerBody {
  readonly Image: string
  readonly Cmd?: ReadonlyArray<string>
  readonly Entrypoint?: ReadonlyArray<string>
  readonly User?: string
  readonly Env?: ReadonlyArray<string>
  readonly WorkingDir?: string
  readonly Hostname?: string
  readonly Labels?: Readonly<Record<string, string>>
  readonly HostConfig: Readonly<Record<string, unknown>>
  readonly NetworkingConfig?: { readonly EndpointsConfig?: Readonly<Record<string, { readonly Aliases?: ReadonlyArray<string> }>> }
}

export interface ContainerSpec {
  readonly bottle: string
  readonly name: string
  readonly service: DockerService
  readonly image: string
  readonly hash: string
  readonly fields: string
  readonly body: ContainerBody
  /** Networks to connect after create (API 1.41 attaches only one at create time). */
  readonly connect: ReadonlyArray<{ readonly network: string; readonly aliases: ReadonlyArray<string> }>
  /** Set for the egress proxy: what depends on it waits until it answers. */
  readonly ready?: ReadySpec
}

/** A file bottle writes into a state dir: text or bytes, with its mode. */
export interface StateFile {
  readonly content: string | Uint8Array
  readonly mode: number
  /** Set for a secret's value: what stands for it in hashes is its keyed digest, never the bytes. */
  readonly secret?: string
}

export interface StateDirSpec {
  readonly bottle: string
  readonly path: string
  readonly specHash: string
  readonly preserve: boolean
  readonly metadata: StateMetadata
  /** Files under the state dir, relative path → content and mode. */
  readonly files: Readonly<Record<string, StateFile>>
  /** Directories to make, with their modes, parents first. */
  readonly dirs: ReadonlyArray<{ readonly path: string; readonly mode: number }>
  /** Directories bottle alone writes: whatever else is in them is removed. */
  readonly managed: ReadonlyArray<string>
  /** The bottle's own CA, made once and kept (egress/ca/, key readable by its owner only), its certificate given to the agent. */
  readonly ca: boolean
  /** CA certificates (PEM) the proxy trusts upstream, besides the host's: written with the host's bundle into egress/upstream-ca.pem. */
  readonly upstreamTrust: ReadonlyArray<string>
}

/** Files under a state dir that the runner makes (a CA, bundles with the host's certificates): kept, never pruned. */
export const GENERATED_FILES = {
  caKey: "egress/ca/mitmproxy-ca.pem",
  caCert: "agent/ca.pem",
  caBundle: "agent/ca-bundle.pem",
  upstream: "egress/upstream-ca.pem"
} as const

/** `metadata.json`: what makes a state dir bottle's, and whose. */
export interface StateMetadata {
  readonly managedBy: typeof MANAGED_BY
  readonly prefix: string
  readonly name: string
  readonly backend: string
  readonly set: string
  readonly specHash: string
  /** Kubernetes: where its objects are, so a later `reconcile --prune` finds them without its spec. */
  readonly namespace?: string
}

/** How to prove a bottle's fence from inside its agent's network namespace. */
export interface VerifySpec {
  readonly bottle: string
  /** The container whose network namespace is probed. */
  readonly target: string
  /** The proxy the agent should reach (undefined: no proxy, no way out at all). */
  readonly proxy: { readonly host: string; readonly port: number } | undefined
  /** The bottle's networks, whose gateways must be unreachable. */
  readonly networks: ReadonlyArray<string>
  /** Names that must not resolve from inside. */
  readonly dnsNames: ReadonlyArray<string>
  /** The bottle's other sidecars, which the agent must reach (and nothing else). */
  readonly sidecars: ReadonlyArray<{ readonly name: string; readonly host: string; readonly port: number }>
  /** The proxy's image (probes run in it when it is mitmproxy's), if the bottle has a proxy. */
  readonly proxyImage: string | undefined
  /** Where the verdict is kept. */
  readonly stateDir: string
}

export interface DockerBottle {
  readonly bottle: DesiredBottle
  readonly networks: ReadonlyArray<NetworkSpec>
  /** In start order: sidecars first, agent last. */
  readonly containers: ReadonlyArray<ContainerSpec>
  readonly stateDir: StateDirSpec
  readonly verify: VerifySpec
}

export const bottleLabels = (b: DesiredBottle): Record<string, string> => ({
  [BL.managedBy]: MANAGED_BY,
  [BL.bottle]: b.name,
  [BL.set]: b.set,
  [BL.backend]: b.backend
})

const PRIVATE = 0o600
const PRIVATE_EXEC = 0o700
const PRIVATE_DIR = 0o700
const PUBLIC = 0o644
const PUBLIC_DIR = 0o755

/**
 * pipelock's config for one bottle, rendering egress.allow's one meaning as
 * closely as pipelock can: its `*.d` also matches `d`, so `d` is blocked
 * unless a rule allows it; it cannot limit ports (the spec refuses ports
 * with pipelock). Its defaults that break agents are raised: 60 requests a
 * minute per domain, tunnels cut at 300 s or 120 s idle; its stats leave the
 * port the agent uses.
 */
export const renderPipelockConfig = (b: DesiredBottle, rules: ReadonlyArray<AllowRule>): string => {
  const exact = new Set(rules.filter((r) => !r.wildcard).map((r) => r.domain))
  const blocked = [...new Set(rules.filter((r) => r.wildcard && !exact.has(r.domain)).map((r) => r.domain))]
  // JSON is YAML too: pipelock reads it as its config without a YAML writer here.
  return `# Rendered by bottle for '${b.name}' from spec.egress.allow; rewritten on every apply.\n` +
    JSON.stringify({
      version: 1,
      mode: "strict",
      api_allowlist: [...new Set(rules.map((r) => (r.wildcard ? `*.${r.domain}` : r.domain)))],
      fetch_proxy: {
        listen: `0.0.0.0:${EGRESS_PORT}`,
        monitoring: { max_requests_per_minute: 1_000_000, ...(blocked.length > 0 ? { blocklist: blocked } : {}) }
      },
      forward_proxy: { enabled: true, max_tunnel_seconds: 86_400, idle_timeout_seconds: 3_600, sni_verification: true },
      metrics_listen: "127.0.0.1:9090",
      logging: { format: "json", output: "stdout", include_allowed: true, include_blocked: true },
      sentry: { enabled: false }
    }, null, 2) + "\n"
}

/** The mitmproxy addon's policy for one bottle. */
export const renderEgressPolicy = (b: DesiredBottle, rules: ReadonlyArray<AllowRule>): EgressPolicy => ({
  bottle: b.name,
  rules: rules.map((r) => ({ entry: r.entry, domain: r.domain, wildcard: r.wildcard, ports: [...r.ports] })),
  inject: injected(b).map((x) => ({ host: x.inject.host, header: x.inject.header, format: x.inject.format, file: `${SECRETS_DIR}/${x.name}`, placeholder: placeholderOf(x.name) }))
})

/** Where the proxy finds an injected secret's value, under its config dir (never mounted into the agent). */
const SECRETS_DIR = "secrets"
/** What the agent's variable holds instead of an injected secret. */
export const placeholderOf = (name: string) => `bottle-placeholder-${name.toLowerCase()}`
const injected = (b: DesiredBottle) => b.secrets.flatMap((x) => (x.inject !== undefined ? [{ name: x.name, value: x.value, inject: x.inject }] : []))
/** Whether the bottle's proxy opens TLS anywhere (to put a secret in): then it needs the bottle's own CA, and the agent trusts it. */
export const needsCa = (b: DesiredBottle) => injected(b).length > 0 && b.egressAllow.length > 0

export const stateDirPath = (ctx: RealiseContext, bottle: string) => `${ctx.stateRoot}/${bottle}`

/** The files of the egress proxy's config dir (`egress/`, mounted read-only at /config in the proxy). */
const egressFiles = (b: DesiredBottle, rules: ReadonlyArray<AllowRule>): Record<string, StateFile> => {
  if (rules.length === 0) return {}
  if (b.egressProxy === "pipelock") return { "egress/pipelock.yaml": { content: renderPipelockConfig(b, rules), mode: PUBLIC } }
  return {
    [`egress/${EGRESS_LAUNCH_FILE}`]: { content: EGRESS_LAUNCH, mode: PRIVATE },
    [`egress/${EGRESS_ADDON_FILE}`]: { content: EGRESS_ADDON, mode: PRIVATE },
    [`egress/${EGRESS_POLICY_FILE}`]: { content: `${JSON.stringify(renderEgressPolicy(b, rules), null, 2)}\n`, mode: PRIVATE },
    ...Object.fromEntries(injected(b).map((x) => [`egress/${SECRETS_DIR}/${x.name}`, { content: x.value, mode: PRIVATE, secret: x.name }]))
  }
}

/** The git gate's config dir (`git/`, mounted read-only at /config in the gate): its scripts, remotes, pinned keys and its own keys. */
const gitFiles = (b: DesiredBottle, proxyUser: string): Record<string, StateFile> => {
  if (b.git === undefined) return {}
  const [uid, gid] = proxyUser.split(":")
  const keyed = b.git.remotes.filter((r) => r.sshKey !== undefined)
  return {
    "git/gate": { content: GATE_SCRIPT, mode: PRIVATE },
    "git/access-hook": { content: ACCESS_HOOK, mode: PRIVATE_EXEC },
    "git/hooks/pre-receive": { content: PRE_RECEIVE, mode: PRIVATE_EXEC },
    "git/remotes": { content: renderRemotes(b.git), mode: PRIVATE },
    "git/known_hosts": { content: b.git.hostKeys.map((k) => `${k}\n`).join(""), mode: PRIVATE },
    "git/secret-patterns": { content: SECRET_PATTERNS.map((p) => `${p}\n`).join(""), mode: PRIVATE },
    // ssh will not run as a user the system does not know: the gate's user, named (mounted as /etc/passwd).
    "git/passwd": { content: `root:x:0:0:root:/root:/bin/sh\n${uid === "0" ? "" : `gate:x:${uid}:${gid}:bottle git gate:/tmp/gate:/bin/sh\n`}`, mode: PUBLIC },
    ...Object.fromEntries(keyed.map((r) => {
      const secret = b.secrets.find((x) => x.name === r.sshKey)
      const value = secret?.value ?? ""
      return [`git/keys/${r.name}`, { content: value.endsWith("\n") ? value : `${value}\n`, mode: PRIVATE, ...(secret !== undefined ? { secret: secret.name } : {}) }]
    }))
  }
}

/** The supervisor's files (`supervise/`): its server (read-only at /app) beside the queue it writes and the decisions it reads. */
const superviseFiles = (b: DesiredBottle): Record<string, StateFile> =>
  b.supervise === undefined ? {} : { [`supervise/app/${SUPERVISE_SERVER_FILE}`]: { content: b.supervise.server, mode: PRIVATE } }

/** The files the agent reads (`agent/`, mounted read-only at /bottle): the prompt and copies of the skills. */
const agentFiles = (b: DesiredBottle): Record<string, StateFile> => {
  const files: Record<string, StateFile> = {}
  if (b.prompt !== undefined) files["agent/prompt.md"] = { content: b.prompt, mode: PUBLIC }
  b.skills.forEach((s, i) => {
    for (const f of s.files) files[`agent/skills/${skillDir(i, s.source)}/${f.path}`] = { content: f.content, mode: f.executable ? 0o755 : PUBLIC }
  })
  return files
}

const skillDir = (i: number, source: string) => `${i}-${source.replace(/\/+$/, "").split("/").pop() || "skill"}`

/** Secrets as hashes may see them: by name, keyed digest and where they go, never their values. */
export const secretDigests = (b: DesiredBottle) => b.secrets.map((x) => ({ name: x.name, digest: x.digest, inject: x.inject ?? null }))

/** What of a desired bottle the agent sees through its files: hashed by content, never by the bytes themselves. */
const agentContent = (b: DesiredBottle) => ({ prompt: b.prompt ?? null, skills: b.skills.map((s) => s.hash) })

/** Everything but what depends on the backend: the state dir. */
export const realiseStateDir = (b: DesiredBottle, ctx: RealiseContext): StateDirSpec => {
  const rules = parseAllowList(b.egressAllow)
  const files: Record<string, StateFile> = { ...egressFiles(b, rules), ...agentFiles(b), ...gitFiles(b, ctx.proxyUser), ...superviseFiles(b) }
  const specHash = hashOf({ ...b, skills: agentContent(b).skills, secrets: secretDigests(b), source: undefined, set: undefined })
  const publicEgress = b.egressProxy === "pipelock"
  const dirs = [
    { path: "workspace", mode: PUBLIC_DIR },
    { path: "agent", mode: PUBLIC_DIR },
    ...(b.skills.length > 0 ? [{ path: "agent/skills", mode: PUBLIC_DIR }] : []),
    ...b.skills.flatMap((s, i) => [
      { path: `agent/skills/${skillDir(i, s.source)}`, mode: PUBLIC_DIR },
      ...s.dirs.map((d) => ({ path: `agent/skills/${skillDir(i, s.source)}/${d}`, mode: PUBLIC_DIR }))
    ]),
    { path: "egress", mode: publicEgress ? PUBLIC_DIR : PRIVATE_DIR },
    ...(injected(b).length > 0 ? [{ path: `egress/${SECRETS_DIR}`, mode: PRIVATE_DIR }] : []),
    ...(needsCa(b) ? [{ path: "egress/ca", mode: PRIVATE_DIR }] : []),
    ...(b.git !== undefined
      ? [{ path: "git", mode: PRIVATE_DIR }, { path: "git/hooks", mode: PRIVATE_DIR }, { path: "git/keys", mode: PRIVATE_DIR }, { path: "git-mirrors", mode: PRIVATE_DIR }]
      : []),
    ...(b.supervise !== undefined
      ? [{ path: "supervise", mode: PRIVATE_DIR }, { path: "supervise/app", mode: PRIVATE_DIR }, { path: "supervise/queue", mode: PRIVATE_DIR }, { path: "supervise/decisions", mode: PRIVATE_DIR }]
      : [])
  ]
  return {
    bottle: b.name,
    path: stateDirPath(ctx, b.name),
    specHash,
    preserve: b.preserve,
    metadata: { managedBy: MANAGED_BY, prefix: ctx.names.prefix, name: b.name, backend: b.backend, set: b.set, specHash },
    files,
    dirs,
    // The gate's mirrors and the supervisor's queue and decisions are data, never pruned as stray files.
    managed: ["agent", "egress", ...(b.git !== undefined ? ["git"] : []), ...(b.supervise !== undefined ? ["supervise/app"] : [])],
    ca: needsCa(b),
    upstreamTrust: b.egressAllow.length > 0 ? b.egressTrust : []
  }
}

/** The agent's proxy variables; the bottle's own sidecars (`direct`) are reached without it. */
export const proxyEnv = (host: string, direct: ReadonlyArray<string> = []): ReadonlyArray<string> => {
  const url = `http://${host}:${EGRESS_PORT}`
  const none = ["localhost", "127.0.0.1", ...direct].join(",")
  return [`HTTPS_PROXY=${url}`, `HTTP_PROXY=${url}`, `https_proxy=${url}`, `http_proxy=${url}`, `NO_PROXY=${none}`, `no_proxy=${none}`]
}

export const egressImageFor = (b: DesiredBottle, ctx: Pick<RealiseContext, "egressImage">) =>
  b.egressImage ?? ctx.egressImage ?? (b.egressProxy === "pipelock" ? DEFAULT_PIPELOCK_IMAGE : DEFAULT_MITMPROXY_IMAGE)

const HARDENING = { CapDrop: ["ALL"], SecurityOpt: ["no-new-privileges:true"] } as const

/** A sidecar's config files under `dir/`, as its config hash sees them: a secret by its digest, never its value. */
const configFiles = (b: DesiredBottle, stateDir: StateDirSpec, dir: string) =>
  Object.entries(stateDir.files).filter(([k]) => k.startsWith(`${dir}/`)).map(([k, f]) =>
    [k, f.secret !== undefined ? b.secrets.find((x) => x.name === f.secret)!.digest : typeof f.content === "string" ? f.content : Buffer.from(f.content).toString("base64")])

/** The egress proxy's image, command and config mount, for either proxy. */
export const egressContainer = (b: DesiredBottle, ctx: RealiseContext, stateDir: StateDirSpec) => {
  const image = egressImageFor(b, ctx)
  const configHash = hashOf([...configFiles(b, stateDir, "egress"), stateDir.ca, stateDir.upstreamTrust]).slice(0, 16)
  const common = {
    Image: image,
    // The config text is part of the hash, so a changed allow list replaces the proxy.
    HostConfig: {
      ...HARDENING,
      PidsLimit: 256,
      Memory: 256 * 1024 ** 2,
      MemorySwap: 256 * 1024 ** 2,
      ReadonlyRootfs: true,
      Tmpfs: { "/tmp": "rw,nosuid,nodev,size=64m" },
      Binds: [`${stateDir.path}/egress:/config:ro`],
      RestartPolicy: { Name: "unless-stopped" }
    }
  }
  if (b.egressProxy === "pipelock") {
    return {
      ...common,
      Cmd: ["run", "--listen", `0.0.0.0:${EGRESS_PORT}`, "--config", "/config/pipelock.yaml"],
      Env: [`BOTTLE_EGRESS_CONFIG_HASH=${configHash}`]
    }
  }
  const cmd = [
    "--quiet", "--mode", "regular", "--listen-host", "0.0.0.0", "--listen-port", String(EGRESS_PORT),
    // Nothing is connected before the addon has decided. Its confdir is tmpfs: the launcher copies the bottle's CA in
    // at start (from the read-only config), or, for a bottle whose TLS is never opened, makes one nothing uses.
    "--set", "connection_strategy=lazy", "--set", "confdir=/tmp/mitmproxy",
    ...(stateDir.upstreamTrust.length > 0 ? ["--set", `ssl_verify_upstream_trusted_ca=/config/${GENERATED_FILES.upstream.slice("egress/".length)}`] : []),
    "-s", `/config/${EGRESS_ADDON_FILE}`
  ]
  return {
    ...common,
    Entrypoint: [...EGRESS_LAUNCH_COMMAND],
    Cmd: cmd,
    User: ctx.proxyUser,
    Env: [
      `BOTTLE_EGRESS_CONFIG_HASH=${configHash}`, `BOTTLE_EGRESS_POLICY=/config/${EGRESS_POLICY_FILE}`, "HOME=/tmp",
      // The bottle's own CA, copied into the confdir at start (the launcher makes one nothing uses otherwise).
      ...(stateDir.ca ? [`BOTTLE_EGRESS_CA=/config/${GENERATED_FILES.caKey.slice("egress/".length)}`] : [])
    ]
  }
}

/**
 * On Podman the internal network has no resolver and no gateway: the proxy
 * gets a fixed address there (the subnet's last), and the agent finds it
 * by name through its hosts file; host.containers.internal leads nowhere,
 * and IPv6 (which Podman turns on, link-local) is off.
 */
export interface PodmanPlacement {
  readonly egressIp: string
  /** The git gate's and the supervisor's fixed addresses there, found the same way. */
  readonly gitIp: string
  readonly superviseIp: string
}

export const realiseDocker = (b: DesiredBottle, ctx: RealiseContext, podman?: PodmanPlacement): DockerBottle => {
  const n = ctx.names
  const project = n.project(b.name)
  const stateDir = realiseStateDir(b, ctx)
  const common = bottleLabels(b)
  const fenced = b.egressAllow.length > 0

  const network = (role: NetworkRole): NetworkSpec => {
    const name = n.network(b.name, role)
    // Podman ignores inhibit_ipv4 and keeps a gateway (and a resolver that answers outside names) on an internal
    // network made through its Docker-compatible API; made through its own API without DNS, it has neither.
    const onPodman = podman !== undefined && role === "internal"
    const facts: NetworkFacts = {
      driver: "bridge",
      internal: role === "internal",
      // The host keeps no address on the internal bridge, so the agent cannot reach host services through the gateway.
      options: role === "internal" && !onPodman ? { "com.docker.network.bridge.inhibit_ipv4": "true" } : {},
      ...(onPodman ? { noGateway: true } : {})
    }
    const config = { Name: name, Driver: facts.driver, Internal: facts.internal, Options: facts.options, ...(onPodman ? { Podman: { dns_enabled: false } } : {}) }
    const hash = hashOf(config)
    const labels = { [Compose.project]: project, [Compose.network]: role, [Compose.version]: COMPOSE_VERSION_LABEL, ...common, [BL.specHash]: hash }
    return {
      bottle: b.name,
      name,
      role,
      hash,
      facts,
      body: { Name: name, Driver: facts.driver, Internal: facts.internal, Options: facts.options, CheckDuplicate: true, Labels: labels },
      ...(onPodman ? { podman: { name, driver: "bridge", internal: true, dns_enabled: false, ipv6_enabled: false, labels } } : {})
    }
  }
  const internal = network("internal")
  // An empty allow list: no proxy; and no egress network at all, unless the git gate needs it to reach its upstreams.
  const egressNet = fenced || b.git !== undefined ? network("egress") : undefined

  const secretOf = new Map(b.secrets.map((x) => [x.name, x]))
  const hashableEnv = (e: string) => {
    const x = secretOf.get(e.split("=")[0]!)
    return x !== undefined && x.inject === undefined ? `${x.name}=<secret ${x.digest}>` : e
  }
  const container = (
    service: DockerService,
    fields: Record<string, unknown>,
    body: ContainerBody,
    connect: ContainerSpec["connect"],
    ready?: ReadySpec
  ): ContainerSpec => {
    // A secret's value is in the agent's environment, never in a hash of it: its keyed digest stands in.
    const hash = hashOf({ body: { ...body, Env: (body.Env ?? []).map(hashableEnv) }, connect })
    const fieldsLabel = fieldHashes(fields)
    return {
      bottle: b.name,
      name: n.container(b.name, service),
      service,
      image: body.Image,
      hash,
      fields: fieldsLabel,
      connect,
      ...(ready !== undefined ? { ready } : {}),
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

  const containers: Array<ContainerSpec> = []
  if (fenced && egressNet !== undefined) {
    const e = egressContainer(b, ctx, stateDir)
    containers.push(container(
      "egress",
      { image: e.Image, proxy: b.egressProxy, "egress.allow": b.egressAllow },
      {
        ...e,
        Hostname: EGRESS_ALIAS,
        HostConfig: { ...e.HostConfig, NetworkMode: internal.name },
        NetworkingConfig: { EndpointsConfig: { [internal.name]: { Aliases: [EGRESS_ALIAS], ...(podman !== undefined ? { IPAMConfig: { IPv4Address: podman.egressIp } } : {}) } } }
      },
      [{ network: egressNet.name, aliases: [EGRESS_ALIAS] }],
      readyCheck(b.egressProxy)
    ))
  }

  /** A sidecar's config hash: its files under `dir/` (a secret by its digest), so a changed config replaces it. */
  const filesHash = (dir: string) => hashOf(configFiles(b, stateDir, dir)).slice(0, 16)
  const sidecarHost = (alias: string, image: string, extra: Record<string, unknown>, ip: string | undefined) => ({
    Image: image,
    User: ctx.proxyUser,
    Hostname: alias,
    HostConfig: {
      ...HARDENING,
      PidsLimit: 256,
      Memory: 512 * 1024 ** 2,
      MemorySwap: 512 * 1024 ** 2,
      ReadonlyRootfs: true,
      Tmpfs: { "/tmp": "rw,nosuid,nodev,size=64m" },
      NetworkMode: internal.name,
      RestartPolicy: { Name: "unless-stopped" },
      ...extra
    },
    NetworkingConfig: { EndpointsConfig: { [internal.name]: { Aliases: [alias], ...(ip !== undefined ? { IPAMConfig: { IPv4Address: ip } } : {}) } } }
  })
  if (b.git !== undefined && egressNet !== undefined) {
    containers.push(container(
      "git",
      { image: b.git.image, remotes: b.git.remotes.map((r) => `${r.name} ${r.push ? "push" : "fetch"} ${r.url}`), hostKeys: b.git.hostKeys },
      {
        ...sidecarHost(GIT_ALIAS, b.git.image, { Binds: [`${stateDir.path}/git:/config:ro`, `${stateDir.path}/git/passwd:/etc/passwd:ro`, `${stateDir.path}/git-mirrors:${MIRRORS}`] }, podman?.gitIp),
        Entrypoint: ["sh", "/config/gate"],
        Env: [`BOTTLE_GIT_CONFIG_HASH=${filesHash("git")}`, "HOME=/tmp/gate"]
      },
      // Its upstreams are reached from the egress network, never through the agent's.
      [{ network: egressNet.name, aliases: [] }],
      { port: GIT_PORT, check: GATE_READY_CHECK, repeat: true }
    ))
  }
  if (b.supervise !== undefined) {
    containers.push(container(
      "supervise",
      { image: b.supervise.image },
      {
        ...sidecarHost(SUPERVISE_ALIAS, b.supervise.image, {
          Binds: [`${stateDir.path}/supervise/app:/app:ro`, `${stateDir.path}/supervise/queue:/run/supervise/queue`, `${stateDir.path}/supervise/decisions:/run/supervise/decisions:ro`]
        }, podman?.superviseIp),
        Entrypoint: ["node", `/app/${SUPERVISE_SERVER_FILE}`],
        Env: [`BOTTLE_SUPERVISE_CONFIG_HASH=${filesHash("supervise/app")}`, `BOTTLE_NAME=${b.name}`, `BOTTLE_SUPERVISE_PORT=${SUPERVISE_PORT}`, "HOME=/tmp"]
      },
      // On the internal network alone: the agent's questions go to a person, not anywhere else.
      [],
      { port: SUPERVISE_PORT, check: SUPERVISE_READY_CHECK, repeat: true }
    ))
  }

  const workdir = b.workdir ?? "/workspace"
  const binds = [`${b.workspace ?? `${stateDir.path}/workspace`}:${workdir}`, `${stateDir.path}/agent:${AGENT_MOUNT}:ro`]
  const env = agentEnv(b, fenced ? EGRESS_ALIAS : undefined)
  containers.push(container(
    "agent",
    {
      image: b.image,
      command: b.command ?? null,
      workdir: b.workdir ?? null,
      env: b.env,
      prompt: b.prompt ?? null,
      skills: agentContent(b).skills,
      resources: b.resources,
      proxy: fenced,
      workspace: b.workspace ?? null,
      user: b.user ?? null,
      secrets: secretDigests(b)
    },
    {
      Image: b.image,
      ...(b.command !== undefined ? { Cmd: [...b.command] } : {}),
      ...(b.user !== undefined ? { User: b.user } : {}),
      WorkingDir: workdir,
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
        RestartPolicy: { Name: "no" },
        ...(podman !== undefined
          ? {
            ExtraHosts: [
              ...(fenced ? [`${EGRESS_ALIAS}:${podman.egressIp}`] : []),
              ...(b.git !== undefined ? [`${GIT_ALIAS}:${podman.gitIp}`] : []),
              ...(b.supervise !== undefined ? [`${SUPERVISE_ALIAS}:${podman.superviseIp}`] : []),
              "host.containers.internal:127.0.0.1"
            ],
            Sysctls: { "net.ipv6.conf.all.disable_ipv6": "1" }
          }
          : {})
      },
      NetworkingConfig: { EndpointsConfig: { [internal.name]: { Aliases: ["agent"] } } }
    },
    []
  ))
  const rules = parseAllowList(b.egressAllow)
  return {
    bottle: b,
    networks: egressNet !== undefined ? [internal, egressNet] : [internal],
    containers,
    stateDir,
    verify: {
      bottle: b.name,
      target: n.container(b.name, "agent"),
      proxy: fenced ? { host: EGRESS_ALIAS, port: EGRESS_PORT } : undefined,
      networks: egressNet !== undefined ? [internal.name, egressNet.name] : [internal.name],
      dnsNames: dnsNamesFor(rules),
      sidecars: sidecarsOf(b),
      proxyImage: fenced ? egressImageFor(b, ctx) : undefined,
      stateDir: stateDir.path
    }
  }
}

/** The sidecars besides the proxy that a bottle's agent must reach. */
export const sidecarsOf = (b: { readonly git: unknown; readonly supervise: unknown }): VerifySpec["sidecars"] => [
  ...(b.git !== undefined ? [{ name: "git gate", host: GIT_ALIAS, port: GIT_PORT }] : []),
  ...(b.supervise !== undefined ? [{ name: "supervisor", host: SUPERVISE_ALIAS, port: SUPERVISE_PORT }] : [])
]

/** Where the agent finds the bottle's CA (alone, for clients that add it to their own) and a bundle of it with the host's. */
export const CA_FILE = `${AGENT_MOUNT}/ca.pem`
export const CA_BUNDLE = `${AGENT_MOUNT}/ca-bundle.pem`
/** What makes the agent's clients trust its proxy's CA: Node adds the CA to its own; the rest take the bundle (the host's CAs and it). */
export const caEnv: ReadonlyArray<string> =
  [`NODE_EXTRA_CA_CERTS=${CA_FILE}`, ...["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "GIT_SSL_CAINFO", "CURL_CA_BUNDLE"].map((k) => `${k}=${CA_BUNDLE}`)]

/**
 * The agent's environment: the spec's, its secrets (an injected one as a
 * placeholder: the proxy puts the value in), where its prompt and skills
 * are, the CA to trust when its proxy opens TLS, and, last so the spec
 * cannot point the agent around it, its proxy.
 */
export const agentEnv = (b: DesiredBottle, proxyHost: string | undefined): ReadonlyArray<string> => [
  ...Object.keys(b.env).sort().map((k) => `${k}=${b.env[k]}`),
  ...[...b.secrets].filter((x) => x.gate !== true).sort((x, y) => byEnvName(x.name, y.name)).map((x) => `${x.name}=${x.inject !== undefined ? placeholderOf(x.name) : x.value}`),
  `BOTTLE_NAME=${b.name}`,
  ...(b.git !== undefined ? agentGitEnv(b.git) : []),
  ...(b.supervise !== undefined ? [`BOTTLE_SUPERVISE_URL=http://${SUPERVISE_ALIAS}:${SUPERVISE_PORT}/`] : []),
  ...(b.prompt !== undefined ? [`BOTTLE_PROMPT_FILE=${AGENT_MOUNT}/prompt.md`] : []),
  ...(b.skills.length > 0 ? [`BOTTLE_SKILLS_DIR=${AGENT_MOUNT}/skills`] : []),
  ...(needsCa(b) ? caEnv : []),
  ...(proxyHost !== undefined ? proxyEnv(proxyHost, sidecarsOf(b).map((x) => x.host)) : [])
]

/** Names that must not resolve inside a bottle: a well-known one, and the exact hosts the bottle is allowed (through its proxy only). */
export const dnsNamesFor = (rules: ReadonlyArray<AllowRule>): ReadonlyArray<string> =>
  [...new Set(["example.com", ...rules.filter((r) => !r.wildcard).map((r) => r.domain).slice(0, 3)])]
