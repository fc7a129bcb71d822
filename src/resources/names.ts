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
/**
 * The prefixes the older tool of this family used (claude-bottle, later
 * bot-bottle; BOTTLE_LEGACY_PREFIXES). Its leftovers carry no labels of
 * bottle's and were named freely, so under these prefixes any prefixed name
 * is ours. Under any other prefix a thing without bottle's labels is ours
 * only when its name is exactly one bottle gives (`schemeOwner`).
 */
export const LEGACY_PREFIXES: ReadonlyArray<string> = ["claude-bottle", "bot-bottle"]

export type DockerService = "agent" | "egress" | "git" | "supervise"
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
  /** Whether any prefixed name without bottle's labels is ours (only under the legacy prefixes). */
  readonly claimsUnlabelled: boolean
  /** The bottle a name belongs to when it is exactly a container or network name bottle gives; else undefined. */
  readonly schemeOwner: (name: string) => string | undefined
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")
const NAME = "([a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?)"

export const makeNames = (prefix: string, legacy: ReadonlyArray<string> = LEGACY_PREFIXES): Names => {
  const p = escapeRe(prefix)
  const schemes = [
    new RegExp(`^${p}-sidecars-${NAME}$`),
    new RegExp(`^${p}-bundle-${NAME}$`),
    new RegExp(`^${p}-${NAME}-(?:agent|egress)-1$`),
    new RegExp(`^${p}-${NAME}_(?:internal|egress)$`)
  ]
  return {
    prefix,
    project: (b) => `${prefix}-${b}`,
    container: (b, service) => `${prefix}-${b}-${service}-1`,
    network: (b, role) => `${prefix}-${b}_${role}`,
    machine: (b) => `${prefix}-${b}`,
    bundleContainer: (b) => `${prefix}-sidecars-${b}`,
    bundleNetwork: (b) => `${prefix}-bundle-${b}`,
    owns: (name) => name.replace(/^\//, "").startsWith(`${prefix}-`),
    claimsUnlabelled: legacy.includes(prefix),
    schemeOwner: (name) => {
      const bare = name.replace(/^\//, "")
      for (const re of schemes) {
        const m = re.exec(bare)
        if (m !== null && bottleNameProblem(m[1]!) === undefined) return m[1]
      }
      return undefined
    }
  }
}

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
