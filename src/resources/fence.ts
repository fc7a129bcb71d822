/**
 * What fences a bottle, compared as observed rather than trusted from a label
 * (rule 7 of the design). The same facts are derived from what bottle would
 * create (the Engine API create body) and from what the Engine reports
 * (container inspect), so a container re-made by hand with bottle's labels
 * copied, a `docker network connect`, or a `docker update` shows as drift.
 * Every fact is a sorted list of strings; a difference names the fact. Pure.
 */
import { normaliseImageRef } from "./imageRef.js"

/** Fact name → sorted values. */
export type FenceFacts = Readonly<Record<string, ReadonlyArray<string>>>

/** What an image supplies when a container leaves a field unset. */
export interface ImageDefaults {
  readonly env: ReadonlyArray<string>
  readonly cmd: ReadonlyArray<string> | null
  readonly entrypoint: ReadonlyArray<string> | null
  readonly user: string
  /** Paths the image declares as VOLUME: an anonymous volume there is the image's doing, not drift. */
  readonly volumes: ReadonlyArray<string>
}

/** The parts of an Engine container inspect that fence a container (Docker and Podman alike). */
export interface ContainerInspect {
  readonly Config?: {
    readonly Image?: string
    readonly Hostname?: string
    readonly User?: string
    readonly Env?: ReadonlyArray<string> | null
    readonly Cmd?: ReadonlyArray<string> | null
    readonly Entrypoint?: ReadonlyArray<string> | string | null
  } | null
  readonly HostConfig?: Readonly<Record<string, unknown>> | null
  readonly Mounts?: ReadonlyArray<{ readonly Type?: string; readonly Name?: string; readonly Source?: string; readonly Destination?: string; readonly RW?: boolean }> | null
  readonly NetworkSettings?: { readonly Networks?: Readonly<Record<string, { readonly Aliases?: ReadonlyArray<string> | null } | null | undefined>> | null } | null
  readonly Id?: string
  readonly Name?: string
}

