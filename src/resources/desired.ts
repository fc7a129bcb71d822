/** The desired world: bottles as the spec files ask for them, paths resolved. */

export type Backend = "docker" | "smolmachines"

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
  /** Absolute paths of skill directories or files, mounted read-only. */
  readonly skills: ReadonlyArray<string>
  readonly egressAllow: ReadonlyArray<string>
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

/** Docker refuses a memory limit under 6 MiB. */
export const MIN_MEMORY_BYTES = 6 * 1024 ** 2

/** Parses `512m`, `4g`, `1048576` into bytes. */
export const parseMemory = (s: string): number => {
  const m = /^([0-9]+(?:\.[0-9]+)?)([bkmg]?)$/i.exec(s)
  if (!m) throw new Error(`bad memory size ${s}`)
  return Math.floor(Number(m[1]) * UNITS[m[2]!.toLowerCase()]!)
}
