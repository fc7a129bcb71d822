/**
 * Which live things are this install's, and whose bottle each belongs to
 * (rule 3 of the design). One answer for the planner, `get` and `verify`.
 * Pure.
 *
 * What carries bottle's labels is ours when named as this prefix names it
 * (a longer prefix's bottles, `claude-bottle-dev-*` beside `claude-bottle`,
 * are labelled alike but named otherwise). A name or compose project alone
 * makes a thing ours only under the older tool's prefixes, whose leftovers
 * carry no labels of bottle's; under any other prefix, a thing without
 * labels is ours only when its name is exactly one bottle gives. So a short
 * custom prefix such as `claude` never claims a user's
 * `claude-desktop-helper` or compose project `claude-app`.
 */
import { Bottle as BL, Compose, MANAGED_BY } from "./labels.js"
import type { Names } from "./names.js"

type Labels = Readonly<Record<string, string>>
const bare = (name: string) => name.replace(/^\//, "")

export interface Ownership {
  /** Whether a container, network or machine so named and labelled is this install's. */
  readonly owns: (name: string, labels: Labels) => boolean
  /** The bottle a thing of ours belongs to, if it can be told (a leftover without labels may not say). */
  readonly ownerOf: (name: string, labels: Labels, machine?: boolean) => string | undefined
  /** Whether it belongs to the smolmachines backend (a machine, or a sidecar bundle) rather than docker's. */
  readonly isSmolmachines: (name: string, machine?: boolean) => boolean
}

export const ownership = (names: Names): Ownership => {
  const prefix = names.prefix
  /** Names of the smolmachines backend's sidecar bundles (container, network), before the bottle's name. */
  const bundlePrefixes = [`${prefix}-sidecars-`, `${prefix}-bundle-`]
  const namedAsOurs = (name: string, b: string) => {
    const base = names.project(b)
    return name === names.machine(b) || name === names.bundleContainer(b) || name === names.bundleNetwork(b) ||
      name.startsWith(`${base}-`) || name.startsWith(`${base}_`)
  }
  const owns = (raw: string, labels: Labels) => {
    const name = bare(raw)
    const project = labels[Compose.project]
    if (labels[BL.managedBy] === MANAGED_BY) {
      const b = labels[BL.bottle]
      return names.owns(name) && (b === undefined || namedAsOurs(name, b))
    }
    if (names.claimsUnlabelled) return names.owns(name) || (project !== undefined && names.owns(project))
    return project === undefined && names.schemeOwner(name) !== undefined
  }
  const ownerOf = (raw: string, labels: Labels, machine = false) => {
    const name = bare(raw)
    if (labels[BL.managedBy] === MANAGED_BY && labels[BL.bottle]) return labels[BL.bottle]
    const project = labels[Compose.project]
    if (project !== undefined && names.owns(project)) return project.slice(prefix.length + 1)
    for (const p of bundlePrefixes) if (name.startsWith(p)) return name.slice(p.length)
    if (machine) return name.slice(prefix.length + 1)
    return names.schemeOwner(name)
  }
  const isSmolmachines = (raw: string, machine = false) => machine || bundlePrefixes.some((p) => bare(raw).startsWith(p))
  return { owns, ownerOf, isSmolmachines }
}