const sorted = (xs: Iterable<string>) => [...xs].sort()
const one = (x: string | number | boolean) => [String(x)]
const list = (v: unknown): ReadonlyArray<string> => (Array.isArray(v) ? v.map(String) : [])
const capName = (c: string) => c.toUpperCase().replace(/^CAP_/, "")
/** Docker's default capabilities: dropping every one of them is dropping ALL (Podman spells ALL out). */
const DEFAULT_CAPS = ["AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE", "NET_RAW", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"]
const dropped = (v: unknown) => {
  const caps = list(v).map(capName)
  return caps.includes("ALL") || DEFAULT_CAPS.every((c) => caps.includes(c)) ? ["ALL"] : sorted(caps)
}
/** `no-new-privileges` and `no-new-privileges:true` are one option (Podman reports the first). */
const securityOpt = (o: string) => o.replace(/^no-new-privileges(:true)?$/, "no-new-privileges")
/** Which network namespace: its own on some bridge network (which ones is the networks fact), or shared. */
const networkMode = (v: unknown) => {
  const m = typeof v === "string" ? v : ""
  return m === "host" || m === "none" || m.startsWith("container:") || m.startsWith("ns:") ? m : "own namespace"
}
/** Namespace modes: only sharing the host's (or another container's) matters. */
const namespace = (v: unknown) => {
  const s = typeof v === "string" ? v : ""
  return s === "host" || s.startsWith("container:") || s.startsWith("ns:") ? s : "private"
}
/** Unset, 0 and -1 all mean "no limit". */
const limit = (v: unknown) => (typeof v === "number" && v > 0 ? String(v) : "none")
const portsOf = (v: unknown): ReadonlyArray<string> =>
  v !== null && typeof v === "object" ? Object.entries(v as Record<string, unknown>).filter(([, b]) => Array.isArray(b) ? b.length > 0 : b != null).map(([p]) => p) : []
const mapEntries = (v: unknown): ReadonlyArray<string> =>
  v !== null && typeof v === "object" ? Object.entries(v as Record<string, unknown>).map(([k, x]) => `${k}=${String(x)}`) : []
const mountsFromBinds = (binds: ReadonlyArray<string>) =>
  binds.map((b) => {
    const [src, dst, mode] = b.split(":")
    return `bind ${src}:${dst}:${mode !== undefined && mode.split(",").includes("ro") ? "ro" : "rw"}`
  })
/** Environment as a container ends up with it: the image's, overridden key by key. */
const mergeEnv = (image: ReadonlyArray<string>, own: ReadonlyArray<string>) => {
  const m = new Map<string, string>()
  for (const e of [...image, ...own]) m.set(e.split("=")[0]!, e)
  return [...m.values()]
}
/** Variables an engine adds on its own (Podman: container, HOSTNAME; a TTY: TERM): not drift unless bottle sets them. */
const ENGINE_ENV = new Set(["HOSTNAME", "container", "TERM", "HOME"])
const envKey = (e: string) => e.split("=")[0]!
/**
 * The facts a HostConfig holds, read the same way from a create body and from
 * an inspect: what bottle never sets (devices, published ports, sysctls…)
 * comes out empty on the desired side, so any of it on a live container is drift.
 */
const hostConfigFacts = (h: Readonly<Record<string, unknown>>): Record<string, ReadonlyArray<string>> => ({
  privileged: one(h["Privileged"] === true),
  "capabilities added": sorted(list(h["CapAdd"]).map(capName)),
  "capabilities dropped": dropped(h["CapDrop"]),
  "security options": sorted(list(h["SecurityOpt"]).map(securityOpt)),
  "pids limit": one(limit(h["PidsLimit"])),
  memory: one(limit(h["Memory"])),
  "memory+swap": one(limit(h["MemorySwap"])),
  cpus: one(limit(h["NanoCpus"])),
  "restart policy": one(((h["RestartPolicy"] as { Name?: string } | undefined)?.Name || "no")),
  "read-only root": one(h["ReadonlyRootfs"] === true),
  "pid namespace": one(namespace(h["PidMode"])),
  "ipc namespace": one(namespace(h["IpcMode"])),
  "uts namespace": one(namespace(h["UTSMode"])),
  "user namespace": one(namespace(h["UsernsMode"])),
  devices: sorted([...list((h["Devices"] as ReadonlyArray<{ PathOnHost?: string }> | undefined)?.map((d) => d.PathOnHost ?? "?")), ...list((h["DeviceRequests"] as ReadonlyArray<unknown> | undefined)?.map(() => "device request")), ...list(h["DeviceCgroupRules"])]),
  "published ports": sorted([...portsOf(h["PortBindings"]), ...(h["PublishAllPorts"] === true ? ["all"] : [])]),
  "extra hosts": sorted(list(h["ExtraHosts"])),
  dns: sorted(list(h["Dns"])),
  sysctls: sorted(mapEntries(h["Sysctls"])),
  "volumes from": sorted(list(h["VolumesFrom"])),
  "extra groups": sorted(list(h["GroupAdd"])),
  "cgroup parent": one(String(h["CgroupParent"] ?? ""))
})

/** Body fields bottle's create bodies use; all others must stay at the Engine's defaults. */
interface Body {
  readonly Image: string
  readonly Cmd?: ReadonlyArray<string>
  readonly Entrypoint?: ReadonlyArray<string>
  readonly User?: string
  readonly Hostname?: string
  readonly Env?: ReadonlyArray<string>
  readonly HostConfig: Readonly<Record<string, unknown>>
  readonly NetworkingConfig?: { readonly EndpointsConfig?: Readonly<Record<string, { readonly Aliases?: ReadonlyArray<string> }>> }
}

/**
 * The facts of a container bottle would create from `body` (networks to
 * connect after create in `connect`), with the image's defaults filled in
 * where the body leaves a field to the image. Without `image` (not yet
 * inspected), image-supplied facts are left out of the comparison.
 */
export const desiredFacts = (
  body: Body,
  connect: ReadonlyArray<{ readonly network: string; readonly aliases: ReadonlyArray<string> }>,
  image: ImageDefaults | undefined
): FenceFacts => {
  const h = body.HostConfig
  // The network named in NetworkMode is joined at create, with or without an endpoint config.
  const mode = String(h["NetworkMode"] ?? "")
  const joined = mode !== "" && !["default", "bridge", "host", "none"].includes(mode) && !mode.startsWith("container:") ? { [mode]: [] } : {}
  const networks: Record<string, ReadonlyArray<string>> = {
    ...joined,
    ...Object.fromEntries(Object.entries(body.NetworkingConfig?.EndpointsConfig ?? {}).map(([n, e]) => [n, e.Aliases ?? []])),
    ...Object.fromEntries(connect.map((c) => [c.network, c.aliases]))
  }
  const facts: Record<string, ReadonlyArray<string>> = {
    image: one(normaliseImageRef(body.Image)),
    "network mode": one(networkMode(h["NetworkMode"])),
    networks: sorted(Object.keys(networks)),
    // An alias equal to the hostname is the Engine's own doing on the observed side: left out on both.
    aliases: sorted(Object.entries(networks).flatMap(([n, as]) => as.filter((a) => a !== body.Hostname).map((a) => `${n}:${a}`))),
    mounts: sorted(mountsFromBinds(list(h["Binds"]))),
    ...hostConfigFacts(h)
  }
  if (image !== undefined) {
    const entrypoint = body.Entrypoint ?? image.entrypoint
    // The Engine drops the image's Cmd when a container names its own entrypoint.
    const cmd = body.Cmd ?? (body.Entrypoint !== undefined ? null : image.cmd)
    facts["entrypoint"] = entrypoint ?? []
    facts["command"] = cmd ?? []
    facts["user"] = one(body.User ?? image.user)
    facts["environment"] = sorted(mergeEnv(image.env, body.Env ?? []))
  }
  return facts
}

/** The same facts, read from what the Engine reports about a live container. */
export const inspectFacts = (c: ContainerInspect, image: ImageDefaults | undefined): FenceFacts => {
  const h = c.HostConfig ?? {}
  const shortId = (c.Id ?? "").slice(0, 12)
  const name = (c.Name ?? "").replace(/^\//, "")
  const nets = c.NetworkSettings?.Networks ?? {}
  const mounts: Array<string> = []
  for (const m of c.Mounts ?? []) {
    const mode = m.RW === false ? "ro" : "rw"
    if (m.Type === "bind") mounts.push(`bind ${m.Source}:${m.Destination}:${mode}`)
    // A tmpfs holds memory, never a host path (and Podman adds its own beside a read-only root): not a fence.
    else if (m.Type === "tmpfs") continue
    // An anonymous volume the image declares is the image's; any other volume (a named one may bind any host path) is drift.
    else if (!(m.Type === "volume" && image?.volumes.includes(m.Destination ?? "") && /^[0-9a-f]{64}$/.test(m.Name ?? ""))) {
      mounts.push(`${m.Type ?? "mount"} ${m.Name ?? m.Source ?? ""}:${m.Destination}:${mode}`)
    }
  }
  const entrypoint = c.Config?.Entrypoint
  const facts: Record<string, ReadonlyArray<string>> = {
    image: one(normaliseImageRef(c.Config?.Image ?? "")),
    "network mode": one(networkMode(h["NetworkMode"])),
    networks: sorted(Object.keys(nets)),
    // The Engine adds the container's short id, its hostname (and Podman its name) as aliases of its own.
    aliases: sorted(Object.entries(nets).flatMap(([n, e]) => (e?.Aliases ?? []).filter((a) => a !== shortId && a !== name && a !== c.Config?.Hostname).map((a) => `${n}:${a}`))),
    mounts: sorted(mounts),
    ...hostConfigFacts(h)
  }
  if (image !== undefined) {
    facts["entrypoint"] = typeof entrypoint === "string" ? [entrypoint] : [...(entrypoint ?? [])]
    facts["command"] = [...(c.Config?.Cmd ?? [])]
    facts["user"] = one(c.Config?.User ?? "")
    facts["environment"] = sorted(c.Config?.Env ?? [])
  }
  return facts
}

const describe = (fact: string, extra: ReadonlyArray<string>, missing: ReadonlyArray<string>, have: ReadonlyArray<string>, want: ReadonlyArray<string>): string => {
  const show = (xs: ReadonlyArray<string>) => (xs.length === 0 ? "none" : xs.map((x) => (x.length > 60 ? `${x.slice(0, 57)}...` : x)).join(", "))
  switch (fact) {
    case "networks":
      return extra.length > 0 ? `attached to network ${show(extra)}` : `not attached to network ${show(missing)}`
    case "mounts":
      return extra.length > 0 ? `mounts ${show(extra)}` : `does not mount ${show(missing)}`
    case "capabilities added":
      return `capabilities added: ${show(have)}`
    case "capabilities dropped":
      return `capabilities dropped: ${show(have)} (want ${show(want)})`
    case "environment":
      // Values may hold secrets: name the variables only.
      return `environment differs: ${[...new Set([...extra, ...missing].map((e) => e.split("=")[0]))].join(", ")}`
    case "aliases":
      return extra.length > 0 ? `network aliases added: ${show(extra)}` : `network aliases missing: ${show(missing)}`
    default:
      return want.length <= 1 && have.length <= 1 ? `${fact} is ${show(have)} (want ${show(want)})` : `${fact}: ${show(have)} (want ${show(want)})`
  }
}

/** The first fact in which `have` differs from `want` (facts missing from either side are not compared), as "drift: …". */
export const fenceDrift = (want: FenceFacts, have: FenceFacts): string | undefined => {
  for (const fact of Object.keys(want)) {
    const w = want[fact]!
    let h = have[fact]
    if (h === undefined) continue
    // Podman does not report sysctls at all: only an engine that reports some is compared.
    if (fact === "sysctls" && h.length === 0) continue
    if (fact === "environment") {
      const set = new Set(w.map(envKey))
      h = h.filter((e) => set.has(envKey(e)) || !ENGINE_ENV.has(envKey(e)))
    }
    // Set-like facts are sorted on both sides; entrypoint and command keep their order.
    if (w.join("\u0000") === h.join("\u0000")) continue
    const extra = h.filter((x) => !w.includes(x))
    const missing = w.filter((x) => !h.includes(x))
    return `drift: ${describe(fact, extra, missing, h, w)}`
  }
  return undefined
}

/** A network as bottle creates it, and as the Engine lists it. */
export interface NetworkFacts {
  readonly driver: string
  readonly internal: boolean
  readonly options: Readonly<Record<string, string>>
  /** No address of the host on it at all (Podman: no gateway, no resolver). Compared only when asked for. */
  readonly noGateway?: boolean
}

/** How a live network differs from the one bottle would create, as "drift: …". */
export const networkDrift = (want: NetworkFacts, have: NetworkFacts): string | undefined => {
  if (have.driver !== want.driver) return `drift: driver is ${have.driver} (want ${want.driver})`
  if (have.internal !== want.internal) return `drift: ${want.internal ? "not internal (the agent could reach the outside)" : "internal"}`
  for (const [k, v] of Object.entries(want.options)) {
    if (have.options[k] !== v) return `drift: option ${k} is ${have.options[k] ?? "unset"} (want ${v})`
  }
  if (want.noGateway === true && have.noGateway !== true) return "drift: the host has an address (a gateway) on it"
  return undefined
}
