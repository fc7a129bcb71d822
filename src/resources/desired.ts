/** The desired world: bottles as the spec files ask for them, host paths read. */
import type { CopiedTree } from "./hostPaths.js"

export type Backend = "docker" | "smolmachines"
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
  readonly source: { readonly file: string; readonly line: number }
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
