/** Names of everything bottle creates, derived from one prefix. Pure. */

/** RFC 1123 label, at most 40 characters: safe as a Docker, VM and directory name. */
export const BOTTLE_NAME_PATTERN = /^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$/
export const BOTTLE_NAME_MAX = 40

/**
 * Bottle names that would collide with the smolmachines bundle names
 * (`<prefix>-sidecars-<b>`, `<prefix>-bundle-<b>`) when used as a compose
 * project name.
 */
export const RESERVED_NAME_PREFIXES = ["sidecars-", "bundle-"] as const

export const DEFAULT_PREFIX = "claude-bottle"

export type DockerService = "agent" | "egress"
export type NetworkRole = "internal" | "egress"

/** Every name bottle gives to a resource, for one prefix. */
export interface Names {
  readonly prefix: string
  readonly project: (bottle: string) => string
  readonly container: (bottle: string, service: string) => string
  readonly network: (bottle: string, role: NetworkRole) => string
  readonly machine: (bottle: string) => string
  readonly bundleContainer: (bottle: string) => string
  readonly bundleNetwork: (bottle: string) => string
  /** True for any name bottle may consider its own (rule 3 of the design). */
  readonly owns: (name: string) => boolean
}

export const makeNames = (prefix: string): Names => ({
  prefix,
  project: (b) => `${prefix}-${b}`,
  container: (b, service) => `${prefix}-${b}-${service}-1`,
  network: (b, role) => `${prefix}-${b}_${role}`,
  machine: (b) => `${prefix}-${b}`,
  bundleContainer: (b) => `${prefix}-sidecars-${b}`,
  bundleNetwork: (b) => `${prefix}-bundle-${b}`,
  owns: (name) => name.replace(/^\//, "").startsWith(`${prefix}-`)
})

/** Why a bottle name is refused, or undefined when it is a good one. */
export const bottleNameProblem = (name: string): string | undefined => {
  if (name.length === 0) return "must not be empty"
  if (name.length > BOTTLE_NAME_MAX) return `is ${name.length} characters long; at most ${BOTTLE_NAME_MAX} are allowed`
  if (!BOTTLE_NAME_PATTERN.test(name)) {
    return "must be an RFC 1123 label: lowercase letters, digits and '-', starting and ending with a letter or digit"
  }
  const reserved = RESERVED_NAME_PREFIXES.find((p) => name.startsWith(p))
  if (reserved !== undefined) return `must not start with '${reserved}': bottle uses that for smolmachines sidecar bundles`
  return undefined
}
