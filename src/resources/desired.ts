/** The desired world: bottles as the spec files ask for them, host paths read. */
import type { CopiedTree } from "./hostPaths.js"

export type Backend = "docker" | "smolmachines" | "kubernetes"
export type EgressProxy = "mitmproxy" | "pipelock"

export interface DesiredResources {
  readonly cpus: number | undefined
  readonly memoryBytes: number
  readonly pids: number
}

/** One bottle the user wants, with everything read from disk that affects what runs. */
export interface DesiredBottle {
  readonly name: string
  readonly set: string
  readonly backend: Backend
  readonly image: string
  readonly command: ReadonlyArray<string> | undefined
  readonly workdir: string | undefined
  readonly env: Readonly<Record<string, string>>
  /** Prompt text (inline or read from promptFile), so a changed prompt file is a changed spec. */
  readonly prompt: string | undefined
  /** Skills as read from the host: copied into the state dir, never mounted from where they are. */
  readonly skills: ReadonlyArray<CopiedTree>
  /** `egress.allow` as written (checked by the spec; see egressRules.ts for its one meaning). Empty: no proxy, no way out. */
  readonly egressAllow: ReadonlyArray<string>
  readonly egressProxy: EgressProxy
  readonly resources: DesiredResources
  readonly preserve: boolean
  /** Per-bottle egress image override (spec.sidecars.egress.image). */
  readonly egressImage: string | undefined
  /** CA certificates (PEM text) the proxy trusts for upstreams whose TLS it opens. */
  readonly egressTrust: ReadonlyArray<string>
  /** A host directory mounted read-write at the workdir, instead of the state dir's workspace/ (absolute, checked). */
  readonly workspace: string | undefined
  /** The user the agent runs as; undefined: its image's. */
  readonly user: string | undefined
  readonly secrets: ReadonlyArray<DesiredSecret>
  /** Secrets that could not be had (a variable not set, a file missing): the bottle is refused, naming them. */
  readonly secretProblems: ReadonlyArray<string>
  /** When the image is built by bottle: the context, read and hashed (the image is tagged by that hash). */
  readonly build: DesiredBuild | undefined
  /** The git gate, when the spec declares remotes. */
  readonly git: DesiredGit | undefined
  /** The supervisor sidecar (spec.supervise). */
  readonly supervise: DesiredSupervise | undefined
  /** Where a Kubernetes bottle goes (undefined on the other backends). */
  readonly kubernetes?: { readonly namespace: string; readonly runtimeClassName: string | undefined } | undefined
  readonly source: { readonly file: string; readonly line: number }
}

/** A secret as loaded: its value is for the proxy (or the agent's env) only, never for a plan, a label or a hash. */
export interface DesiredSecret {
  readonly name: string
  /** Never shown, logged, hashed plainly or written anywhere the agent can read (unless not injected: then the agent's env). */
  readonly value: string
  /** Keyed hash of the value: a changed value still replaces what uses it, and the hash tells nothing. */
  readonly digest: string
  readonly inject: { readonly host: string; readonly header: string; readonly format: string } | undefined
  /** Set when the git gate uses it (a remote's sshKey): then it goes to the gate alone, never to the agent. */
  readonly gate?: true
}

export interface DesiredGitRemote {
  readonly name: string
  readonly url: string
  readonly push: boolean
  /** The secret holding the gate's SSH key for this remote (given to the gate only), if any. */
  readonly sshKey: string | undefined
  /** Every spelling of the URL the agent may use: each is rewritten to the gate. */
  readonly spellings: ReadonlyArray<string>
}

export interface DesiredGit {
  readonly remotes: ReadonlyArray<DesiredGitRemote>
  /** known_hosts lines, one per pinned key. */
  readonly hostKeys: ReadonlyArray<string>
  /** The gate's image: spec.sidecars.git.image, else the host's (BOTTLE_GIT_IMAGE), else bottle's own recipe. */
  readonly image: string
  /** Set when bottle builds that image from its recipe. */
  readonly build: DesiredBuild | undefined
}

export interface DesiredSupervise {
  readonly image: string
  readonly build: DesiredBuild | undefined
  /** The bundled MCP server (dist/sidecars/supervise.cjs), written into the state dir. */
  readonly server: string
}

export interface DesiredBuild {
  /** Absolute path of the context directory. */
  readonly context: string
  /** The Dockerfile's path inside the context. */
  readonly dockerfile: string
  readonly args: Readonly<Record<string, string>>
  /** Hash of every file the build sees (.dockerignore honoured), the Dockerfile's path and the args. */
  readonly hash: string
}

/** Limits applied when the spec names none: a sandbox without limits is not one. */
export const DEFAULT_PIDS = 1024
export const DEFAULT_MEMORY_BYTES = 4 * 1024 ** 3

const UNITS: Record<string, number> = { "": 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }

/** More than any machine bottle runs on: a typo, refused in the spec rather than at the Engine. */
export const MAX_MEMORY_BYTES = 1024 * 1024 ** 3

/** Docker refuses a memory limit under 6 MiB. */
export const MIN_MEMORY_BYTES = 6 * 1024 ** 2

/** Parses `512m`, `4g`, `1048576` into bytes. */
export const parseMemory = (s: string): number => {
  const m = /^([0-9]+(?:\.[0-9]+)?)([bkmg]?)$/i.exec(s)
  if (!m) throw new Error(`bad memory size ${s}`)
  return Math.floor(Number(m[1]) * UNITS[m[2]!.toLowerCase()]!)
}
