/** The live world as observers saw it: a snapshot, possibly partial. */

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
}

export interface ObservedNetwork {
  readonly id: string
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly internal: boolean
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
}

export interface StateDirMetadata {
  readonly name?: string
  readonly backend?: string
  readonly set?: string
  readonly specHash?: string
  readonly createdAt?: string
}

export interface ObservedStateDir {
  readonly name: string
  readonly path: string
  /** Undefined when metadata.json is missing or unreadable. */
  readonly metadata: StateDirMetadata | undefined
  /** A `.preserve` entry of any kind (file, directory, symlink, even dangling). */
  readonly preserve: boolean
}

/** An entry under `state/` that is not a bottle's state dir: reported, never touched. */
export interface IgnoredStateEntry {
  readonly name: string
  readonly reason: string
}

export interface DockerSnapshot {
  readonly endpoint: string
  readonly containers: ReadonlyArray<ObservedContainer>
  readonly networks: ReadonlyArray<ObservedNetwork>
  readonly volumes: ReadonlyArray<ObservedVolume>
  /** Image reference (`repo:tag`) → image id, for what is present locally. */
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

/** What one observer returned: its snapshot, its failure, or that its backend is not installed. */
export type Source<A> =
  | { readonly _tag: "Ok"; readonly value: A }
  | { readonly _tag: "Failed"; readonly source: string; readonly error: string }
  | { readonly _tag: "Unavailable"; readonly source: string; readonly reason: string }

export interface Observed {
  readonly docker: Source<DockerSnapshot>
  readonly smolvm: Source<SmolvmSnapshot>
  readonly state: Source<StateSnapshot>
}

export const ok = <A>(value: A): Source<A> => ({ _tag: "Ok", value })

/** The observers that failed: any one makes the snapshot partial. */
export const failures = (o: Observed): ReadonlyArray<{ source: string; error: string }> =>
  [o.docker, o.smolvm, o.state].flatMap((s) => (s._tag === "Failed" ? [{ source: s.source, error: s.error }] : []))
