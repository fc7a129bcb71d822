/** The live world as observers saw it: a snapshot, possibly partial. */
import type { FenceFacts, ImageDefaults } from "./fence.js"

export type ContainerState = "created" | "running" | "paused" | "restarting" | "removing" | "exited" | "dead" | (string & {})

export interface ObservedContainer {
  readonly id: string
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly state: ContainerState
  readonly image: string
  readonly imageId: string
  /** IPv4 address on each attached network, by network name. */
  readonly ips: Readonly<Record<string, string>>
  /** What fences it, as the Engine reports it (src/resources/fence.ts); undefined when it was not inspected. */
  readonly facts?: FenceFacts | undefined
  /** The defaults its image supplies, when the image could be inspected. */
  readonly imageDefaults?: ImageDefaults | undefined
}

export interface ObservedNetwork {
  readonly id: string
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly internal: boolean
  readonly driver?: string
  readonly options?: Readonly<Record<string, string>>
  /** IPAM subnets and gateways, as configured. */
  readonly subnets?: ReadonlyArray<{ readonly subnet: string; readonly gateway: string | undefined }>
}

export interface ObservedVolume {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
}

export type MachineState = "created" | "running" | "stopped" | "failed" | "unreachable" | "frozen" | (string & {})

export interface ObservedMachine {
  readonly name: string
  readonly state: MachineState
  readonly labels: Readonly<Record<string, string>>
  readonly image: string | null
  /** As `smolvm machine ls --json` reports them (undefined when a release leaves them out): compared for drift. */
  readonly cpus?: number | undefined
  readonly memoryMiB?: number | undefined
  readonly network?: boolean | undefined
  readonly mounts?: number | undefined
  readonly ports?: number | undefined
}

export interface StateDirMetadata {
  /** `bottle` when bottle wrote it. */
  readonly managedBy?: string
  /** The prefix of the install that wrote it. */
  readonly prefix?: string
  /** For a state dir the older tool (claude-bottle / bot-bottle, in Python) wrote: its compose project, which starts with its prefix. */
  readonly legacyProject?: string
  readonly name?: string
  readonly backend?: string
  readonly set?: string
  readonly specHash?: string
  readonly createdAt?: string
  /** Kubernetes: the namespace its objects are in. */
  readonly namespace?: string
}

export interface ObservedStateDir {
  readonly name: string
  readonly path: string
  /** Undefined when metadata.json is missing or unreadable. */
  readonly metadata: StateDirMetadata | undefined
  /** A `.preserve` entry of any kind (file, directory, symlink, even dangling). */
  readonly preserve: boolean
  /** The bottle's last verification (verify.json), if it has one that reads. */
  readonly verdict?: { readonly ok: boolean; readonly at: string; readonly failed: ReadonlyArray<string> } | undefined
}

/** An entry under `state/` that is not a bottle's state dir: reported, never touched. */
export interface IgnoredStateEntry {
  readonly name: string
  readonly reason: string
}

/** Which engine answers on the Docker API, and what of it bottle's fence depends on. */
export interface EngineInfo {
  readonly kind: "docker" | "podman"
  readonly version: string
  /** Podman: `netavark` is the only backend bottle's fence is proven on. */
  readonly networkBackend?: string | undefined
  readonly rootless?: boolean | undefined
}

export interface DockerSnapshot {
  readonly endpoint: string
  /** Undefined in snapshots made without asking (tests): read as Docker. */
  readonly engine?: EngineInfo
  readonly containers: ReadonlyArray<ObservedContainer>
  readonly networks: ReadonlyArray<ObservedNetwork>
  readonly volumes: ReadonlyArray<ObservedVolume>
  /** Every container carrying bottle's labels, whatever its prefix: liveness counts other installs' bottles too. */
  readonly anyPrefix?: ReadonlyArray<ObservedContainer>
  /** Image reference (normalised, see imageRef.ts) → image id, for what is present locally. */
  readonly images: Readonly<Record<string, string>>
}

export interface SmolvmSnapshot {
  readonly version: string
  readonly machines: ReadonlyArray<ObservedMachine>
}

export interface StateSnapshot {
  readonly root: string
  readonly dirs: ReadonlyArray<ObservedStateDir>
  readonly ignored: ReadonlyArray<IgnoredStateEntry>
}

/** A Kubernetes object as bottle lists it: what ownership, drift and deletion need. */
export interface ObservedObject {
  readonly apiVersion: string
  readonly kind: string
  readonly namespace: string
  readonly name: string
  readonly uid: string
  readonly labels: Readonly<Record<string, string>>
  readonly annotations: Readonly<Record<string, string>>
  readonly deleting: boolean
  /** The rest of it (spec, data, status), compared against what bottle applies. */
  readonly body: Readonly<Record<string, unknown>>
}

export interface KubeSnapshot {
  /** The kubeconfig context and API server asked. */
  readonly context: string
  readonly server: string
  /** The namespaces looked in, and whether each exists (bottle never makes one). */
  readonly namespaces: ReadonlyArray<{ readonly name: string; readonly exists: boolean }>
  /** bottle's objects in them, ApplySet parents included. */
  readonly objects: ReadonlyArray<ObservedObject>
  /** Whether the cluster serves agent-sandbox's Sandbox API. */
  readonly sandboxApi: boolean
  /** The kinds listed (`Kind.group`): a parent's kind not among them was not looked at, so nothing is concluded about it. */
  readonly listed: ReadonlyArray<string>
}

/** What one observer returned: its snapshot, its failure, or that its backend is not installed. */
export type Source<A> =
  | { readonly _tag: "Ok"; readonly value: A }
  | { readonly _tag: "Failed"; readonly source: string; readonly error: string }
  | { readonly _tag: "Unavailable"; readonly source: string; readonly reason: string }

export interface Observed {
  readonly docker: Source<DockerSnapshot>
  readonly smolvm: Source<SmolvmSnapshot>
  readonly state: Source<StateSnapshot>
  /** Asked only when a bottle is (or was) on Kubernetes; undefined: not asked, nothing there of bottle's is known. */
  readonly kubernetes?: Source<KubeSnapshot>
}

export const ok = <A>(value: A): Source<A> => ({ _tag: "Ok", value })

/** The observers that failed: any one makes the snapshot partial. */
export const failures = (o: Observed): ReadonlyArray<{ source: string; error: string }> =>
  [o.docker, o.smolvm, o.state, ...(o.kubernetes !== undefined ? [o.kubernetes] : [])].flatMap((s) => (s._tag === "Failed" ? [{ source: s.source, error: s.error }] : []))
